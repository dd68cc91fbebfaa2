"""``saga audit``: cross-check every order's saga, its services' records and its events.

:func:`run_audit` reads the sources (Temporal, the services' databases, Kafka) into an
:class:`AuditSnapshot` and hands it to :func:`find_violations`, a pure function, which says
what is wrong with each order in an :class:`AuditReport`.

The package re-exports every public name of ``checks``, ``report``, ``run`` and ``snapshot``;
each module lists its own in ``__all__`` (as ``contracts`` does).
"""

from ops.audit import checks, report, run, snapshot
from ops.audit.checks import *  # noqa: F403
from ops.audit.report import *  # noqa: F403
from ops.audit.run import *  # noqa: F403
from ops.audit.snapshot import *  # noqa: F403

__all__: list[str] = []
__all__ += checks.__all__
__all__ += report.__all__
__all__ += run.__all__
__all__ += snapshot.__all__
