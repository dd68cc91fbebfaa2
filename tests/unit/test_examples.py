"""The examples a user copies: ``examples/read_events.py`` needs nothing of the project, only
the libraries it names (the system test runs it against a stack)."""

import ast
import subprocess
import sys
import tomllib

from tests.support import REPO

READ_EVENTS = REPO / "examples" / "read_events.py"


def _imported_packages(source: str) -> set[str]:
    tree = ast.parse(source)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module.split(".")[0])
    return names


def test_the_generic_reader_imports_no_package_of_the_project() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    ours = set(project["tool"]["importlinter"]["root_packages"]) | {"tests"}
    imported = _imported_packages(READ_EVENTS.read_text())
    third_party = imported - set(sys.stdlib_module_names)
    assert not imported & ours
    assert third_party == {"aiokafka", "fastavro", "httpx"}


def test_the_generic_reader_explains_its_command_line() -> None:
    done = subprocess.run(
        [sys.executable, str(READ_EVENTS), "--help"], capture_output=True, text=True, check=True
    )
    for option in ("--bootstrap", "--registry", "--topic", "--key", "--registry-user"):
        assert option in done.stdout
