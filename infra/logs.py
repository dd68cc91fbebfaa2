"""Log set-up shared by every process."""

import logging
import sys

__all__ = ["configure_logging"]


def configure_logging(process: str, level: int = logging.INFO) -> None:
    """Log to stderr with the process name on every line."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {process} %(name)s: %(message)s",
    )
