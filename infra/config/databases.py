"""Where each service's database is: PostgreSQL when a URL names it, else a SQLite file.

A service's URL comes from its setting (``SAGA_PAYMENT_DATABASE_URL``, ...) or, for a stack
``saga up --topology cluster`` started, from the run directory's record of the databases it
provisioned (``<run_dir>/databases.json``, mode 0600), so that the tools of that run (the
audit, the bench) find the same databases as its services. Neither: the service's SQLite file
in the run directory, which its query module names.
"""

import json
from pathlib import Path

from infra.config.settings import Settings

__all__ = ["DATABASES_FILE", "SERVICES", "database_for", "database_url", "read_database_record"]

DATABASES_FILE = "databases.json"
SERVICES = ("payment", "inventory", "shipping", "orchestrator")
"""The services that own a database (one each, with a role of the same name)."""


def read_database_record(run_dir: Path) -> dict[str, str]:
    """The databases a cluster stack provisioned in ``run_dir``: service → URL (or none)."""
    try:
        record = json.loads((run_dir / DATABASES_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict):
        return {}
    return {str(name): str(url) for name, url in record.items() if isinstance(url, str)}


def database_url(settings: Settings, service: str) -> str | None:
    """The PostgreSQL URL of ``service``'s database, or None for its SQLite file."""
    if service not in SERVICES:
        raise ValueError(f"{service!r} owns no database (one of {', '.join(SERVICES)})")
    setting = getattr(settings, f"{service}_database_url")
    if setting is not None:
        url: str = setting.get_secret_value()
        return url
    return read_database_record(settings.run_dir).get(service)


def database_for(settings: Settings, service: str, sqlite_file: Path) -> Path | str:
    """``service``'s database: its PostgreSQL URL, or else ``sqlite_file``."""
    return database_url(settings, service) or sqlite_file
