"""Opening a service's stores where its settings say: PostgreSQL, or SQLite in the run directory."""

from collections.abc import Sequence
from pathlib import Path

from infra.config.databases import database_for
from infra.config.settings import Settings
from runtime._database import Database, DatabaseError, describe, is_url, open_database

__all__ = ["DatabaseUnavailableError", "open_store"]


class DatabaseUnavailableError(Exception):
    """A service's database cannot be opened or migrated; the message says what to check."""


def open_store(
    settings: Settings,
    service: str,
    sqlite_file: Path,
    *,
    migrations: Sequence[Path] = (),
    schema: str | None = None,
) -> Database:
    """Open one of ``service``'s stores, migrated: its PostgreSQL database when a URL names it
    (``schema`` apart, if given), else ``sqlite_file``.

    Raises:
        DatabaseUnavailableError: it cannot be reached or migrated (the message names the
            setting to check).
    """
    where = database_for(settings, service, sqlite_file)
    try:
        return open_database(where, migrations=migrations, schema=schema)
    except DatabaseError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if is_url(where):
            hint = (
                f"check SAGA_{service.upper()}_DATABASE_URL: a server that answers, the role's "
                "password, and a database that role owns"
            )
        else:
            hint = f"check that {Path(where).parent} is a folder this user may write (SAGA_RUN_DIR)"
        raise DatabaseUnavailableError(
            f"{service}'s database {describe(where)} cannot be used ({reason}): {hint}"
        ) from None
