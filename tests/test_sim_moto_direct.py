"""The direct EC2 path (moto's models through `MotoDirectEc2`) against the reference path (botocore over moto).

Both paths are driven with the same random call sequences on two worlds built from the same seed;
everything a caller or the simulator can observe must be the same: answers, pages and tokens,
error types, codes, statuses and messages, the calls the fault plane saw, the tags left behind and
moto's random stream (which names every instance launched later in a run). Then whole scenarios:
the same seed gives the same recording, byte for byte, on either path.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.ec2 import utils as moto_ec2_utils
from moto.moto_api._internal import mock_random

from tagjoin.core.aws.boto_ec2 import BotoEc2
from tagjoin.core.aws.ec2_api import ApiFault, Ec2Api, Filter, TransportFault
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.errors import Ec2Error
from tagjoin.core.settings import Scope
from tagjoin.sim.aws.ec2_account import Ec2World, kept_running
from tagjoin.sim.aws.ec2_faults import INTERNAL, THROTTLE, UNREACHABLE, Ec2Call, Ec2Faults
from tagjoin.sim.aws.moto_direct import MotoDirectEc2, resource_id
from tagjoin.sim.harness.recording import Recording
from tagjoin.sim.harness.scenario import ScenarioConfig, run_scenario

CLUSTER = "c1"
LEADER = "consul-leader"
KEYS = (LEADER, "Name", "role", "consul-cluster")
VALUES = ("1", "7", "", "s0", CLUSTER, "other")
UNKNOWN = "i-0123456789abcdef0"
MALFORMED = "bogus-id"
LAUNCHED_AT = datetime(2026, 1, 2, 3, 4, 5, 678901)  # microseconds on purpose: both paths drop them


class Fleet:
    """A small account: cluster servers, one stopped and one terminated, noise, a neighbour."""

    def __init__(self, world: Ec2World) -> None:
        self.world = world
        self.ids = [world.launch(f"s{i}", extra_tags={"role": "server"}) for i in range(4)]
        self.ids += world.add_noise(2)
        self.ids.append(world.launch_outside("x0", tags={"consul-cluster": "other"}))
        world.stop(self.ids[2])
        world.terminate(self.ids[3])
        world.client()  # the reference path's client exists on both sides: no difference in moto's state
        with_backend = world._backend
        for reservation in with_backend.reservations.values():
            for raw in reservation.instances:
                raw.launch_time = LAUNCHED_AT  # moto stamps the wall clock; both worlds must agree
        self.ips = [world.ip_of(i) or "" for i in self.ids]


def _api(path: str, world: Ec2World, faults: Ec2Faults, page: int | None) -> Ec2Api:
    if path == "direct":
        return MotoDirectEc2(world.region, faults, "h", max_results=page)
    client = faults.attach(world.client(), "h")
    if page is not None:
        # What the direct adapter's max_results stands for: MaxResults on every DescribeTags and on
        # every DescribeInstances without instance ids (EC2 refuses the two together).
        def add(params: dict[str, Any], **_kw: Any) -> None:
            if not params.get("InstanceIds"):
                params["MaxResults"] = page

        def add_tags(params: dict[str, Any], **_kw: Any) -> None:
            params["MaxResults"] = page

        client.meta.events.register("provide-client-params.ec2.DescribeInstances", add)
        client.meta.events.register("provide-client-params.ec2.DescribeTags", add_tags)
    return BotoEc2(client)


def _outcome(fn: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", fn())
    except ApiFault as exc:
        return ("ApiFault", exc.code, exc.status, exc.message, str(exc))
    except TransportFault as exc:
        return ("TransportFault", str(exc))
    except Ec2Error as exc:
        return ("Ec2Error", str(exc))


# the call sequences -------------------------------------------------------------------------------

# Ids and IPs are chosen by position and resolved in each world (the same seed gives the same ids).
ids = st.lists(st.one_of(st.integers(0, 6), st.sampled_from([UNKNOWN, MALFORMED])), min_size=0, max_size=3)


def _instance_filter() -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(
        st.tuples(st.just("tag-key"), st.lists(st.sampled_from([*KEYS, "consul-*", "nothing"]), max_size=2)),
        st.tuples(st.sampled_from([f"tag:{k}" for k in KEYS]), st.lists(st.sampled_from([*VALUES, "s*"]), max_size=2)),
        st.tuples(
            st.just("instance-state-name"),
            st.lists(st.sampled_from(["running", "stopped", "terminated", "pending"]), min_size=1, max_size=2),
        ),
        st.tuples(
            st.just("private-ip-address"), st.lists(st.one_of(st.integers(0, 6), st.just("10.9.9.9")), max_size=2)
        ),
        st.tuples(st.just("instance-id"), ids),
    )


def _tag_filter() -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(
        st.tuples(st.just("key"), st.lists(st.sampled_from([*KEYS, "consul-*"]), min_size=1, max_size=2)),
        st.tuples(st.just("value"), st.lists(st.sampled_from(VALUES), min_size=1, max_size=2)),
        st.tuples(st.just("resource-type"), st.lists(st.sampled_from(["instance", "vpc", "subnet"]), max_size=2)),
        st.tuples(st.just("resource-id"), ids),
    )


operations = st.one_of(
    st.tuples(st.just("describe"), st.lists(_instance_filter(), max_size=3), st.sampled_from([None, None, "ids"]), ids),
    st.tuples(st.just("describe-token"), st.lists(_instance_filter(), max_size=1), st.sampled_from(["r-bogus", ""])),
    st.tuples(st.just("tags"), st.lists(_tag_filter(), max_size=3)),
    st.tuples(st.sampled_from(["create", "delete"]), ids, st.sampled_from(KEYS), st.sampled_from(VALUES)),
    st.tuples(st.just("fault"), st.sampled_from([THROTTLE, INTERNAL, UNREACHABLE, "UnauthorizedOperation"])),
    st.tuples(st.just("store"), st.sampled_from(["tagged", "by-tag-index", "by-ip", "by-id"]), st.integers(0, 7)),
)


def _resolve(fleet: Fleet, refs: list[Any], *, ips: bool = False) -> list[str]:
    pool = fleet.ips if ips else fleet.ids
    return [pool[r] if isinstance(r, int) else r for r in refs]


def _filters(fleet: Fleet, raw: list[tuple[str, Any]]) -> list[Filter]:
    out: list[Filter] = []
    for name, values in raw:
        if name == "private-ip-address":
            out.append({"Name": name, "Values": _resolve(fleet, values, ips=True)})
        elif name in ("instance-id", "resource-id"):
            out.append({"Name": name, "Values": _resolve(fleet, values)})
        else:
            out.append({"Name": name, "Values": list(values)})
    return out


def _every_page(fetch: Callable[[str | None], Any]) -> list[Any]:
    pages: list[Any] = []
    token: str | None = None
    for _ in range(30):
        outcome = _outcome(partial(fetch, token))
        pages.append(outcome)
        token = outcome[1].next_token if outcome[0] == "ok" else None
        if token is None:
            break
    return pages


def _step(api: Ec2Api, fleet: Fleet, op: tuple[Any, ...]) -> Any:
    """One call of the sequence, on either path; what the caller observes of it."""
    kind = op[0]
    if kind == "describe":
        chosen = _resolve(fleet, op[3]) if op[2] == "ids" else []
        return _every_page(partial(api.describe_instances, _filters(fleet, op[1]), chosen))
    if kind == "describe-token":
        return _outcome(partial(api.describe_instances, _filters(fleet, op[1]), (), op[2]))
    if kind == "tags":
        return _every_page(partial(api.describe_tags, _filters(fleet, op[1])))
    write = api.create_tags if kind == "create" else api.delete_tags
    return _outcome(partial(write, _resolve(fleet, op[1]), op[2], op[3]))


def _play(path: str, seed: int, page: int | None, ops: list[tuple[Any, ...]]) -> dict[str, Any]:
    calls: list[Ec2Call] = []
    with Ec2World(seed, CLUSTER) as world:
        fleet = Fleet(world)
        faults = Ec2Faults()
        faults.add_observer(calls.append)
        api = _api(path, world, faults, page)
        store = TagStore(
            api, Scope(tag_key=LEADER, cluster=CLUSTER), clock=_NoSleep(), rng=random.Random(0), max_attempts=2
        )
        seen: list[Any] = []
        for op in ops:
            if op[0] == "fault":
                faults.arm("*", 1, code=op[1])
            elif op[0] == "store":
                seen.append(_store_read(store, fleet, op[1], op[2]))
            else:
                seen.append(_step(api, fleet, op))
        tags = {rid: dict(t) for rid, t in world._backend.tags.items()}
        state = mock_random.getstate()
    return {
        "seen": seen,
        "calls": [(c.action, dict(c.params), c.client, c.fault) for c in calls],
        "stats": faults.snapshot().as_dict(),
        "tags": tags,
        "random": state,
    }


def _store_read(store: TagStore, fleet: Fleet, how: str, n: int) -> Any:
    """What core's store makes of the answers, pages followed and retries included."""
    if how == "tagged":
        return _outcome(store.tagged_instances)
    if how == "by-tag-index":
        return _outcome(store.tagged_instances_by_tag_index)
    if how == "by-ip":
        ip = fleet.ips[n] if n < len(fleet.ips) else "10.9.9.9"
        return _outcome(lambda: store.instance_by_ip(ip))
    instance_id = fleet.ids[n] if n < len(fleet.ids) else UNKNOWN
    return _outcome(lambda: store.instance_by_id(instance_id))


class _NoSleep:
    def monotonic(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        pass


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 3),
    page=st.sampled_from([None, 1, 2, 3]),
    ops=st.lists(operations, min_size=1, max_size=12),
)
def test_direct_and_botocore_paths_observe_the_same(seed: int, page: int | None, ops: list[tuple[Any, ...]]) -> None:
    reference = _play("boto3", seed, page, ops)
    direct = _play("direct", seed, page, ops)
    for key in ("seen", "calls", "stats", "tags", "random"):
        assert direct[key] == reference[key], key


def test_a_fixed_sequence_covers_pages_errors_and_faults() -> None:
    """The cases the random sequences must keep meeting, spelled out once."""
    ops: list[tuple[Any, ...]] = [
        ("describe", [("tag-key", ["Name"])], None, []),
        ("describe", [], "ids", [0, UNKNOWN]),
        ("describe", [], "ids", [MALFORMED]),
        ("describe-token", [], "r-bogus"),
        ("describe", [("private-ip-address", [1]), ("instance-state-name", ["running"])], None, []),
        ("create", [0], LEADER, "7"),
        ("create", [UNKNOWN], LEADER, "7"),
        ("create", [MALFORMED], LEADER, "7"),
        ("create", [], LEADER, "7"),
        ("delete", [0], LEADER, "1"),
        ("delete", [UNKNOWN], LEADER, "7"),
        ("tags", [("key", [LEADER]), ("resource-type", ["instance"])]),
        ("fault", THROTTLE),
        ("store", "tagged", 0),
        ("fault", UNREACHABLE),
        ("create", [1], LEADER, "8"),
        ("fault", "UnauthorizedOperation"),
        ("store", "by-tag-index", 0),
        ("store", "by-ip", 4),
        ("store", "by-id", 3),
    ]
    reference = _play("boto3", 2, 2, ops)
    direct = _play("direct", 2, 2, ops)
    assert direct == reference
    pages = reference["seen"][0]
    assert len(pages) > 1 and all(p[0] == "ok" for p in pages), "small pages must page"
    outcomes = [o for s in reference["seen"] for o in (s if isinstance(s, list) else [s])]
    errors = {o[1] for o in outcomes if o[0] == "ApiFault"}
    assert {"InvalidInstanceID.NotFound", "InvalidID", "MissingParameter"} <= errors
    assert any(o[0] == "TransportFault" for o in outcomes)
    assert any(o[0] == "Ec2Error" for o in outcomes)  # moto's own failure on an unknown NextToken


# whole scenarios ----------------------------------------------------------------------------------


def fingerprint(rec: Recording) -> str:
    return hashlib.sha256(repr(rec).encode()).hexdigest()  # as tests/test_sim_scenario.py compares runs


@pytest.fixture(params=["throttle", "ec2-5xx", "replace", "pause"])
def fault(request: pytest.FixtureRequest) -> Iterator[str]:
    yield str(request.param)


def test_the_same_seed_gives_the_same_trace_on_either_path(fault: str) -> None:
    config = ScenarioConfig(seed=4, faults=(fault,))
    direct = run_scenario(config, keep_log=True)
    reference = run_scenario(ScenarioConfig(seed=4, faults=(fault,), ec2="boto3"), keep_log=True)
    assert direct.ec2_calls, "the handlers should have called EC2"
    assert fingerprint(direct) == fingerprint(reference)


def test_naive_handlers_give_the_same_trace_on_either_path() -> None:
    # Every node calls EC2, clients too: the busiest interleaving of the two paths' calls.
    config = ScenarioConfig(seed=5, strategy="naive", faults=("crash",))
    direct = run_scenario(config, keep_log=True)
    reference = run_scenario(ScenarioConfig(seed=5, strategy="naive", faults=("crash",), ec2="boto3"), keep_log=True)
    assert fingerprint(direct) == fingerprint(reference)


def test_an_unknown_path_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown EC2 path"):
        run_scenario(ScenarioConfig(seed=0, ec2="http", duration_ms=1_000))


@pytest.mark.parametrize("size", [0, 1, 4, 8, 12, 13, 17])
def test_ids_drawn_in_batches_are_moto_s_from_the_same_draws(size: int) -> None:
    # The same digits, and the generator left where moto's one-choice-at-a-time leaves it, so the
    # next id or address a world draws is the same too.
    for seed in range(200):
        mock_random.seed(seed)
        expected = moto_ec2_utils.random_resource_id(size)
        after = mock_random.getstate()
        mock_random.seed(seed)
        assert resource_id(size) == expected
        assert mock_random.getstate() == after


def test_moto_s_own_id_maker_is_back_after_a_sweep_s_worlds() -> None:
    original = moto_ec2_utils.random_resource_id
    with kept_running():
        assert moto_ec2_utils.random_resource_id is resource_id
        with Ec2World(3, "c1", dispatched=False) as world:
            assert world.launch("n1").startswith("i-")
    assert moto_ec2_utils.random_resource_id is original
