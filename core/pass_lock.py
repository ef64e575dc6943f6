"""One handoff pass at a time on a node, whichever process runs it.

A node may run both `tagjoin keep` and a `consul watch` handler (a kit that ships both, or an
operator who added one). EC2's CreateTags is unconditional, so two passes of different terms that
overlap on one node can lower its own tag: a pass that read at term 5 and stalled writes `5` over
the `7` a newer pass just wrote. Holding an exclusive lock for the whole pass rules that out; the
pass that finds the lock taken writes nothing and leaves the work to the holder (the keeper looks
again one interval later).

`flock` is released by the kernel when the holding process dies, so a crashed pass never leaves
the lock behind.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from tagjoin.core.errors import ConfigError

LOCK_ENV = "TAGJOIN_LOCK_FILE"
DEFAULT_NAME = "tagjoin-handoff.lock"


class PassLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits."""
        ...

    def release(self) -> None: ...


class FileLock:
    """An advisory `flock` on a file every tagjoin process of the node agrees on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return False  # one pass of this process already holds it
        try:
            # Read-only is enough for flock, and works when another user created the file.
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot open the handoff lock {self.path}: {exc.strerror}; set {LOCK_ENV}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def lock_from_env(env: Mapping[str, str]) -> FileLock:
    """TAGJOIN_LOCK_FILE, or a file in the system's temporary directory that every user can open."""
    raw = env.get(LOCK_ENV)
    return FileLock(Path(raw) if raw else Path(tempfile.gettempdir()) / DEFAULT_NAME)
