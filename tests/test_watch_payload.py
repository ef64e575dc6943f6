from __future__ import annotations

import pytest

from tagjoin.core.watch_payload import PayloadError, WatchKind, parse_index, parse_payload


def test_nodes_payload() -> None:
    payload = parse_payload('[{"Node": "ip-10-0-1-4", "Address": "10.0.1.4"}, {"Node": "b", "Address": "10.0.1.5"}]')
    assert payload.kind is WatchKind.NODES
    assert payload.count == 2


def test_checks_payload_names_critical_nodes() -> None:
    payload = parse_payload(
        '[{"Node": "a", "CheckID": "serfHealth", "Status": "critical"},'
        ' {"Node": "b", "CheckID": "serfHealth", "Status": "passing"}]'
    )
    assert payload.kind is WatchKind.CHECKS
    assert payload.critical == ("a",)


def test_empty_list_is_valid() -> None:
    assert parse_payload("[]\n").kind is WatchKind.EMPTY


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty payload"),
        ("   \n", "empty payload"),
        ("{not json", "not JSON"),
        ('{"Node": "a"}', "JSON dict"),
        ("[1, 2]", "other than objects"),
        ('[{"foo": 1}]', "neither catalog nodes"),
    ],
)
def test_malformed_payloads(raw: str, message: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse_payload(raw)
    assert message in str(err.value)


def test_index() -> None:
    assert parse_index("42") == 42
    assert parse_index(None) is None
    assert parse_index("x") is None
