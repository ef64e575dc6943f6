"""The console's action layer: read-only enforced below the UI, actions aimed at the right agent."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence

import httpx
import pytest

from tagjoin.core.errors import ConfigError, TagjoinError
from tagjoin.core.handoff import Decision, Plan, Report
from tagjoin.core.model import MemberStatus
from tagjoin.tui.actions import SPECS, ActionName, ActionService, ActionUnavailable, Aim, ReadOnlyError, Request, Target
from tagjoin.tui.agents import TemplateAgents
from tagjoin.tui.demo_control import DemoControl
from tagjoin.tui.rejoin import RejoinCommand
from tests.console_doubles import FakeConsul

ALIVE = Target("node-2", "10.0.1.2", MemberStatus.ALIVE, "server", "i-2")
FAILED = Target("node-3", "10.0.1.3", MemberStatus.FAILED, "server", "i-3")
LEADER = Target("node-1", "10.0.1.1", MemberStatus.ALIVE, "server", "i-1")


class Recorder:
    """A demo control server in process: records requests, answers {"ok": true}."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path, request.url.query.decode()))
        if request.url.path == "/control/nodes":
            return httpx.Response(200, json={"nodes": []})
        return httpx.Response(200, json={"ok": True})


def demo(recorder: Recorder) -> DemoControl:
    return DemoControl("http://127.0.0.1:1", transport=httpx.MockTransport(recorder))


def report(summary_node: str = "node-1") -> Report:
    return Report(summary_node, Plan(Decision.NO_CHANGE, "i-1 already carries term 5", 5))


def every_request() -> list[Request]:
    reqs = []
    for name, spec in SPECS.items():
        targets: Sequence[Target | None]
        if spec.aim is Aim.CLUSTER:
            targets = [None]
        elif spec.aim is Aim.LEADER:
            targets = [LEADER]
        else:
            targets = [ALIVE, FAILED]
        reqs += [Request(name, t, (LEADER, ALIVE)) for t in targets]
    return reqs


@pytest.mark.parametrize("req", every_request(), ids=lambda r: r.describe())
def test_read_only_refuses_every_action_in_the_service(req: Request) -> None:
    consul, rec = FakeConsul(), Recorder()
    reconciled: list[str] = []

    def reconcile(url: str) -> Report:
        reconciled.append(url)
        return report()

    service = ActionService(
        consul,
        TemplateAgents(),
        read_only=True,
        rejoin=RejoinCommand("true {address}"),
        demo=demo(rec),
        reconcile=reconcile,
    )
    assert not service.availability(req).ok
    with pytest.raises(ReadOnlyError, match="read-only"):
        service.perform(req)
    assert consul.calls == [] and rec.requests == [] and reconciled == []


def test_read_only_still_allows_pausing_the_refresh() -> None:
    service = ActionService(FakeConsul(), TemplateAgents(), read_only=True)
    service.set_refresh_paused(True)
    assert service.refresh_paused


def test_leave_goes_to_the_nodes_own_agent() -> None:
    consul = FakeConsul()
    service = ActionService(consul, TemplateAgents("http://{address}:8500"))
    text = service.perform(Request(ActionName.LEAVE, ALIVE))
    assert consul.calls == [("http://10.0.1.2:8500", "leave", "")]
    assert "node-2 is leaving" in text


def test_leave_refuses_a_failed_node_with_the_reason() -> None:
    consul = FakeConsul()
    service = ActionService(consul, TemplateAgents())
    assert service.availability(Request(ActionName.LEAVE, FAILED)).reason.startswith("it is failed")
    with pytest.raises(ActionUnavailable, match="cannot make node-3 leave: it is failed"):
        service.perform(Request(ActionName.LEAVE, FAILED))
    assert consul.calls == []


def test_force_leave_tries_other_agents_when_the_first_is_unreachable() -> None:
    consul = FakeConsul(unreachable={"http://127.0.0.1:8500"})
    service = ActionService(consul, TemplateAgents())
    text = service.perform(Request(ActionName.FORCE_LEAVE, FAILED, (LEADER, ALIVE)))
    assert consul.calls == [
        ("http://127.0.0.1:8500", "force_leave", "node-3"),
        ("http://10.0.1.1:8500", "force_leave", "node-3"),
    ]
    assert text == "force-left node-3 via node-1"


def test_force_leave_only_for_failed_members() -> None:
    service = ActionService(FakeConsul(), TemplateAgents())
    assert not service.availability(Request(ActionName.FORCE_LEAVE, ALIVE)).ok


def test_rejoin_without_demo_or_command_is_unavailable_with_the_reason() -> None:
    service = ActionService(FakeConsul(), TemplateAgents())
    avail = service.availability(Request(ActionName.REJOIN, FAILED))
    assert not avail.ok and "--rejoin-command" in avail.reason


def test_rejoin_runs_the_template_without_a_shell() -> None:
    ran: list[list[str]] = []

    def runner(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        ran.append(list(argv))
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    command = RejoinCommand("ssh {address} sudo systemctl start 'consul agent' --node={node}", runner=runner)
    service = ActionService(FakeConsul(), TemplateAgents(), rejoin=command)
    hostile = Target("x; rm -rf /", "10.0.1.3", MemberStatus.FAILED, "server")
    service.perform(Request(ActionName.REJOIN, hostile))
    assert ran == [["ssh", "10.0.1.3", "sudo", "systemctl", "start", "consul agent", "--node=x; rm -rf /"]]


def test_rejoin_failure_reports_the_exit_status() -> None:
    def runner(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(list(argv), 255, "", "ssh: connect to host 10.0.1.3: refused\n")

    service = ActionService(FakeConsul(), TemplateAgents(), rejoin=RejoinCommand("ssh {address} x", runner=runner))
    with pytest.raises(TagjoinError, match=r"exited 255: ssh: connect to host 10\.0\.1\.3: refused"):
        service.perform(Request(ActionName.REJOIN, FAILED))


def test_bad_templates_are_configuration_errors() -> None:
    with pytest.raises(ConfigError):
        RejoinCommand("ssh {adress} start")
    with pytest.raises(ConfigError):
        RejoinCommand("ssh 'unterminated")
    with pytest.raises(ConfigError):
        TemplateAgents("http://consul:8500")


def test_reconcile_runs_against_the_leaders_agent() -> None:
    seen: list[str] = []

    def reconcile(url: str) -> Report:
        seen.append(url)
        return report()

    service = ActionService(FakeConsul(), TemplateAgents(), reconcile=reconcile)
    text = service.perform(Request(ActionName.RECONCILE, LEADER))
    assert seen == ["http://10.0.1.1:8500"]
    assert text.startswith("node-1: no-change (term 5)")


def test_demo_actions_are_unavailable_without_the_demo() -> None:
    service = ActionService(FakeConsul(), TemplateAgents())
    for name in (ActionName.CRASH, ActionName.PARTITION, ActionName.HEAL, ActionName.THROTTLE):
        req = Request(name, ALIVE)
        assert service.availability(req).reason == "only in the demo (--demo)"
        with pytest.raises(ActionUnavailable):
            service.perform(req)


def test_demo_actions_call_the_control_api() -> None:
    rec = Recorder()
    service = ActionService(FakeConsul(), TemplateAgents(), demo=demo(rec), pause_seconds=5)
    service.perform(Request(ActionName.CRASH, ALIVE))
    service.perform(Request(ActionName.REJOIN, FAILED))
    service.perform(Request(ActionName.PARTITION, ALIVE))
    service.perform(Request(ActionName.HEAL))
    service.perform(Request(ActionName.PAUSE_LEADER, LEADER))
    service.perform(Request(ActionName.THROTTLE))
    assert rec.requests == [
        ("POST", "/control/crash/node-2", ""),
        ("POST", "/control/restart/node-3", ""),
        ("POST", "/control/partition", ""),
        ("POST", "/control/heal", ""),
        ("POST", "/control/pause/node-1", "seconds=5"),
        ("POST", "/control/throttle", "action=DescribeInstances&count=5"),
    ]


def test_demo_control_reports_errors_and_reads_nodes() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/control/nodes":
            body = {
                "nodes": [
                    {
                        "name": "node-1",
                        "address": "10.0.1.4",
                        "agent": "http://127.0.0.1:18501",
                        "role": "server",
                        "running": True,
                    }
                ]
            }
            return httpx.Response(200, json=body)
        if request.url.path == "/control/partition":
            assert json.loads(request.content) == {"isolate": ["node-9"]}
        return httpx.Response(404, json={"error": "no node node-9"})

    control = DemoControl("http://127.0.0.1:1", transport=httpx.MockTransport(handler))
    (node,) = control.nodes()
    assert (node.name, node.agent, node.role, node.running) == ("node-1", "http://127.0.0.1:18501", "server", True)
    with pytest.raises(TagjoinError, match="HTTP 404: no node node-9"):
        control.partition(["node-9"])


def test_rejoin_waits_until_the_left_agent_has_exited() -> None:
    class Directory(TemplateAgents):
        def __init__(self) -> None:
            super().__init__()
            self.up: dict[str, bool] = {}

        def running(self, node: str) -> bool | None:
            return self.up.get(node)

    agents, rec = Directory(), Recorder()
    left = Target("node-3", "10.0.1.3", MemberStatus.LEFT, "server", "i-3")
    service = ActionService(FakeConsul(), agents, demo=demo(rec))
    agents.up["node-3"] = True  # `left` already, but still draining
    assert service.availability(Request(ActionName.REJOIN, left)).reason == (
        "it is left but its agent still runs (shutting down or cut off)"
    )
    with pytest.raises(ActionUnavailable):
        service.perform(Request(ActionName.REJOIN, left))
    assert rec.requests == []
    agents.up["node-3"] = False
    service.perform(Request(ActionName.REJOIN, left))
    assert rec.requests == [("POST", "/control/restart/node-3", "")]
