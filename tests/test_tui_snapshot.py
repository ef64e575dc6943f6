"""Snapshot tests of the console layout with fixed data and a fixed clock.

Regenerate after a deliberate UI change (or a Textual bump) with `pytest --snapshot-update`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC
from typing import Any

from textual.pilot import Pilot

from tagjoin.core.model import MemberStatus
from tagjoin.tui.actions import ActionService
from tagjoin.tui.agents import TemplateAgents
from tagjoin.tui.app import ConsoleApp
from tagjoin.tui.source import Snapshot
from tests.console_doubles import TAG_KEY, FakeConsul, FixedClock, ScriptedSource, instance, member, snapshot

T0 = 1_700_000_000.0
SIZE = (130, 36)
IPS = {"consul-1": "10.0.1.11", "consul-2": "10.0.1.12", "consul-3": "10.0.1.13"}


def state(at: float, leader: str, term: int, tagged: dict[str, str], **status: MemberStatus) -> Snapshot:
    members = [member(n, ip, status.get(n.replace("-", "_"), MemberStatus.ALIVE)) for n, ip in IPS.items()]
    members += [member("web-1", "10.0.2.21", server=False), member("web-2", "10.0.2.22", server=False)]
    insts = [
        instance(
            f"i-0{n[-1]}aa",
            ip,
            "stopped" if status.get(n.replace("-", "_")) == MemberStatus.FAILED else "running",
            {"consul-cluster": "prod", **({TAG_KEY: tagged[n]} if n in tagged else {})},
        )
        for n, ip in IPS.items()
    ]
    insts += [instance("i-0w1bb", "10.0.2.21"), instance("i-0w2bb", "10.0.2.22")]
    if "stray" in tagged:
        insts.append(instance("i-0ffcc", "10.0.9.9", "running", {TAG_KEY: tagged["stray"]}))
    return snapshot(T0 + at, IPS[leader], members, insts, term=term)


def console(history: Sequence[Snapshot], clock: FixedClock) -> tuple[ConsoleApp, ScriptedSource]:
    source = ScriptedSource(history[:1], label="consul http://127.0.0.1:8500  ec2 eu-west-1 cluster=prod")
    actions = ActionService(FakeConsul(), TemplateAgents())
    return ConsoleApp(source, actions, interval=5, clock=clock, tz=UTC), source


def replay(
    app: ConsoleApp, source: ScriptedSource, history: Sequence[Snapshot], clock: FixedClock, keys: Sequence[str] = ()
) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        # The mount's poll takes history[0]; each later one is one refresh at its own time.
        for rounds, snap in enumerate(history, start=1):
            if rounds > 1:
                clock.t = snap.fetched_at
                source.push(snap)
                for _ in range(50):
                    if app.refresh_now():
                        break
                    await app.workers.wait_for_complete()
            for _ in range(200):
                await app.workers.wait_for_complete()
                await pilot.pause()
                if app.applied >= rounds:
                    break
        if keys:
            await pilot.press(*keys)
            await pilot.pause()

    return run_before


def failover() -> list[Snapshot]:
    healthy = [state(t, "consul-1", 7, {"consul-1": "7"}) for t in range(0, 240, 5)]
    lost = [state(240 + t, "consul-2", 8, {"consul-1": "7"}, consul_1=MemberStatus.FAILED) for t in (0, 5)]
    moved = [state(250 + t, "consul-2", 8, {"consul-2": "8"}, consul_1=MemberStatus.FAILED) for t in range(0, 50, 5)]
    return healthy + lost + moved


def test_main_layout_after_a_failover(snap_compare: Any) -> None:
    history, clock = failover(), FixedClock(T0)
    app, source = console(history, clock)
    assert snap_compare(app, terminal_size=SIZE, run_before=replay(app, source, history, clock))


def test_drift_findings_and_tag_disagreement(snap_compare: Any) -> None:
    history = [
        state(0, "consul-1", 7, {"consul-1": "7"}),
        state(
            5,
            "consul-3",
            8,
            {"consul-1": "7", "stray": "3"},
            consul_1=MemberStatus.FAILED,
            consul_2=MemberStatus.LEAVING,
        ),
    ]
    clock = FixedClock(T0)
    app, source = console(history, clock)
    assert snap_compare(app, terminal_size=SIZE, run_before=replay(app, source, history, clock))


def test_confirm_dialog_names_the_node(snap_compare: Any) -> None:
    history, clock = [state(0, "consul-1", 7, {"consul-1": "7"})], FixedClock(T0)
    app, source = console(history, clock)
    assert snap_compare(app, terminal_size=SIZE, run_before=replay(app, source, history, clock, keys=("j", "l")))
