"""What `tagjoin watch-handler` does with one event from `consul watch`, as a steppable generator.

`consul watch` runs the handler once per change with the watch's result on stdin and the
blocking index in CONSUL_INDEX. The payload is only a trigger: the pass reads live state. A
transient fault exits 0, because the `consul watch` CLI stops for good when its handler exits
non-zero (command/watch/watch.go: "Error executing handler", exit 1); the next event or `keep`
retries. Watches in the agent's own config only log the failure and keep watching.

The CLI drives this straight through; the simulator steps it in virtual time under its model of
`consul watch`, so both run this code.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.clock import Clock
from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.errors import EXIT_OK, ConfigError, TagjoinError
from tagjoin.core.handoff import Checkpoint, Report, handoff_pass
from tagjoin.core.pass_lock import PassLock
from tagjoin.core.watch_payload import PayloadError, parse_index, parse_payload


@dataclass
class HandlerRun:
    """How the handler process ends: its exit status and the lines it printed."""

    exit_code: int = EXIT_OK
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    report: Report | None = None


def handle_event(
    payload: str | bytes,
    consul_index: str | None,
    consul: ConsulClient,
    store: TagStore,
    clock: Clock,
    *,
    instance_id: str | None = None,
    lock: PassLock | None = None,
) -> Generator[Checkpoint, None, HandlerRun]:
    """One watch event: read the trigger, run one handoff pass, say what happened."""
    run = HandlerRun()
    index = parse_index(consul_index)
    trigger = f"index {index}" if index is not None else "no CONSUL_INDEX"
    try:
        parsed = parse_payload(payload)
        trigger = f"{parsed.kind.value} watch, {parsed.count} entries, {trigger}"
    except PayloadError as exc:
        # Reconciling from live state is still right, whatever the payload says.
        run.stderr.append(f"tagjoin watch-handler: ignoring bad payload: {exc}")
    try:
        run.report = yield from handoff_pass(consul, store, clock, instance_id=instance_id, lock=lock)
    except ConfigError:
        raise  # a wrong setup fails every event alike: say so with exit 2
    except TagjoinError as exc:
        run.stderr.append(f"tagjoin watch-handler ({trigger}): {exc}; will retry on the next event")
        return run
    run.stdout.append(f"tagjoin watch-handler ({trigger}): {run.report.summary().splitlines()[0]}")
    return run
