"""What the code cites is in the repository: design notes under docs/, nothing outside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for folder in ("core", "sim", "tui", "tests", "benchmarks") for p in (ROOT / folder).rglob("*.py")]
DOCS_PATH = re.compile(r"\bdocs/[\w./-]*\w")
SECTION = re.compile(r"docs/([\w.-]+\.md) §(\d+)")


def test_every_cited_doc_exists_and_has_the_cited_section() -> None:
    cited: set[tuple[str, str | None]] = set()
    for path in SOURCES:
        text = path.read_text()
        cited |= {(m, None) for m in DOCS_PATH.findall(text)}
        cited |= {(f"docs/{name}", section) for name, section in SECTION.findall(text)}
    assert cited, "the code cites no design notes at all: this test would prove nothing"
    for doc, section in sorted(cited, key=str):
        target = ROOT / doc
        assert target.exists(), f"cited but missing: {doc}"
        if section is not None:
            assert re.search(rf"^## {section}\. ", target.read_text(), re.M), f"{doc} has no section {section}"


def test_no_citation_points_outside_the_repository() -> None:
    outside = re.compile(r"\breference/\w+\.md|\bDESIGN §|shared/")
    offenders = [
        f"{p.relative_to(ROOT)}" for p in SOURCES if p.name != "test_docs.py" and outside.search(p.read_text())
    ]
    assert offenders == []
