"""The event catalog's Python models, one module per domain as under ``schemas/``.

Each event is two classes: its data model (``PaymentCompletedData``, whose docstring says
what the event means) and its envelope (``PaymentCompleted``), which names the
``EVENT_TYPE``. Each domain module lists its models in its own ``__all__``; this package
re-exports them all.
"""

from contracts.events import common, inventory, order, payment, returns, saga, shipping
from contracts.events.common import *  # noqa: F403
from contracts.events.inventory import *  # noqa: F403
from contracts.events.order import *  # noqa: F403
from contracts.events.payment import *  # noqa: F403
from contracts.events.returns import *  # noqa: F403
from contracts.events.saga import *  # noqa: F403
from contracts.events.shipping import *  # noqa: F403

__all__ = []
__all__ += common.__all__
__all__ += inventory.__all__
__all__ += order.__all__
__all__ += payment.__all__
__all__ += returns.__all__
__all__ += saga.__all__
__all__ += shipping.__all__
