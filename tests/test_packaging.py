"""pyproject.toml keeps its promises: the test extra sets up what the groups do, CI's pins fit the ranges."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]


def group(name: str) -> list[str]:
    found: list[str] = []
    for item in PYPROJECT["dependency-groups"][name]:
        found += group(item["include-group"]) if isinstance(item, dict) else [item]
    return found


def test_the_test_extra_carries_every_developer_tool() -> None:
    # pip < 25.1 cannot install dependency groups: `pip install -e '.[test]'` must bring the same tools.
    assert set(group("dev")) <= set(EXTRAS["test"])


def test_ci_pins_lie_inside_the_ranges_users_get() -> None:
    ranges = {canonicalize_name(r.name): r for r in map(Requirement, [*EXTRAS["console"], *EXTRAS["test"]])}
    lines = (ROOT / "constraints" / "ci.txt").read_text().splitlines()
    pins = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    assert {canonicalize_name(p.name) for p in pins} == {"textual", "pytest-textual-snapshot"}
    for pin in pins:
        (version,) = (spec.version for spec in pin.specifier)
        assert ranges[canonicalize_name(pin.name)].specifier.contains(version), pin


def test_the_license_is_the_one_the_metadata_names() -> None:
    assert PYPROJECT["project"]["license"] == "MPL-2.0"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("Mozilla Public License Version 2.0\n")
