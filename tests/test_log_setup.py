"""The command line's logging: text for people, JSON for shippers, -v before or after the command."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from tagjoin.core.cli import build_parser
from tagjoin.core.log_setup import ROOT, configure


@pytest.fixture(autouse=True)
def _restore_root() -> Iterator[None]:
    root = logging.getLogger(ROOT)
    handlers, level, propagate = list(root.handlers), root.level, root.propagate
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    root.propagate = propagate


def test_text_lines_name_the_component_and_hide_debug_by_default() -> None:
    out = io.StringIO()
    configure(stream=out)
    logging.getLogger("tagjoin.core.keeper").info("watching (interval %gs)", 1.0)
    logging.getLogger("tagjoin.core.aws.tag_store").debug("retry 1")
    logging.getLogger("tagjoin.core.keeper").warning("pass failed")
    assert out.getvalue().splitlines() == ["keeper: watching (interval 1s)", "keeper: warning: pass failed"]


def test_json_lines_parse_and_verbose_shows_debug() -> None:
    out = io.StringIO()
    configure(verbose=1, fmt="json", stream=out)
    logging.getLogger("tagjoin.core.aws.tag_store").debug("retry %d", 1)
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logging.getLogger("tagjoin.core.keeper").exception("unexpected")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "debug" and first["logger"] == "tagjoin.core.aws.tag_store"
    assert first["message"] == "retry 1" and isinstance(first["ts"], float)
    assert second["level"] == "error" and "RuntimeError: boom" in second["error"]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format 'xml'"):
        configure(fmt="xml")


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "--log-format", "json", "keep"],
        ["keep", "-v", "--log-format", "json"],
    ],
)
def test_log_flags_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser(load_plugins=False).parse_args(argv)
    assert args.verbose == 1 and args.log_format == "json"


def test_a_subcommand_without_log_flags_keeps_the_defaults() -> None:
    args = build_parser(load_plugins=False).parse_args(["keep"])
    assert args.verbose == 0 and args.log_format == "text"
