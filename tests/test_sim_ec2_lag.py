"""EC2's eventual consistency in the simulator (tagjoin/sim/aws/ec2_lag.py): what readers see, when."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import asdict

import pytest

from tagjoin.core.aws.ec2_api import Ec2Api
from tagjoin.core.cli import main
from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.aws.ec2_lag import Ec2Lag, LaggedEc2, LagSpec, parse_lag
from tagjoin.sim.aws.moto_direct import MotoDirectEc2
from tagjoin.sim.harness.metrics import percentile
from tagjoin.sim.harness.scenario import CLUSTER, TAG_KEY, ScenarioConfig, build, run_scenario

CONSTANT = LagSpec(500.0, 500.0, 500.0)  # sigma 0: every lag is exactly 500 ms


class Clock:
    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        return self.t


@pytest.fixture
def world() -> Iterator[Ec2World]:
    with Ec2World(0, CLUSTER) as w:
        yield w


def _plane(world: Ec2World, spec: LagSpec, clock: Clock) -> Ec2Lag:
    streams: dict[str, random.Random] = {}
    return Ec2Lag(spec, clock, lambda r: streams.setdefault(r, random.Random(r)), world.region)


def _holders(api: Ec2Api, world: Ec2World) -> dict[str, str]:
    """node → leader tag value, of the running instances `api`'s reader finds by the tag."""
    filters = [
        {"Name": "tag-key", "Values": [TAG_KEY]},
        {"Name": "instance-state-name", "Values": ["running"]},
        {"Name": f"tag:{world.cluster_tag_key}", "Values": [CLUSTER]},
    ]
    found: dict[str, str] = {}
    token: str | None = None
    while True:  # a scenario's EC2 pages by one reservation
        page = api.describe_instances(filters, next_token=token)  # type: ignore[arg-type]
        found.update((world.node_of(i.instance_id), i.tags[TAG_KEY]) for i in page.instances)
        token = page.next_token
        if token is None:
            return found


def _tagged(api: Ec2Api, world: Ec2World) -> dict[str, str]:
    page = api.describe_tags([{"Name": "key", "Values": [TAG_KEY]}])
    return {world.node_of(t.resource_id): t.value for t in page.tags}


def test_a_write_is_invisible_to_a_reader_before_its_lag_and_visible_after(world: Ec2World) -> None:
    b = world.launch("b")
    clock = Clock()
    lag = _plane(world, CONSTANT, clock)
    lag.sync()
    writer = lag.api(MotoDirectEc2(world.region), lambda: "a")
    reader = writer.for_reader("r")
    clock.t = 1_000
    writer.create_tags([b], TAG_KEY, "3")
    assert world.tags_of(b)[TAG_KEY] == "3", "moto holds the write at once"
    clock.t = 1_499
    assert _holders(reader, world) == {} and _tagged(reader, world) == {}
    assert _holders(writer, world) == {}, "no read-your-writes: the writer waits its lag too"
    assert world.tags_of(b)[TAG_KEY] == "3", "a describe puts moto's own state back"
    clock.t = 1_500
    assert _holders(reader, world) == {"b": "3"} and _tagged(reader, world) == {"b": "3"}


def test_an_instance_state_change_is_seen_late(world: Ec2World) -> None:
    a = world.launch("a", extra_tags={TAG_KEY: "2"})
    clock = Clock()
    lag = _plane(world, CONSTANT, clock)
    reader = lag.api(MotoDirectEc2(world.region), lambda: "r")
    lag.sync()
    clock.t = 2_000
    world.terminate(a)
    lag.sync()
    clock.t = 2_400
    assert _holders(reader, world) == {"a": "2"}, "still running to this reader"
    assert world.state_of(a) == "terminated"
    clock.t = 2_500
    assert _holders(reader, world) == {}


@pytest.mark.parametrize(("spec", "during"), [(CONSTANT, {"a": "1"}), (LagSpec(500, 500, 500, True), {})])
def test_a_handoff_as_read_in_between_ordered_or_delete_first(
    world: Ec2World, spec: LagSpec, during: dict[str, str]
) -> None:
    a = world.launch("a", extra_tags={TAG_KEY: "1"})
    b = world.launch("b")
    clock = Clock()
    lag = _plane(world, spec, clock)
    lag.sync()
    keeper = lag.api(MotoDirectEc2(world.region), lambda: "b")
    reader = keeper.for_reader("joiner")
    clock.t = 1_000
    keeper.create_tags([b], TAG_KEY, "2")  # the handoff: tag the new leader, then untag the old
    keeper.delete_tags([a], TAG_KEY, "1")
    clock.t = 1_200
    # Ordered: neither write seen yet. Adversarial: the delete is seen before the create before it.
    assert _holders(reader, world) == during
    clock.t = 1_500
    assert _holders(reader, world) == {"b": "2"}


def test_reads_are_monotone_per_reader_and_attribute(world: Ec2World) -> None:
    b = world.launch("b")
    clock = Clock()
    lag = _plane(world, LagSpec(300, 3_000, 10_000), clock)
    lag.sync()
    api = lag.api(MotoDirectEc2(world.region), lambda: "w")
    readers = [api.for_reader(f"r{i}") for i in range(5)]
    for n in range(1, 6):
        clock.t = n * 100
        api.create_tags([b], TAG_KEY, str(n))
    last = [0] * len(readers)
    for t in range(500, 12_000, 50):
        clock.t = t
        for i, reader in enumerate(readers):
            seen = int(_holders(reader, world).get("b", "0"))
            assert seen >= last[i], f"reader r{i} went back from {last[i]} to {seen} at {t} ms"
            last[i] = seen
    assert last == [5] * len(readers), "every reader ends on the newest write"


def test_strong_means_no_plane_and_writes_seen_at_once() -> None:
    assert parse_lag("strong") is None
    with Ec2World(0, CLUSTER) as world:
        s = build(ScenarioConfig(seed=0, ec2_lag="strong"), world)
        assert s.lag is None and not isinstance(s.fleet.ec2, LaggedEc2)
        iid = s.node_instance[sorted(s.node_instance)[0]]
        s.fleet.ec2.create_tags([iid], TAG_KEY, "7")
        assert _holders(s.fleet.ec2, world) == {world.node_of(iid): "7"}
    with Ec2World(0, CLUSTER) as world:
        s = build(ScenarioConfig(seed=0, ec2_lag="default"), world)
        assert s.lag is not None and isinstance(s.fleet.ec2, LaggedEc2)
        s.fleet.ec2.create_tags([iid], TAG_KEY, "7")
        assert _holders(s.fleet.ec2, world) == {}, "the same write, lagged"


def test_the_default_lag_has_the_documented_percentiles() -> None:
    spec = parse_lag("default")
    assert spec == LagSpec()
    rng = random.Random(1)
    draws = [float(spec.draw(rng)) for _ in range(20_000)]
    assert 185 <= (percentile(draws, 50) or 0) <= 215
    assert 1_700 <= (percentile(draws, 99) or 0) <= 2_300
    assert max(draws) <= spec.max_ms


def test_the_tag_timeline_is_what_a_reader_sees() -> None:
    # A constant lag: the timeline the metrics and L1 judge changes exactly 700 ms after writes.
    config = ScenarioConfig(seed=3, faults=("crash",), ec2_lag="p50=700ms,p99=700ms,max=700ms")
    rec = run_scenario(config)
    assert rec.violations == []
    changes = {sample.t for sample in rec.tags} - {0}
    assert changes and changes <= {w.t + 700 for w in rec.writes}, (sorted(changes), rec.writes)


def test_the_same_seed_gives_the_same_recording_with_lag_on() -> None:
    config = ScenarioConfig(seed=0, ec2_lag="default")
    first = asdict(run_scenario(config))
    assert asdict(run_scenario(config)) == first
    assert asdict(run_scenario(ScenarioConfig(seed=0))) != first, "the lag changes what this seed records"
    adversarial = ScenarioConfig(seed=0, ec2_lag="adversarial")
    assert asdict(run_scenario(adversarial)) == asdict(run_scenario(adversarial))


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("default", LagSpec()),
        ("adversarial", LagSpec(adversarial=True)),
        ("p50=150ms,p99=1.5s", LagSpec(150, 1_500, 20_000)),
        ("max=5s, adversarial ,p50=100ms", LagSpec(100, 2_000, 5_000, True)),
        ("p50=3s", LagSpec(3_000, 3_000, 20_000)),
        ("p99=30s", LagSpec(200, 30_000, 30_000)),
    ],
)
def test_good_lag_specs(text: str, spec: LagSpec) -> None:
    assert parse_lag(text) == spec


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "bad EC2 lag"),
        ("eventual", "bad EC2 lag"),
        ("p50=1x", "not a duration"),
        ("p50=200", "not a duration"),
        ("p50=0ms", "above 0"),
        ("p50=2s,p99=1s", "p50 <= p99 <= max"),
        ("p99=5s,max=1s", "p50 <= p99 <= max"),
        ("p50=1s,p50=2s", "given twice"),
        ("p75=1s", "bad EC2 lag"),
    ],
)
def test_bad_lag_specs(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_lag(text)


def test_sim_run_rejects_a_bad_lag_in_one_line_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["sim", "run", "--ec2-lag", "p50=fast"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--ec2-lag" in err and "not a duration" in err and err.count("\n") == 1


def test_sim_run_takes_a_lag_spec(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sim", "run", "--quiet", "--jobs", "1", "--seed", "3", "--faults", "crash", "--json"]
    assert main([*args, "--ec2-lag", "p50=700ms,p99=700ms,max=700ms"]) == 0
    lagged = capsys.readouterr().out
    assert main([*args, "--ec2-lag", "strong"]) == 0
    strong = capsys.readouterr().out
    assert lagged != strong


def test_the_lag_plane_sits_above_either_ec2_path() -> None:
    # The plane stages a reader's view into moto itself, so botocore's path answers from it too.
    direct = ScenarioConfig(seed=1, ec2_lag="adversarial")
    boto3 = ScenarioConfig(seed=1, ec2_lag="adversarial", ec2="boto3")
    assert asdict(run_scenario(direct)) == asdict(run_scenario(boto3))
