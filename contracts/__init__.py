"""The shared language of the services: events, their schemas and wire format, names.

The package re-exports every public name of ``codec``, ``envelope``, ``errors``, ``events``,
``registry``, ``search_attributes`` and ``topics``; each module lists its own in ``__all__``
(as ``asyncio`` builds its face). Task queue names live in ``contracts.task_queues``
(``task_queues.PAYMENT``); schema evolution is checked by ``contracts.compatibility``
(``python -m contracts.compatibility``).
"""

from contracts import (
    codec,
    envelope,
    errors,
    events,
    registry,
    search_attributes,
    task_queues,
    topics,
)
from contracts.codec import *  # noqa: F403
from contracts.envelope import *  # noqa: F403
from contracts.errors import *  # noqa: F403

# The event models straight from their domain modules: mypy does not see through two star imports.
from contracts.events.common import *  # noqa: F403
from contracts.events.inventory import *  # noqa: F403
from contracts.events.order import *  # noqa: F403
from contracts.events.payment import *  # noqa: F403
from contracts.events.returns import *  # noqa: F403
from contracts.events.saga import *  # noqa: F403
from contracts.events.shipping import *  # noqa: F403
from contracts.registry import *  # noqa: F403
from contracts.search_attributes import *  # noqa: F403
from contracts.topics import *  # noqa: F403

__all__ = ["search_attributes", "task_queues", "topics"]
__all__ += codec.__all__
__all__ += envelope.__all__
__all__ += errors.__all__
__all__ += events.__all__
__all__ += registry.__all__
__all__ += search_attributes.__all__
__all__ += topics.__all__
