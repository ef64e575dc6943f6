"""`console` and `sim` come from plugins: without their extra, or broken, they cost one line, never the CLI."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint
from typing import Any

import pytest

import tagjoin
from tagjoin.core import plugins
from tagjoin.core.cli import build_parser, main

# Runs the CLI as if installed without the console extra: Textual and moto are neither importable
# nor listed among the installed distributions.
WITHOUT_CONSOLE_EXTRA = """
import importlib.abc, importlib.metadata, sys

MISSING = {"textual", "moto"}

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in MISSING:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

def distribution(name, _installed=importlib.metadata.distribution):
    if name.lower() in MISSING:
        raise importlib.metadata.PackageNotFoundError(name)
    return _installed(name)

sys.meta_path.insert(0, Missing())
importlib.metadata.distribution = distribution
from tagjoin.core.cli import main
raise SystemExit(main(sys.argv[1:]))
"""

NEEDS_CONSOLE = "needs the console extra: pip install 'consul-tagjoin[console]'"


def run_without_console_extra(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_CONSOLE_EXTRA, *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args",
    [
        ["console"],
        ["console", "--demo", "--servers", "1"],
        ["sim", "run", "--seed", "0"],
        ["sim", "serve"],
    ],
)
def test_without_the_console_extra_a_plugin_command_is_one_line_and_exit_2(args: list[str]) -> None:
    out = run_without_console_extra(*args)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr.splitlines() == [f"tagjoin {args[0]}: {NEEDS_CONSOLE}"]


def test_without_the_console_extra_help_and_node_commands_still_work() -> None:
    out = run_without_console_extra("--help")
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert "targets" in out.stdout and "console" in out.stdout and "sim" in out.stdout
    out = run_without_console_extra(
        "deploy-kit", "--cluster", "prod", "--region", "eu-west-1", "--account-id", "123456789012"
    )
    assert out.returncode == 0 and out.stderr == ""


def broken_register(subparsers: Any) -> None:
    """A plugin that fails half-way: its command is already added when it raises."""
    subparsers.add_parser("broken", help="half registered").add_argument("--flag")
    raise RuntimeError("cannot register\nbroken")


@pytest.fixture
def broken_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    entry_points = [
        EntryPoint(name="broken", value=f"{__name__}:broken_register", group=plugins.GROUP),
        EntryPoint(name="gone", value="tests.no_such_module:register", group=plugins.GROUP),
        EntryPoint(name="console", value="tagjoin.tui.cli:register", group=plugins.GROUP),
    ]
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: entry_points if group == plugins.GROUP else [])


@pytest.mark.usefixtures("broken_plugins")
def test_a_broken_plugin_cannot_take_down_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "broken unavailable: RuntimeError: cannot register broken" in help_text
    assert "gone unavailable: ModuleNotFoundError: No module named 'tests.no_such_module'" in help_text
    assert "half registered" not in help_text
    assert "console the operator console" in help_text  # the working plugin is untouched


@pytest.mark.usefixtures("broken_plugins")
@pytest.mark.parametrize("args", [["broken"], ["broken", "--flag", "x", "-h"], ["gone", "run"]])
def test_running_a_broken_plugin_is_one_line_and_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"tagjoin {args[0]}: ")


def test_the_installed_entry_points_name_the_extra_they_need(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import PackageNotFoundError, distribution, entry_points

    found = {ep.name: ep for ep in entry_points(group=plugins.GROUP)}
    assert {name: found[name].extras for name in ("console", "sim")} == {"console": ["console"], "sim": ["console"]}
    assert plugins.missing_extras(found["console"]) is None  # this environment has the extra

    def without_moto(name: str) -> Any:
        if name == "moto":
            raise PackageNotFoundError(name)
        return distribution(name)

    monkeypatch.setattr("importlib.metadata.distribution", without_moto)
    assert plugins.missing_extras(found["sim"]) == NEEDS_CONSOLE


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"tagjoin {tagjoin.__version__}\n"


def test_python_dash_m_tagjoin_is_the_same_command_line() -> None:
    out = subprocess.run([sys.executable, "-m", "tagjoin", "--version"], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (0, f"tagjoin {tagjoin.__version__}\n")


@pytest.mark.parametrize(
    ("args", "seeds"),
    [
        ([], range(0, 20)),
        (["--seed", "7"], range(7, 8)),
        (["--seed-start", "5", "--seeds", "2"], range(5, 7)),
        (["--seeds", "3"], range(0, 3)),
    ],
)
def test_sim_run_seed_selection(args: list[str], seeds: range) -> None:
    from tagjoin.sim.cli import _seeds

    assert _seeds(build_parser().parse_args(["sim", "run", *args])) == seeds


def test_sim_run_seed_does_not_combine_with_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "run", "--seed", "1", "--seeds", "2"]) == 2
    assert capsys.readouterr().err == (
        "tagjoin sim: --seed runs one seed; it does not combine with --seeds or --seed-start\n"
    )
