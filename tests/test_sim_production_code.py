"""Every tag write in a simulation comes from the code a production node runs, not from a copy.

At each CreateTags/DeleteTags the Python stack is read, innermost first. Below the first
production entry point (`Keeper.loop`, the keeper `tagjoin keep` runs, or `handle_event`, what
`tagjoin watch-handler` runs) every frame must belong to tagjoin.core or to the AWS libraries: a
simulator module there would mean a simulated node decides something production does not.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType

import pytest

from tagjoin.core.boot import BootMode, BootPlan, Lookup
from tagjoin.core.discover import select_targets
from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.aws.ec2_faults import Ec2Call
from tagjoin.sim.consul.cluster_events import NodeAdded, NodeRestarted
from tagjoin.sim.harness.scenario import CLUSTER, ScenarioConfig, build, finish
from tagjoin.sim.kernel.engine import Engine

ENTRY_POINTS = {
    ("tagjoin.core.keeper", "loop"),
    ("tagjoin.core.watch_handler", "handle_event"),
}
LIBRARIES = ("botocore", "boto3", "moto", "urllib3", "werkzeug", "responses", "xmltodict", "jinja2")


def _path_to_entry(frame: FrameType | None) -> tuple[list[str], tuple[str, str] | None]:
    """Modules from the write up to the first production entry point (innermost first)."""
    seen: list[str] = []
    while frame is not None:
        module = str(frame.f_globals.get("__name__", "?"))
        where = (module, frame.f_code.co_name)
        if where in ENTRY_POINTS:
            return seen, where
        seen.append(module)
        frame = frame.f_back
    return seen, None


def _writes(strategy: str) -> list[tuple[list[str], tuple[str, str] | None]]:
    writes: list[tuple[list[str], tuple[str, str] | None]] = []

    def observe(call: Ec2Call) -> None:
        if call.action in ("CreateTags", "DeleteTags") and call.fault is None:
            writes.append(_path_to_entry(sys._getframe(1)))

    # A leader crash and a leave: the tag moves at least twice in each run.
    for seed, fault in ((1, "crash"), (2, "leave")):
        with Ec2World(seed, CLUSTER) as world:
            s = build(ScenarioConfig(seed=seed, strategy=strategy, faults=(fault,), joiners=0), world)
            s.faults.add_observer(observe)
            s.cluster.engine.run_until(s.config.duration_ms)
            finish(s)
    assert len(writes) >= 4, "the scenarios moved the tag too rarely to prove anything"
    return writes


@pytest.mark.parametrize(("strategy", "entry"), [("fenced", "loop"), ("watch", "handle_event")])
def test_every_tag_write_comes_from_production_code(strategy: str, entry: str) -> None:
    for below, found in _writes(strategy):
        assert found is not None and found[1] == entry, f"a tag write outside {entry}: {below}"
        foreign = [m for m in below if not m.startswith(("tagjoin.core", "tagjoin.sim.aws", *LIBRARIES))]
        assert foreign == [], f"simulator code between the production entry point and the write: {foreign}"


def test_the_check_sees_a_handler_that_production_does_not_run() -> None:
    # The naive baseline's handler is the simulator's model of a shell script: exactly what the
    # check above must catch if a production strategy ever ran such code.
    writes = _writes("naive")
    assert all(found is None for _, found in writes)
    assert all("tagjoin.sim.harness.naive_strategy" in below for below, _ in writes)


# booting nodes ----------------------------------------------------------------------------------

BOOT_ENTRY = ("tagjoin.core.boot", "plan_boot")
# The lookups `tagjoin boot-plan` hands plan_boot (core/cli.py cmd_boot_plan), as the simulator wires them.
BOOT_WIRING = {("tagjoin.sim.harness.booting", "holders"), ("tagjoin.sim.harness.booting", "members")}
BootPolicy = Callable[..., BootPlan | None]


@dataclass
class BootEvidence:
    starts: list[tuple[int, str]] = field(default_factory=list)  # (t, "seed/ip") of every agent start
    plans: set[tuple[int, str]] = field(default_factory=set)  # (t, "seed/own ip") of every plan_boot lookup
    foreign: list[tuple[str, str]] = field(default_factory=list)  # simulator frames inside plan_boot's lookups

    def unplanned(self) -> list[tuple[int, str]]:
        """Agent starts with no plan_boot for that node since its previous start (or before its first)."""
        out: list[tuple[int, str]] = []
        previous: dict[str, int] = {}
        for t, ip in self.starts:
            since = previous.get(ip, -1)
            if not any(ip == p_ip and since < p_t <= t for p_t, p_ip in self.plans):
                out.append((t, ip))
            previous[ip] = t
        return out


def _plan_frame(frame: FrameType | None) -> tuple[FrameType | None, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []
    while frame is not None:
        where = (str(frame.f_globals.get("__name__", "?")), frame.f_code.co_name)
        if where == BOOT_ENTRY:
            return frame, seen
        seen.append(where)
        frame = frame.f_back
    return None, seen


def _boot_evidence(policy: BootPolicy | None) -> BootEvidence:
    evidence = BootEvidence()
    # A cold start (every first boot, servers and clients), all servers restarting at once, and a
    # crash (the joiners).
    for seed, fault in ((3, "cold-start"), (4, "restart-all"), (5, "crash")):
        with Ec2World(seed, CLUSTER) as world:
            s = build(ScenarioConfig(seed=seed, faults=(fault,), boot_policy=policy), world)
            engine = s.cluster.engine

            def observe(call: Ec2Call, engine: Engine = engine, run: int = seed) -> None:
                found, below = _plan_frame(sys._getframe(1))
                if found is None:
                    return
                evidence.plans.update((engine.now, f"{run}/{ip}") for ip in found.f_locals["own"])
                evidence.foreign.extend(
                    w for w in below if not w[0].startswith(("tagjoin.core", "tagjoin.sim.aws", *LIBRARIES))
                )

            def started(ev: NodeAdded | NodeRestarted, run: int = seed) -> None:
                evidence.starts.append((ev.t, f"{run}/{ev.ip}"))

            s.faults.add_observer(observe)
            s.cluster.subscribe(NodeAdded, started)
            s.cluster.subscribe(NodeRestarted, started)
            engine.run_until(s.config.duration_ms)
            finish(s)
    return evidence


def test_every_booting_node_decides_through_core_boot() -> None:
    evidence = _boot_evidence(None)
    assert len(evidence.starts) >= 5 + 3 + 3, "too few boots to prove anything"
    assert evidence.unplanned() == []
    assert set(evidence.foreign) <= BOOT_WIRING, "simulator code inside plan_boot's lookups"


def copied_boot_decision(
    leader_holders: Lookup,
    cluster_members: Lookup | None,
    *,
    tag_key: str,
    own_addresses: Iterable[str] = (),
    addr_type: str = "private_v4",
    server: bool = False,
    bootstrap_expect: int | None = None,
) -> BootPlan:
    """What the scenario once decided on its own: the tag's holders through select_targets."""
    del cluster_members
    own = set(own_addresses)
    picked = select_targets(leader_holders(), tag_key=tag_key, own_addresses=own, addr_type=addr_type)
    mode = BootMode.JOIN_LEADER if picked.addresses else BootMode.FORM
    return BootPlan(mode, picked.addresses, server or bootstrap_expect is not None, bootstrap_expect, ())


def test_the_check_sees_a_boot_decision_made_outside_core_boot() -> None:
    assert _boot_evidence(copied_boot_decision).unplanned() != []
