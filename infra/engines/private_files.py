"""Files that hold secrets (passwords, private keys): readable by their owner only."""

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

__all__ = ["ensure_passwords", "write_private"]


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by this user only (mode 0600), atomically: the file
    is created with that mode, never widened later, and replaces any earlier one whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)


def ensure_passwords(
    path: Path, kept: dict[str, str] | None, names: Iterable[str], *, keep_others: bool
) -> dict[str, str]:
    """The passwords of ``names``: the ``kept`` ones (read from ``path`` by the caller), and one
    made (URL-safe, 32 random bytes) for each name that has none; ``keep_others`` keeps the
    passwords of names not asked for too. ``path`` is rewritten (mode 0600) only on a change."""
    kept = kept or {}
    wanted = dict(kept) if keep_others else {}
    for name in names:
        wanted[name] = kept.get(name) or secrets.token_urlsafe(32)
    if wanted != kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(wanted, indent=2))
    return wanted
