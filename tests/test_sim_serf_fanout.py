"""Serf in large pools: batched view changes, the per-recipient reading of a gossip message, and
memberlist's push-pull interval that grows with the pool."""

from __future__ import annotations

import gc
import math
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial

import pytest

from tagjoin.core.model import MemberStatus
from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.consul import serf as serf_module
from tagjoin.sim.consul.cluster import Cluster, build_cluster
from tagjoin.sim.consul.cluster_events import MemberChanged
from tagjoin.sim.consul.serf import PUSH_PULL_SCALE_THRESHOLD, MemberEntry, Serf, push_pull_scale
from tagjoin.sim.harness.scenario import CLUSTER, ScenarioConfig, build, finish, run_scenario
from tagjoin.sim.kernel.collector import SCENARIO_THRESHOLDS, paced_collector
from tagjoin.sim.kernel.machine import Node

# -- batched view changes ---------------------------------------------------------------------------


def _joined_pool(seed: int, *, heard: bool) -> tuple[Cluster, list[MemberChanged]]:
    """3 servers and 40 clients joined one by one, with or without a MemberChanged subscriber."""
    cluster = build_cluster(seed, servers=3, clients=40, join=False)
    seen: list[MemberChanged] = []
    if heard:
        cluster.subscribe(MemberChanged, seen.append)
    first = cluster.nodes[cluster.servers()[0]].ip
    for name in sorted(cluster.nodes):
        if cluster.nodes[name].ip != first:
            cluster.join(name, first)
            cluster.engine.run_for(300)
    cluster.engine.run_for(60_000)
    return cluster, seen


@pytest.mark.parametrize("held", [None, 3])
def test_a_subscriber_hears_every_view_change_and_the_trace_stays_as_it_was(
    held: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client's changes are held to the end of the exchange or delivery, or until `held` of them
    # wait, and then told together: a subscriber hears each of them, and listening must not change
    # the trace.
    if held is not None:
        monkeypatch.setattr(serf_module, "_HELD_CHANGES", held)
    unheard, _ = _joined_pool(5, heard=False)
    heard, seen = _joined_pool(5, heard=True)
    assert unheard.engine.trace.count == heard.engine.trace.count
    assert unheard.engine.trace_hash() == heard.engine.trace_hash()
    assert len(seen) >= 43 * 42, "every view learned every other member, each change an event"
    assert all(v.keys() == heard.serf.views[k].keys() for k, v in unheard.serf.views.items())


def test_the_trace_names_each_server_view_change_and_counts_the_clients() -> None:
    cluster, seen = _joined_pool(8, heard=True)
    lines = [event for _, _, event in cluster.engine.trace.lines() if event.startswith("MemberChanged")]
    assert cluster.engine.trace.count < 20_000, "the whole trace is in lines()"
    servers = set(cluster.servers())
    named = [line for line in lines if "observer=" in line]
    counted = [int(line.split("changes=")[1].split()[0]) for line in lines if " clients changes=" in line]
    by_servers = [ev for ev in seen if ev.observer in servers]
    # A server's changes drive Consul's reconcile: each keeps its line, as does an agent's change
    # of its own entry; other changes of a client's view are counted in batches.
    assert all(f"observer={ev.observer} subject={ev.subject} " in " ".join(named) for ev in by_servers)
    # The subscriber came after each agent had started, alive in its own view: a line each.
    assert len(named) + sum(counted) == len(seen) + len(cluster.nodes)
    assert len(counted) < sum(counted) / 10, "a batch holds many changes"


def _run_scenario_keeping_serf(config: ScenarioConfig) -> tuple[str, Serf]:
    """One whole scenario; its trace hash and the Serf state left at the end, for comparing rules."""
    with Ec2World(config.seed, CLUSTER) as world:
        s = build(config, world)
        s.cluster.engine.run_until(config.duration_ms)
        finish(s)
        return s.cluster.engine.trace_hash(), s.cluster.serf


@pytest.mark.parametrize("faults", [("partition",), ("restart-all",), ("replace",), ("leave",)])
def test_a_clients_written_out_take_does_what_apply_does(
    faults: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `_take_held_many` writes out `_apply` for a client's view of other members; `_apply` itself,
    # entry by entry, is the reference, for every run of entries a push-pull or a gossip message
    # hands a client.
    config = ScenarioConfig(seed=6, clients=30, joiners=3, faults=faults)

    def run() -> tuple[object, ...]:
        trace, serf = _run_scenario_keeping_serf(config)
        return trace, serf.views, serf._newest, serf._behind, serf._behind_on

    written_out = run()

    def reference(
        self: Serf, node: Node, held: dict[str, MemberEntry], entries: Iterable[MemberEntry]
    ) -> list[MemberEntry]:
        return [entry for entry in entries if self._apply(node.name, entry)]

    monkeypatch.setattr(Serf, "_take_held_many", reference)
    assert run() == written_out


def _push_pull_by_the_rule(serf: Serf, a: Node, b: Node) -> None:
    """memberlist's exchange as a rule over every name either side holds: the newest entry of each
    (the first side's on a tie), offered to each side in turn by `_apply`, and what was new to
    either gossiped on. `Serf._push_pull` reads only the lag indexes and takes a client's runs in
    one call; it must do what this does."""
    merged: dict[str, MemberEntry] = {}
    for view in (serf.view(a.name), serf.view(b.name)):
        for name, entry in view.items():
            if name not in merged or entry.version > merged[name].version:
                merged[name] = entry
    news = []
    with serf._batched_changes():
        for name in sorted(merged):
            learned = [serf._apply(side.name, merged[name]) for side in (a, b)]
            if any(learned):
                news.append(merged[name])
    if news:
        serf._gossip(a.name, news)


@pytest.mark.parametrize("faults", [("partition",), ("restart-all",), ("replace", "leave"), ("ip-reuse", "pause")])
def test_a_push_pull_does_what_the_exchange_rule_does(faults: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    config = ScenarioConfig(seed=11, clients=30, joiners=3, faults=faults)

    def run() -> tuple[object, ...]:
        trace, serf = _run_scenario_keeping_serf(config)
        return trace, serf.views, serf._newest, serf._behind, serf._behind_on

    indexed = run()
    monkeypatch.setattr(Serf, "_push_pull", _push_pull_by_the_rule)
    assert run() == indexed


def _partner_by_the_rule(serf: Serf, me: str) -> str:
    """memberlist's push-pull partner written out: a random choice among the alive members of
    `me`'s list other than itself, in `members` order."""
    candidates = [m.name for m in serf.members(me) if m.status == MemberStatus.ALIVE and m.name != me]
    return serf._sync_rng.choice(candidates) if candidates else ""


@pytest.mark.parametrize("faults", [("crash", "leave"), ("partition",), ("replace", "ip-reuse")])
def test_a_push_pull_partner_is_the_one_the_rule_draws(
    faults: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `_push_pull_partner` reads a view that holds every newest entry off the ordered list of
    # alive members rather than the view: the same draw, the same partner, the same run. Most
    # exchanges in a settled pool change nothing, so the partners themselves are compared.
    config = ScenarioConfig(seed=4, clients=40, joiners=3, faults=faults)

    def run(choose: Callable[[Serf, str], str]) -> tuple[list[tuple[str, str, bool]], object]:
        drawn: list[tuple[str, str, bool]] = []

        def noted(self: Serf, me: str) -> str:
            from_the_list = self._behind.get(me) == set()
            drawn.append((me, choose(self, me), from_the_list))
            return drawn[-1][1]

        monkeypatch.setattr(Serf, "_push_pull_partner", noted)
        trace, serf = _run_scenario_keeping_serf(config)
        return drawn, (trace, serf.views, serf._newest, serf._behind)

    listed, listed_state = run(Serf._push_pull_partner)
    assert sum(from_the_list for _, _, from_the_list in listed) > 40
    ruled, ruled_state = run(_partner_by_the_rule)
    assert listed == ruled
    assert listed_state == ruled_state


def _reassess_pair_by_pair(serf: Serf, names: Iterable[str], found: Counter[str]) -> None:
    """`Serf.reassess` as a rule over every (observer, member) pair: what the indexed one must do."""
    now = serf.host.engine.now
    nodes = [n for n in (serf.host.node(name) for name in sorted(names)) if n is not None]
    newly_lost: set[str] = set()
    reconnect: list[Node] = []
    for obs in nodes:
        if not obs.responsive:
            continue
        view = serf.view(obs.name)
        lost = serf._lost_at.setdefault(obs.name, {})
        wants_reconnect = False
        for subj in nodes:
            entry = view.get(subj.name)
            if entry is None or subj is obs:
                continue
            if subj.responsive and serf.host.lan_group(subj.name) == serf.host.lan_group(obs.name):
                lost.pop(subj.name, None)
                if entry.status == MemberStatus.FAILED and subj.name not in serf.leaving:
                    wants_reconnect = True
            elif entry.status in (MemberStatus.ALIVE, MemberStatus.LEAVING) and subj.name not in lost:
                lost[subj.name] = now
                newly_lost.add(subj.name)
        if wants_reconnect:
            reconnect.append(obs)
    found["lost"] += len(newly_lost)
    found["reconnect"] += len(reconnect)
    for subject in sorted(newly_lost):
        delay = serf._detection_delay(subject)
        serf.host.engine.schedule(delay, partial(serf._detect, subject, now), "serf.detect", subject)
    for obs in reconnect:
        delay = serf._reconnect_rng.randrange(serf.timings.reconnect_interval_ms)
        serf.host.engine.schedule(delay, partial(serf._reconnect, obs), "serf.reconnect", obs.name)


@pytest.mark.parametrize(
    "faults",
    [
        ("partition",),
        ("crash", "pause"),
        ("restart-all",),
        ("leave", "replace", "crash"),
        ("leave", "partition", "pause"),
    ],
)
def test_reassess_decides_what_looking_at_every_pair_decides(
    faults: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    # reassess reads only the names that can change per observer; the rule is every pair's.
    config = ScenarioConfig(seed=3, clients=25, joiners=2, faults=faults)

    def run() -> tuple[object, ...]:
        trace, serf = _run_scenario_keeping_serf(config)
        lost = {obs: dict(sorted(names.items())) for obs, names in serf._lost_at.items() if names}
        return trace, serf.views, lost

    indexed = run()
    found: Counter[str] = Counter()
    monkeypatch.setattr(Serf, "reassess", lambda self, names: _reassess_pair_by_pair(self, names, found))
    assert run() == indexed
    assert found["lost"] > 0, "the faults cut some links"


def test_reassess_after_a_long_partition_sends_the_same_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    # Long enough for each side to declare the other failed: at the heal, the observers holding a
    # failed member that is reachable again reconnect. The indexed reassess must pick the same.
    def run() -> tuple[str, int]:
        cluster = build_cluster(4, servers=3, clients=12)
        cluster.engine.run_for(30_000)
        names = sorted(cluster.nodes)
        cluster.partition([names[:7]])
        cluster.engine.run_for(60_000)
        views = cluster.serf.views.values()
        failed = sum(1 for view in views if any(e.status == MemberStatus.FAILED for e in view.values()))
        cluster.heal()
        cluster.engine.run_for(60_000)
        return cluster.engine.trace_hash(), failed

    indexed, failed = run()
    assert failed > 7, "both sides declared the other failed"
    found: Counter[str] = Counter()
    monkeypatch.setattr(Serf, "reassess", lambda self, names: _reassess_pair_by_pair(self, names, found))
    assert run() == (indexed, failed)
    assert found["reconnect"] >= failed - 1, "every observer holding a failed member reconnects at the heal"


def test_reassess_loses_a_member_cut_off_while_it_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    # Views that hold a member as leaving lose it when it is cut off before it has left.
    def run(seed: int) -> tuple[str, int]:
        cluster = build_cluster(seed, servers=3, clients=8)
        cluster.engine.run_for(30_000)
        leaver = sorted(cluster.nodes)[-1]
        cluster.leave(leaver)
        cluster.engine.run_for(cluster.serf.timings.gossip_ms[1])
        views = cluster.serf.views.values()
        holding = sum(1 for view in views if view[leaver].status == MemberStatus.LEAVING)
        cluster.partition([[leaver]])
        cluster.engine.run_for(30_000)
        return cluster.engine.trace_hash(), holding

    indexed = [run(seed) for seed in range(4)]
    assert any(holding > 1 for _, holding in indexed), "others heard the leave before the cut"
    found: Counter[str] = Counter()
    monkeypatch.setattr(Serf, "reassess", lambda self, names: _reassess_pair_by_pair(self, names, found))
    assert [run(seed) for seed in range(4)] == indexed


def test_reassess_sends_no_reconnect_for_a_member_that_is_leaving(monkeypatch: pytest.MonkeyPatch) -> None:
    # Serf's reconnector picks only failed members, and a leave intent moves a failed member to
    # left (serf.go handleNodeLeaveIntent): an observer that holds a member as failed does not
    # reconnect to it once it is leaving, though the heal makes it reachable again.
    def run(seed: int, reconnects: list[str]) -> tuple[str, int]:
        cluster = build_cluster(seed, servers=3, clients=8)
        cluster.engine.run_for(30_000)
        leaver = sorted(cluster.nodes)[-1]
        cluster.partition([[leaver]])
        cluster.engine.run_for(30_000)
        views = cluster.serf.views
        failed = sum(1 for name, view in views.items() if name != leaver and view[leaver].status == MemberStatus.FAILED)
        cluster.leave(leaver)
        cluster.engine.run_for(1)  # the leave's Serf phase starts on a timer of its own
        assert leaver in cluster.serf.leaving
        reconnects.clear()
        cluster.heal()
        cluster.engine.run_for(30_000)
        assert all(view[leaver].status == MemberStatus.LEFT for name, view in views.items() if name != leaver)
        return cluster.engine.trace_hash(), failed

    called: list[str] = []
    reconnect = Serf._reconnect

    def spied(self: Serf, obs: Node) -> None:
        called.append(obs.name)
        reconnect(self, obs)

    monkeypatch.setattr(Serf, "_reconnect", spied)
    indexed = [(run(seed, called), sorted(set(called))) for seed in range(3)]
    for (_, failed), observers in indexed:
        assert failed >= 10, "every other agent declared the leaver failed"
        # The leaver holds the others as failed and may reconnect; none of them reconnects to it.
        assert len(observers) <= 1
    found: Counter[str] = Counter()
    monkeypatch.setattr(Serf, "reassess", lambda self, names: _reassess_pair_by_pair(self, names, found))
    assert [(run(seed, called), sorted(set(called))) for seed in range(3)] == indexed


@pytest.mark.parametrize("faults", [("restart-all",), ("partition",), ("leave",), ("ip-reuse",)])
def test_a_subscriber_after_the_boot_leaves_the_trace_as_it_was(faults: tuple[str, ...]) -> None:
    config = ScenarioConfig(seed=9, clients=36, joiners=3, faults=faults)

    def trace(heard: bool) -> tuple[str, int]:
        with Ec2World(config.seed, CLUSTER) as world:
            s = build(config, world)
            seen: list[MemberChanged] = []
            if heard:
                s.cluster.subscribe(MemberChanged, seen.append)
            s.cluster.engine.run_until(config.duration_ms)
            finish(s)
            return s.cluster.engine.trace_hash(), len(seen)

    (plain, _), (heard, events) = trace(False), trace(True)
    assert events > 0
    assert plain == heard


# -- reading a gossip message per recipient -----------------------------------------------------------


def _spec(serf: Serf, observer: str, entries: list[MemberEntry]) -> list[MemberEntry]:
    """What a recipient takes from a message, entry by entry: the rule `_news_for` must keep."""
    behind = serf._behind.get(observer)
    if behind is None:
        return list(entries)
    return [e for e in entries if e.name in behind or e.version > serf._newest.get(e.name, 0)]


def test_news_for_picks_what_the_entry_by_entry_rule_picks() -> None:
    config = ScenarioConfig(seed=4, clients=30, joiners=3, faults=("crash", "partition"))
    checked = 0
    with Ec2World(config.seed, CLUSTER) as world:
        s = build(config, world)
        serf = s.cluster.serf
        for t in range(5_000, config.duration_ms + 1, 5_000):
            s.cluster.engine.run_until(t)
            # Each view, sent as a message, and a message with an entry newer than any view holds.
            messages = [sorted(view.values(), key=lambda e: e.name) for view in serf.views.values()]
            first = messages[0][0]
            ahead = MemberEntry(first.name, first.addr, first.status, serf._version + 1, first.tags)
            messages.append([ahead, *messages[1][1:]])
            for entries in messages:
                at = {e.name: i for i, e in enumerate(entries)}
                for observer in serf.views:
                    picked = list(serf._news_for(observer, entries, at, list(range(len(entries)))))
                    assert picked == _spec(serf, observer, entries), (t, observer)
                    checked += 1
        finish(s)
    assert checked > 1000


# -- memberlist's push-pull interval ------------------------------------------------------------------


def test_push_pull_scale_is_memberlists_formula() -> None:
    # memberlist util.go pushPullScale, in floating point as Go computes it.
    for n in range(0, 6000):
        if n <= PUSH_PULL_SCALE_THRESHOLD:
            want = 30_000
        else:
            want = int(math.ceil(math.log2(n) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1.0) * 30_000
        assert push_pull_scale(30_000, n) == want, n
    assert push_pull_scale(30_000, 33) == 60_000
    assert push_pull_scale(30_000, 1003) == 180_000


def test_a_pool_past_32_members_exchanges_state_less_often() -> None:
    # Each agent re-arms its exchange at half to one and a half intervals: at the unscaled 30 s no
    # exchange is ever due more than 45 s ahead; 43 members double the interval.
    cluster = build_cluster(3, servers=3, clients=40)
    cluster.engine.run_for(120_000)
    now = cluster.engine.now
    due = [t - now for t, _, timer in cluster.engine._heap if timer.label == "serf.push-pull" and not timer.cancelled]
    assert len(due) == 43
    assert max(due) > 45_000
    assert all(0 <= d < 90_000 for d in due)


# -- the collector's pacing ------------------------------------------------------------------------------


def test_paced_collector_sets_the_thresholds_and_puts_them_back() -> None:
    before = gc.get_threshold()
    with paced_collector():
        assert gc.get_threshold() == SCENARIO_THRESHOLDS
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), paced_collector():
        raise RuntimeError("a scenario that fails")
    assert gc.get_threshold() == before


def test_a_scenario_runs_with_the_paced_collector() -> None:
    seen: list[tuple[int, int, int]] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(gc.get_threshold())

    gc.callbacks.append(note)
    try:
        run_scenario(ScenarioConfig(seed=1, clients=20))
    finally:
        gc.callbacks.remove(note)
    assert seen, "the scenario allocated enough for a collection"
    assert set(seen) == {SCENARIO_THRESHOLDS}


def test_held_changes_are_told_even_when_the_exchange_fails() -> None:
    # One call per change would have traced each change before the failure; so must the batch.
    cluster = build_cluster(8, servers=3, clients=6, join=False)
    serf = cluster.serf
    client = cluster.nodes[cluster.clients()[0]]
    server = cluster.nodes[cluster.servers()[0]]
    lines_before = cluster.engine.trace.count
    with pytest.raises(RuntimeError), serf._batched_changes():
        serf._apply(client.name, serf.view(server.name)[server.name])
        assert serf._pending, "a client's change is held"
        raise RuntimeError("an exchange that fails part way")
    assert serf._pending is None
    assert cluster.engine.trace.count == lines_before + 1


def test_a_change_a_subscriber_makes_while_held_changes_are_told_is_told_too() -> None:
    cluster = build_cluster(1, servers=3, clients=3)
    cluster.engine.run_for(20_000)
    serf = cluster.serf
    a, b, x = cluster.clients()
    heard: list[tuple[str, str, str]] = []

    def on_change(event: MemberChanged) -> None:
        heard.append((event.observer, event.subject, event.addr))
        if len(heard) == 1:  # b's view takes a newer entry of x at once (a gossip message would)
            moved = serf.views[b][x]
            serf._apply(b, MemberEntry(x, "10.9.9.9", moved.status, serf._next_version(), moved.tags))

    cluster.subscribe(MemberChanged, on_change)
    with serf._batched_changes():  # as a push-pull or a gossip delivery holds a client's changes
        held = serf.views[a][x]
        serf._apply(a, MemberEntry(x, "10.8.8.8", held.status, serf._next_version(), held.tags))
    assert serf.views[b][x].addr == "10.9.9.9"
    assert heard == [(a, x, "10.8.8.8"), (b, x, "10.9.9.9")]
    counted = [e for _, _, e in cluster.engine.trace.lines() if " clients changes=" in e]
    assert counted[-2:] == [f"MemberChanged clients changes=1 first={n}:{x} last={n}:{x}" for n in (a, b)]
