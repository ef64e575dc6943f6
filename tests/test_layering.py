"""Dependencies point at core: core imports neither tui nor sim (nor Textual/moto); sim never imports tui."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "core": {"tagjoin.tui", "tagjoin.sim", "textual", "moto", "werkzeug"},
    "sim": {"tagjoin.tui", "textual"},
}


def _layer(module: str) -> str:
    """`tagjoin.sim.kernel.engine` → `tagjoin.sim`; `moto.core` → `moto`."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "tagjoin" else parts[0]


def imported_layers(path: Path) -> set[str]:
    layers: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            layers.update(_layer(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            layers.add(_layer(node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            layers.add("relative import")  # the folders are symlinked into tagjoin/: keep imports absolute
    return layers


def offences(root: Path) -> list[str]:
    found = []
    for package, banned in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            bad = imported_layers(path) & (banned | {"relative import"})
            if bad:
                found.append(f"{path.relative_to(root)} imports {sorted(bad)}")
    return found


def test_import_direction() -> None:
    assert offences(ROOT) == []


def test_the_direction_check_sees_a_core_module_that_imports_the_console(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "sim" / "kernel").mkdir(parents=True)
    (tmp_path / "core" / "ok.py").write_text("from tagjoin.core.model import Instance\n")
    (tmp_path / "core" / "bad.py").write_text("def f() -> None:\n    from tagjoin.tui.app import ConsoleApp\n")
    (tmp_path / "sim" / "kernel" / "bad.py").write_text("import textual.app\nfrom . import engine\n")
    assert offences(tmp_path) == [
        "core/bad.py imports ['tagjoin.tui']",
        "sim/kernel/bad.py imports ['relative import', 'textual']",
    ]


def test_node_side_commands_load_neither_textual_nor_moto() -> None:
    code = (
        "import sys\n"
        "import tagjoin.core.cli, tagjoin.core.consul.client, tagjoin.core.aws.tag_store, tagjoin.core.handoff\n"
        "import tagjoin.core.discover, tagjoin.core.view, tagjoin.core.keeper\n"
        "tagjoin.core.cli.build_parser(load_plugins=False)\n"
        "layers = {'textual', 'moto', 'werkzeug', 'tagjoin.tui', 'tagjoin.sim'}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in layers or '.'.join(m.split('.')[:2]) in layers)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""
