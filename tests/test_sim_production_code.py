"""Every tag write in a simulation comes from the code a production node runs, not from a copy.

At each CreateTags/DeleteTags the Python stack is read, innermost first. Below the first
production entry point (`Keeper.loop`, the keeper `tagjoin keep` runs, or `handle_event`, what
`tagjoin watch-handler` runs) every frame must belong to tagjoin.core or to the AWS libraries: a
simulator module there would mean a simulated node decides something production does not.
"""

from __future__ import annotations

import sys
from types import FrameType

import pytest

from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.aws.ec2_faults import Ec2Call
from tagjoin.sim.harness.scenario import CLUSTER, ScenarioConfig, build, finish

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
