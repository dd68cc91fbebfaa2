"""One local transaction: a service's state change and its outgoing events, all or nothing."""

from contextlib import AbstractContextManager

from runtime._database import Database

__all__ = ["transaction"]


def transaction(database: Database) -> AbstractContextManager[Database]:
    """Commit the block's statements together, or roll them back if it raises (anything);
    writers of one database take turns (:meth:`Database.transaction`)."""
    return database.transaction()
