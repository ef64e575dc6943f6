"""Booting nodes run core.boot.plan_boot: a brand-new cluster forms, every server restarting at once
recovers, and the boot script that gave up when no leader tag existed is caught by the invariants."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from tagjoin.core.boot import BootMode, BootPlan, Lookup, plan_boot
from tagjoin.sim.harness.recording import Recording
from tagjoin.sim.harness.scenario import FAULT_KINDS, ScenarioConfig, run_scenario

SEEDS = range(4)


def old_boot_join(
    leader_holders: Lookup,
    cluster_members: Lookup | None,
    *,
    tag_key: str,
    own_addresses: Iterable[str] = (),
    addr_type: str = "private_v4",
    server: bool = False,
    bootstrap_expect: int | None = None,
) -> BootPlan | None:
    """The boot-join.sh before the fix: `targets=$(tagjoin targets …) || exit $?`. With no usable
    holder of the leader tag `targets` exits 3 and the script exits: Consul never starts."""
    del cluster_members  # the old script had no fallback before starting
    plan = plan_boot(
        leader_holders,
        None,
        tag_key=tag_key,
        own_addresses=own_addresses,
        addr_type=addr_type,
        server=server,
        bootstrap_expect=bootstrap_expect,
    )
    return plan if plan.mode == BootMode.JOIN_LEADER else None


def _run(seed: int, fault: str, *, strategy: str = "fenced", old: bool = False) -> Recording:
    config = ScenarioConfig(seed=seed, strategy=strategy, faults=(fault,), boot_policy=old_boot_join if old else None)
    return run_scenario(config, keep_log=True)


def test_the_new_kinds_are_known() -> None:
    assert {"cold-start", "restart-all", "restart"} <= set(FAULT_KINDS)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_cold_start_forms_the_cluster_and_tags_its_leader(seed: int) -> None:
    rec = _run(seed, "cold-start")
    assert rec.violations == [], rec.schedule
    # The first server found nothing to join and started anyway; the tag came only afterwards.
    assert any("boot-plan: form" in line for line in rec.schedule), rec.schedule
    assert rec.leaders and rec.tags[-1].holders == {rec.leaders[-1].node: str(rec.leaders[-1].term)}


@pytest.mark.parametrize("seed", SEEDS)
def test_every_server_restarting_at_once_recovers(seed: int) -> None:
    rec = _run(seed, "restart-all")
    assert rec.violations == [], rec.schedule
    assert [f.kind for f in rec.faults] == ["restart-all"]
    restarts = [line for line in rec.schedule if "-server" in line and line.split()[0].isdigit()]
    assert len(restarts) >= 6, "three servers at t=0, then three again after the restart"
    assert rec.tags[-1].holders == {rec.leaders[-1].node: str(rec.leaders[-1].term)}


@pytest.mark.parametrize("seed", SEEDS)
def test_the_boot_that_exits_without_a_tag_is_caught(seed: int) -> None:
    old = _run(seed, "cold-start", old=True)
    assert {v.invariant for v in old.violations} == {"L1"}, old.violations
    assert old.leaders == [] and all(t.holders == {} for t in old.tags)
    assert any("Consul never starts" in line for line in old.schedule)
    assert _run(seed, "cold-start").violations == []


def _joined(rec: Recording) -> list[list[str]]:
    marker = "retry_join: joined "
    return [line.split(marker, 1)[1].split(", ") for line in rec.schedule if marker in line]


@pytest.mark.parametrize("fault", ["crash", "cold-start"])
def test_an_auto_join_on_the_servers_tag_bounds_what_each_boot_joins(fault: str) -> None:
    # The kit's default auto-join finds every instance of the cluster, and Consul's retry_join
    # joins every address it finds: each boot exchanged state with the whole fleet. On the
    # servers' tag (deploy-kit --auto-join-tag), a boot joins the servers and at most 8 members.
    servers, clients = 3, 30
    runs = {}
    for auto_join in ("cluster", "servers"):
        config = ScenarioConfig(seed=2, servers=servers, clients=clients, faults=(fault,), auto_join=auto_join)
        rec = run_scenario(config, keep_log=True)
        assert rec.violations == [], rec.schedule
        assert rec.joiners and all(j.joined is not None for j in rec.joiners), rec.joiners
        runs[auto_join] = _joined(rec)
    assert max(map(len, runs["cluster"])) > servers + 8
    assert runs["servers"] and max(map(len, runs["servers"])) <= servers + 8
    with pytest.raises(ValueError, match="unknown auto-join"):
        run_scenario(ScenarioConfig(seed=2, auto_join="everyone"))
