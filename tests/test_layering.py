"""Dependencies point at core: core imports neither tui nor sim (nor Textual/moto); sim never imports tui."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "core": {"tui", "sim", "textual", "moto", "werkzeug"},
    "sim": {"tui", "textual"},
}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_import_direction() -> None:
    offences = []
    for package, banned in FORBIDDEN.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            bad = imported_roots(path) & banned
            if bad:
                offences.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offences == []


def test_node_side_commands_load_neither_textual_nor_moto() -> None:
    code = (
        "import sys\n"
        "import core.cli, core.consul, core.ec2, core.handoff, core.discover, core.view, core.keeper\n"
        "core.cli.build_parser(load_plugins=False)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'textual', 'moto', 'tui', 'sim', 'werkzeug'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""
