from __future__ import annotations

from tagjoin.core.model import Instance, Member, MemberStatus
from tagjoin.core.view import Severity, build_view

KEY = "consul-leader"


def member(name: str, ip: str, status: MemberStatus = MemberStatus.ALIVE, server: bool = True) -> Member:
    return Member(name, ip, 8301, status, {"role": "consul" if server else "node"})


def inst(iid: str, ip: str, tag: str | None = None, state: str = "running") -> Instance:
    return Instance(iid, ip, None, state, {KEY: tag} if tag is not None else {})


MEMBERS = [member("s1", "10.0.1.4"), member("s2", "10.0.1.5"), member("s3", "10.0.1.6")]


def codes(view_findings: tuple[object, ...]) -> list[str]:
    return [f.code for f in view_findings]  # type: ignore[attr-defined]


def test_healthy_cluster_has_no_findings_and_tag_agrees() -> None:
    instances = [inst("i-1", "10.0.1.4", "5"), inst("i-2", "10.0.1.5"), inst("i-3", "10.0.1.6")]
    view = build_view("10.0.1.4:8300", MEMBERS, instances, KEY)
    assert view.findings == ()
    assert view.tag_agrees
    assert view.leader_node == "s1"
    assert [r.instance.instance_id for r in view.rows if r.instance] == ["i-1", "i-2", "i-3"]
    assert view.rows[0].is_leader and view.rows[0].tag_value == "5"


def test_no_leader_is_critical() -> None:
    view = build_view(None, MEMBERS, [inst("i-1", "10.0.1.4", "5")], KEY)
    assert view.findings[0].code == "no-leader"
    assert view.worst is Severity.CRITICAL
    assert not view.tag_agrees


def test_leader_untagged_and_tag_on_failed_non_leader_are_critical() -> None:
    members = [
        member("s1", "10.0.1.4"),
        member("s2", "10.0.1.5", MemberStatus.FAILED),
        member("s3", "10.0.1.6"),
    ]
    instances = [inst("i-1", "10.0.1.4"), inst("i-2", "10.0.1.5", "4"), inst("i-3", "10.0.1.6")]
    view = build_view("10.0.1.4:8300", members, instances, KEY)
    assert set(codes(view.findings)) == {"leader-untagged", "tag-on-non-leader"}
    assert all(f.severity is Severity.CRITICAL for f in view.findings)


def test_several_tags_stopped_holder_and_non_member_holder() -> None:
    instances = [
        inst("i-1", "10.0.1.4", "5"),
        inst("i-2", "10.0.1.5", "4"),
        inst("i-9", "10.0.1.9", "3", state="stopped"),
        inst("i-8", "10.0.1.8", "2"),
    ]
    view = build_view("10.0.1.4:8300", MEMBERS, instances, KEY)
    found = codes(view.findings)
    assert "several-tags" in found
    assert "tag-not-running" in found
    assert "tagged-not-member" in found
    assert found.count("tag-on-non-leader") == 2
    severities = [f.severity for f in view.findings]
    assert severities == sorted(severities, reverse=True)


def test_member_without_instance_and_leader_without_instance() -> None:
    view = build_view(
        "10.0.1.7:8300",
        [*MEMBERS, member("c1", "10.0.1.7", server=False)],
        [inst("i-1", "10.0.1.4", "5")],
        KEY,
    )
    found = codes(view.findings)
    assert "leader-no-instance" in found
    assert found.count("member-no-instance") == 3
    assert view.to_json()["leader"]["node"] == "c1"
