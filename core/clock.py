"""Injected time and randomness, so the simulator can run core code in virtual time."""

from __future__ import annotations

import random
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait; a virtual clock only advances its own time."""
        ...


class SystemClock:
    """The wall clock, for production use."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


def system_random() -> random.Random:
    """A private generator for jitter in production; the simulator passes a seeded one."""
    return random.Random()
