"""`tagjoin status` names a remedy for every drift finding it reports."""

from __future__ import annotations

import ast
import inspect

from tagjoin.core import view as view_module
from tagjoin.core.model import Instance, Member, MemberStatus
from tagjoin.core.status_text import render_status
from tagjoin.core.view import ClusterView, build_view

KEY = "consul-leader"


def _member(name: str, ip: str, status: MemberStatus = MemberStatus.ALIVE) -> Member:
    return Member(name, ip, 8301, status, {"role": "consul"})


def _inst(iid: str, ip: str, tag: str | None = None, state: str = "running") -> Instance:
    return Instance(iid, ip, None, state, {KEY: tag} if tag is not None else {})


def _views() -> list[ClusterView]:
    """Between them, these views raise every finding `_findings` can report."""
    members = [_member("s1", "10.0.1.4"), _member("s2", "10.0.1.5"), _member("s3", "10.0.1.7")]
    drifted = [
        _inst("i-1", "10.0.1.4"),  # the leader, untagged
        _inst("i-2", "10.0.1.5", "99"),  # debris above the leader's term
        _inst("i-8", "10.0.1.8", "2"),  # tagged, no member
        _inst("i-9", "10.0.1.9", "3", state="stopped"),
    ]
    return [
        build_view("10.0.1.4:8300", members, drifted, KEY),
        build_view(None, members, drifted, KEY),
        build_view("10.0.1.6:8300", members, drifted, KEY),  # no instance has the leader's address
    ]


def _codes_in_source() -> set[str]:
    """Every code literal passed to Finding(...) in the view module."""
    tree = ast.parse(inspect.getsource(view_module))
    return {
        call.args[1].value
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "Finding"
        and len(call.args) > 1
        and isinstance(call.args[1], ast.Constant)
        and isinstance(call.args[1].value, str)
    }


def test_every_reported_finding_names_a_remedy_of_its_own() -> None:
    findings = [f for v in _views() for f in v.findings]
    assert {f.code for f in findings} == _codes_in_source(), "the views above must reach every code"
    fallback = view_module.remedy_for(view_module.Finding(view_module.Severity.INFO, "unknown", ""), KEY, {})
    for f in findings:
        assert f.remedy and f.remedy != fallback, f.code
        assert f.to_json()["remedy"] == f.remedy


def test_a_tag_to_remove_by_hand_is_named_with_its_value() -> None:
    found = {f.code: f for f in _views()[0].findings}
    assert "Key=consul-leader,Value=99" in found["tag-on-non-leader"].remedy
    assert "--resources i-9 " in found["tag-not-running"].remedy


def test_status_text_prints_the_remedy_under_each_finding() -> None:
    view = _views()[0]
    text = render_status(view)
    drift = text.split("drift:\n", 1)[1]
    assert drift.count("remedy: ") == len(view.findings) > 0
    assert "tagjoin reconcile" in drift
