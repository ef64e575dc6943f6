"""Dependencies point at core: core imports neither tui nor sim (nor Textual/moto); sim never imports tui.

Inside sim, modules import each other without cycles, counting imports made only for type checking:
a cycle hidden behind `if TYPE_CHECKING` still ties the modules together, and a small Protocol in
the importing module says better what it needs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable, Mapping
from functools import cache
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


def module_name(root: Path, path: Path) -> str:
    """`sim/consul/cluster.py` → `tagjoin.sim.consul.cluster`; a package is named by its folder."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(("tagjoin", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module → the modules of `package` it imports, wherever the import statement sits."""
    modules = {module_name(root, path): path for path in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:  # `from pkg import module` imports the module
                    submodule = f"{node.module}.{alias.name}"
                    targets.add(submodule if submodule in modules else node.module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycles(graph: Mapping[str, set[str]]) -> list[str]:
    """One line per import cycle found by a depth-first walk, as `a → b → a`."""
    found: list[str] = []
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> None:
        path.append(module)
        for target in sorted(graph[module]):
            if target in path:
                found.append(" → ".join([*path[path.index(target) :], target]))
            elif target not in done:
                visit(target)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module)
    return found


def longest_chain(graph: Mapping[str, set[str]]) -> list[str]:
    """The longest run of modules each importing the next; its length is the import depth."""

    @cache
    def chain(module: str) -> tuple[str, ...]:
        below: tuple[str, ...] = ()
        for target in sorted(graph[module]):
            if len(chain(target)) > len(below):
                below = chain(target)
        return (module, *below)

    longest: tuple[str, ...] = ()
    for module in sorted(graph):
        if len(chain(module)) > len(longest):
            longest = chain(module)
    return list(longest)


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


def test_sim_imports_have_no_cycle_and_report_their_depth(record_property: Callable[[str, object], None]) -> None:
    graph = import_graph(ROOT, "sim")
    assert find_cycles(graph) == []
    chain = longest_chain(graph)
    record_property("sim_import_depth", len(chain))
    print(f"sim import depth {len(chain)}: {' → '.join(chain)}")
    assert len(chain) > 1


def test_the_cycle_check_sees_imports_made_only_for_type_checking(tmp_path: Path) -> None:
    (tmp_path / "sim" / "consul").mkdir(parents=True)
    (tmp_path / "sim" / "consul" / "__init__.py").write_text("")
    (tmp_path / "sim" / "consul" / "cluster.py").write_text("from tagjoin.sim.consul import duties\n")
    (tmp_path / "sim" / "consul" / "duties.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from tagjoin.sim.kernel.engine import Engine\n"
        "if TYPE_CHECKING:\n"
        "    from tagjoin.sim.consul.cluster import Cluster\n"
    )
    (tmp_path / "sim" / "kernel").mkdir()
    (tmp_path / "sim" / "kernel" / "engine.py").write_text("import heapq\n")
    graph = import_graph(tmp_path, "sim")
    assert find_cycles(graph) == ["tagjoin.sim.consul.cluster → tagjoin.sim.consul.duties → tagjoin.sim.consul.cluster"]
    (tmp_path / "sim" / "consul" / "duties.py").write_text("from tagjoin.sim.kernel.engine import Engine\n")
    graph = import_graph(tmp_path, "sim")
    assert find_cycles(graph) == []
    assert longest_chain(graph) == [
        "tagjoin.sim.consul.cluster",
        "tagjoin.sim.consul.duties",
        "tagjoin.sim.kernel.engine",
    ]
