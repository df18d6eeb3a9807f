"""The README is a user's guide that quotes no measured figure, and every local link in the docs resolves.

Measured figures live in files a run regenerates (docs/results/tests.md from `make test`,
bench/results/latest.md from `make bench`); a figure copied into prose goes stale unnoticed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A number with a unit of time, rate, share, size or ratio: what a measurement looks like.
FIGURE = re.compile(r"(?<![\w.])\d[\d,.]*\s?(?:ms|s|sec|seconds|min|minutes|req/s|requests|%|KiB|MiB|GiB|x)(?![\w/])")
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "roles").glob("*/README.md")])


def prose(text: str) -> str:
    """The text without fenced code blocks (commands and their output)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def test_readme_quotes_no_figure() -> None:
    found = FIGURE.findall(prose((ROOT / "README.md").read_text()))
    assert not found, f"README.md quotes figures {found}: put them in docs/results or bench/results and link there"


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_local_links_resolve(doc: Path) -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", prose(doc.read_text()))
    missing = [link for link in links if "://" not in link and not (doc.parent / link).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} links to missing files: {missing}"
