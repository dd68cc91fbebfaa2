"""docs/settings.md is what `saga config --markdown` prints, generated from the settings class."""

import os
import subprocess
import sys
from pathlib import Path

from cli.main import settings_markdown
from infra.config.settings import Settings

_ROOT = Path(__file__).resolve().parents[3]
_PAGE = _ROOT / "docs" / "settings.md"


def test_docs_settings_page_is_up_to_date() -> None:
    assert _PAGE.read_text(encoding="utf-8") == settings_markdown(), (
        "docs/settings.md is stale: run `saga config --markdown > docs/settings.md`"
    )


def test_the_page_names_every_setting_with_its_description() -> None:
    page = settings_markdown()
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description in infra/config/settings.py"
        assert f"| `SAGA_{name.upper()}` |" in page
        assert field.description.replace("|", "\\|") in page


def test_saga_config_markdown_prints_the_page_whatever_the_environment() -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SAGA_")}
    # Values in effect differ from the defaults: the page shows the defaults all the same.
    env |= {"SAGA_API_PORT": "18000", "SAGA_KAFKA_CACHE_DIR": "/tmp/elsewhere"}
    done = subprocess.run(
        [sys.executable, "-m", "cli", "config", "--markdown"],
        cwd=_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == settings_markdown()
    assert "| `SAGA_API_PORT` | `8000` |" in done.stdout
