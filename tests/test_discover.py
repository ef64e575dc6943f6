from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tagjoin.core.discover import Source, local_addresses, parse_discover, select_targets
from tagjoin.core.errors import ConfigError
from tagjoin.core.model import Instance


def inst(iid: str, ip: str, tag: str | None = None, state: str = "running", public: str | None = None) -> Instance:
    tags = {"consul-leader": tag} if tag is not None else {}
    return Instance(iid, ip, public, state, tags)


def test_parses_consul_cloud_auto_join_syntax() -> None:
    spec = parse_discover(
        "provider=aws tag_key=consul-leader tag_value=7 region=eu-west-1 addr_type=public_v4 "
        'endpoint="http://127.0.0.1:5000"'
    )
    assert spec.tag_key == "consul-leader"
    assert spec.tag_value == "7"
    assert spec.region == "eu-west-1"
    assert spec.addr_type == "public_v4"
    assert spec.endpoint == "http://127.0.0.1:5000"


def test_quoted_values_keep_spaces_and_escapes() -> None:
    spec = parse_discover(r'provider=aws tag_key="my \"leader\" tag"')
    assert spec.tag_key == 'my "leader" tag'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("provider=gce tag_value=x", "provider=gce is not supported"),
        ("provider=aws tag_name=x", "unknown discover key tag_name="),
        ("provider=aws access_key_id=AKIA", "standard AWS chain"),
        ("provider=aws service=ecs", "only EC2"),
        ("provider=aws addr_type=public_v6", "addr_type=public_v6 is not supported"),
        ("tag_key=x", "no provider="),
        ("provider=aws tag_key=a tag_key=b", "duplicate key tag_key="),
        ('provider=aws tag_key="open', "unterminated"),
        ("provider=aws junk", "expected key=value"),
    ],
)
def test_bad_discover_strings_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_discover(text)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_orders_by_term_highest_first_and_naive_values_last() -> None:
    tagged = [inst("i-a", "10.0.1.4", "3"), inst("i-b", "10.0.1.5", "true"), inst("i-c", "10.0.1.6", "9")]
    targets = select_targets(tagged, tag_key="consul-leader")
    assert targets.addresses == ("10.0.1.6", "10.0.1.4", "10.0.1.5")
    assert targets.source is Source.LEADER_TAG


def test_never_returns_own_address_nor_stopped_instances() -> None:
    tagged = [
        inst("i-a", "10.0.1.4", "5"),
        inst("i-b", "10.0.1.5", "4"),
        inst("i-c", "10.0.1.6", "6", "stopped"),
    ]
    targets = select_targets(tagged, tag_key="consul-leader", own_addresses={"10.0.1.4"})
    assert targets.addresses == ("10.0.1.5",)


def test_fallback_only_when_no_leader_tag_yields_an_address() -> None:
    fallback = [inst("i-x", "10.0.1.9"), inst("i-y", "10.0.1.8"), inst("i-z", "10.0.1.7", state="stopped")]
    only_self = [inst("i-a", "10.0.1.4", "5")]
    targets = select_targets(only_self, tag_key="consul-leader", own_addresses={"10.0.1.4"}, fallback=fallback)
    assert targets.addresses == ("10.0.1.8", "10.0.1.9")
    assert targets.source is Source.FALLBACK
    assert select_targets([], tag_key="consul-leader").source is Source.NONE


def test_tag_value_and_public_address_selection() -> None:
    tagged = [
        inst("i-a", "10.0.1.4", "true", public="203.0.113.4"),
        inst("i-b", "10.0.1.5", "8", public=None),
    ]
    targets = select_targets(tagged, tag_key="consul-leader", tag_value="true", addr_type="public_v4")
    assert targets.addresses == ("203.0.113.4",)


def test_output_formats() -> None:
    targets = select_targets([inst("i-a", "10.0.1.4", "2"), inst("i-b", "10.0.1.5", "1")], tag_key="consul-leader")
    assert targets.render("lines") == "10.0.1.4\n10.0.1.5\n"
    assert targets.render("flags") == "-retry-join=10.0.1.4 -retry-join=10.0.1.5\n"
    assert json.loads(targets.render("json")) == {"targets": ["10.0.1.4", "10.0.1.5"], "source": "leader-tag"}
    with pytest.raises(ConfigError):
        targets.render("yaml")


def test_local_addresses_read_from_the_kernel_table(tmp_path: Path) -> None:
    trie = tmp_path / "fib_trie"
    trie.write_text(
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.1.4\n        /32 host LOCAL\n"
        "     |-- 127.0.0.1\n        /32 host LOCAL\n     |-- 10.0.1.255\n        /32 link BROADCAST\n"
    )
    assert local_addresses(trie) == {"10.0.1.4"}
    assert local_addresses(tmp_path / "missing") == set()


def test_a_fallback_over_a_large_fleet_names_a_few_members_that_differ_from_node_to_node() -> None:
    # memberlist's Join push-pulls with every address it is given: a fallback naming every member
    # of a fleet made each boot one full state exchange per member.
    fleet = [inst(f"i-{a}-{b}", f"172.31.{a}.{b}", public=f"198.51.{a}.{b}") for a in range(4) for b in range(1, 60)]
    ips = sorted(f"172.31.{a}.{b}" for a in range(4) for b in range(1, 60))
    own_ip = {i.instance_id: i.private_ip or "" for i in fleet}

    def picks(own_extra: set[str], addr_type: str = "private_v4") -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for me in fleet:
            own = {own_ip[me.instance_id], *own_extra}
            got = select_targets([], tag_key="consul-leader", own_addresses=own, addr_type=addr_type, fallback=fleet)
            assert got.source is Source.FALLBACK and len(got.addresses) == 8
            assert list(got.addresses) == sorted(got.addresses) and own_ip[me.instance_id] not in got.addresses
            out.append(got.addresses)
        return out

    # Spread over the fleet, also where every host shares an address (docker0) or none of its own
    # addresses is of the listed kind (public targets, private own addresses).
    for chosen in (picks(set()), picks({"172.17.0.1"}), picks(set(), "public_v4")):
        assert len(set(chosen)) > len(fleet) // 2
        per_member = Counter(addr for addresses in chosen for addr in addresses)
        assert max(per_member.values()) < 8 * 4
    # The same node gets the same run every time (a crc32, not Python's salted hash).
    assert picks({"172.17.0.1"}) == picks({"172.17.0.1"})
    # A small fleet is named whole; with no address of its own known, the first ones.
    small = fleet[:9]
    named = select_targets([], tag_key="consul-leader", own_addresses={ips[0]}, fallback=small)
    assert named.addresses == tuple(sorted(own_ip[i.instance_id] for i in small[1:]))
    assert select_targets([], tag_key="consul-leader", fallback=fleet).addresses == tuple(ips[:8])
