"""argparse value types shared by every `tagjoin` subcommand (core's, the console's, the simulator's)."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

# Consul's and Go's duration units; a bare number is seconds.
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"({_NUMBER})(ns|us|µs|μs|ms|s|m|h)", re.ASCII)
_BARE = re.compile(rf"{_NUMBER}(?:[eE][+-]?\d{{1,3}})?", re.ASCII)
# Longer than any duration anyone means; it keeps a pathological argument from costing time.
_MAX_TEXT = 64
# No duration tagjoin takes is longer than a day, and a longer one reads like a unit mistake.
MAX_DURATION_S = 86_400.0

INTERVAL_RANGE = (0.1, 3600.0)  # `keep --interval`, console refresh: a tenth of a second to an hour
ANTI_ENTROPY_RANGE = (1.0, MAX_DURATION_S)


def duration(text: str) -> float:
    """Seconds from `5`, `5s`, `250ms`, `2m`, `1h`, `1m30s`, as operators write durations for Consul.

    Only finite, positive durations of at most a day: `nan`, `inf` and `1e300` would turn a loop
    into a spin or a hang.
    """
    value = _parse(text)
    if value is None:
        shown = text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"
        raise argparse.ArgumentTypeError(f"{shown!r} is not a duration (e.g. 5s, 250ms, 2m, 1m30s)")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"duration must be positive, got {text!r}")
    if value > MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"duration {text!r} is longer than a day")
    return value


def duration_between(low: float, high: float) -> Callable[[str], float]:
    """A `duration` type that refuses values outside [low, high] seconds."""

    def parse(text: str) -> float:
        value = duration(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is outside {_show(low)} to {_show(high)}")
        return value

    parse.__name__ = "duration"  # argparse names the type in its messages
    return parse


def _parse(text: str) -> float | None:
    if len(text) > _MAX_TEXT or (not text.isascii() and not set(text) & {"µ", "μ"}):
        return None
    if _BARE.fullmatch(text):
        value = float(text)
        return value if math.isfinite(value) else None
    total, pos = 0.0, 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return total if text and math.isfinite(total) else None


def _show(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds < 60:
        return f"{seconds:g}s"
    if seconds < 3600:
        return f"{seconds / 60:g}m"
    return f"{seconds / 3600:g}h"


def number_between(low: float, high: float) -> Callable[[str], float]:
    """A plain decimal number in [low, high]: `nan` and `inf` parse as floats but mean nothing here."""

    def parse(text: str) -> float:
        value = float(text) if _BARE.fullmatch(text) else math.nan
        if not low <= value <= high:  # also false for nan
            raise argparse.ArgumentTypeError(f"{text[:_MAX_TEXT]!r} is not a number from {low:g} to {high:g}")
        return value

    parse.__name__ = "number"
    return parse


def count(text: str) -> int:
    """A whole number, zero allowed."""
    if not text.isascii() or not text.strip().isdigit() or len(text) > 18:
        raise argparse.ArgumentTypeError(f"{text[:_MAX_TEXT]!r} is not a whole number")
    return int(text)


def positive(text: str) -> int:
    """A whole number of at least one."""
    value = count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
