"""Serf's lag indexes, which let gossip and push-pull skip views that already hold the newest entry."""

from __future__ import annotations

import pytest

from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.consul.serf import Serf
from tagjoin.sim.harness.scenario import CLUSTER, ScenarioConfig, build, finish


def _check(serf: Serf) -> None:
    """Every index as a scan of every view would rebuild it."""
    names = set(serf._newest)
    assert names == {name for view in serf.views.values() for name in view} | names
    for name in names:
        newest = max((view[name].version for view in serf.views.values() if name in view), default=serf._newest[name])
        assert serf._newest[name] >= newest
        lagging = {
            obs for obs, view in serf.views.items() if name not in view or view[name].version < serf._newest[name]
        }
        assert serf._behind_on[name] == lagging, name
    for obs in serf.views:
        assert serf._behind[obs] == {name for name in names if obs in serf._behind_on[name]}, obs


@pytest.mark.parametrize(
    "faults",
    [
        ("partition",),
        ("restart-all",),
        ("leave",),
        ("crash",),
        ("rebuild",),
        ("replace",),
        ("partial-partition",),
        ("ip-reuse",),
    ],
)
def test_the_lag_indexes_match_the_views_through_faults(faults: tuple[str, ...]) -> None:
    config = ScenarioConfig(seed=2, clients=12, faults=faults)
    with Ec2World(config.seed, CLUSTER) as world:
        s = build(config, world)
        for t in range(10_000, config.duration_ms + 1, 10_000):
            s.cluster.engine.run_until(t)
            _check(s.cluster.serf)
        finish(s)
    assert s.rec.faults, "the fault ran"
