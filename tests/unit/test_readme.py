"""README.md is the front door: small, the two set-up commands first, links that resolve."""

import re
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
_README = _ROOT / "README.md"
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _relative_links(page: Path) -> list[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))  # code blocks hold no links
    return [
        target.split("#", 1)[0]
        for target in _LINK.findall(text)
        if not re.match(r"[a-z]+:", target) and not target.startswith("#")
    ]


def test_readme_is_at_most_12_kb() -> None:
    size = len(_README.read_bytes())
    assert size <= 12_000, f"README.md is {size} bytes: move detail into docs/"


def test_first_code_block_holds_exactly_the_two_set_up_commands() -> None:
    blocks = list(_FENCE.finditer(_README.read_text(encoding="utf-8")))
    assert blocks, "README.md has no code block"
    commands = [line.split("#", 1)[0].strip() for line in blocks[0].group(1).splitlines()]
    assert [command for command in commands if command] == ["make up", "make test"]


def test_readme_links_into_docs_and_every_relative_link_resolves() -> None:
    links = _relative_links(_README)
    assert any(link.startswith("docs/") for link in links), "README.md links to no docs/ page"
    missing = [link for link in links if not (_ROOT / link).is_file()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_every_relative_link_between_docs_pages_resolves() -> None:
    pages = sorted((_ROOT / "docs").glob("*.md"))
    assert pages, "docs/ has no pages"
    missing = [
        f"{page.name} -> {link}"
        for page in pages
        for link in _relative_links(page)
        if not (page.parent / link).resolve().is_file()
    ]
    assert not missing, f"links to files that do not exist: {missing}"
