"""Run the operator's rejoin command template (`ssh {address} sudo systemctl start consul`)."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Sequence

from tagjoin.core.errors import ConfigError, TagjoinError

_TIMEOUT = 120.0

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=_TIMEOUT, check=False)


class RejoinCommand:
    def __init__(self, template: str, runner: Runner = _run) -> None:
        try:
            tokens = shlex.split(template)
            for token in tokens:
                token.format(address="10.0.0.1", node="node")
        except (ValueError, KeyError, IndexError) as exc:
            raise ConfigError(
                f"rejoin command {template!r} is not valid ({exc}); use {{address}} and {{node}}, "
                "e.g. 'ssh {address} sudo systemctl start consul'"
            ) from None
        if not tokens:
            raise ConfigError("the rejoin command is empty")
        self.template = template
        self._tokens = tokens
        self._runner = runner

    def argv(self, node: str, address: str) -> list[str]:
        # Split first, substitute after: a node name can never become extra words or options
        # of a shell, because there is no shell.
        return [t.format(address=address, node=node) for t in self._tokens]

    def run(self, node: str, address: str) -> str:
        argv = self.argv(node, address)
        try:
            done = self._runner(argv)
        except FileNotFoundError:
            raise TagjoinError(f"rejoin {node}: command {argv[0]!r} not found") from None
        except subprocess.TimeoutExpired:
            raise TagjoinError(f"rejoin {node}: {shlex.join(argv)} did not finish in {_TIMEOUT:g}s") from None
        if done.returncode != 0:
            err = " ".join((done.stderr or done.stdout or "").split())[:200]
            raise TagjoinError(f"rejoin {node}: {shlex.join(argv)} exited {done.returncode}: {err or 'no output'}")
        return f"ran {shlex.join(argv)}"
