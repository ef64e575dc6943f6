"""The control API of a live simulated cluster: faults and restarts for the console and tests.

    POST /control/crash/{node}            kill the agent
    POST /control/restart/{node}          start it again; it joins what the leader tag points to
    POST /control/partition               JSON {"isolate": ["node", ...]}
    POST /control/heal
    POST /control/pause/{node}?seconds=5  stop-the-world pause
    POST /control/throttle?action=DescribeInstances&count=5
    GET  /control/nodes                   names, addresses, agent URLs, roles, running

Answers are JSON: `{"ok": true, ...}` or `{"error": "..."}` with a 4xx/5xx status.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tagjoin.sim.aws.ec2_faults import THROTTLE
from tagjoin.sim.consul.cluster import NodeDown
from tagjoin.sim.harness.scenario import Scenario, reboot
from tagjoin.sim.live.agent_servers import ClusterHttp
from tagjoin.sim.live.http_guard import GuardedHandler, GuardedServer
from tagjoin.sim.live.paced_driver import PacedDriver

MAX_PAUSE_S = 600.0
MAX_THROTTLE_COUNT = 10_000
EC2_ACTIONS = ("DescribeInstances", "CreateTags", "DeleteTags", "*")


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ControlServer:
    def __init__(self, scenario: Scenario, driver: PacedDriver, http: ClusterHttp, port: int = 0) -> None:
        self.scenario = scenario
        self.driver = driver
        self.http = http
        self._server = _Server(("127.0.0.1", port), self)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="sim-control", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    # actions -------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> dict[str, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if len(parts) < 2 or parts[0] != "control":
            raise ControlError(404, f"unknown path {path}")
        verb, args = parts[1], parts[2:]
        if method == "GET" and verb == "nodes" and not args:
            return self.driver.call(self._nodes)
        if method != "POST":
            raise ControlError(405, f"{method} not allowed on {path}")
        action = self._action(verb, args, query, body)
        self.driver.call(action)
        return {"ok": True}

    def _action(self, verb: str, args: list[str], query: dict[str, list[str]], body: bytes) -> Callable[[], None]:
        s = self.scenario
        cluster = s.cluster
        if verb in ("crash", "restart", "pause"):
            node = self._node_arg(verb, args)
            if verb == "crash":
                return lambda: cluster.crash(node)
            if verb == "restart":
                return lambda: self._restart(node)
            seconds = _float(query, "seconds", 5.0)
            if not 0 < seconds <= MAX_PAUSE_S:
                raise ControlError(400, f"seconds must be in (0, {MAX_PAUSE_S:g}]")
            return lambda: _down_is_conflict(lambda: cluster.pause(node, int(seconds * 1000)))
        if verb == "partition" and not args:
            isolate = _isolate_list(body)
            unknown = [n for n in isolate if n not in cluster.nodes]
            if unknown:
                raise ControlError(404, f"unknown node {', '.join(unknown)}")
            return lambda: cluster.partition([isolate])
        if verb == "heal" and not args:
            return cluster.heal
        if verb == "throttle" and not args:
            action = (query.get("action") or ["*"])[0]
            if action not in EC2_ACTIONS:
                raise ControlError(400, f"action must be one of {', '.join(EC2_ACTIONS)}")
            count = int(_float(query, "count", 5))
            if not 0 < count <= MAX_THROTTLE_COUNT:
                raise ControlError(400, f"count must be in 1..{MAX_THROTTLE_COUNT}")
            return lambda: s.faults.arm(action, count, code=THROTTLE)
        raise ControlError(404, f"unknown control action {verb}")

    def _node_arg(self, verb: str, args: list[str]) -> str:
        if len(args) != 1:
            raise ControlError(404, f"expected /control/{verb}/NODE")
        if args[0] not in self.scenario.cluster.nodes:
            raise ControlError(404, f"unknown node {args[0]}")
        return args[0]

    def _restart(self, node: str) -> None:
        n = self.scenario.cluster.node(node)
        if n is not None and n.up:
            raise ControlError(409, f"{node} is running; crash it or make it leave first")
        reboot(self.scenario, node)

    def _nodes(self) -> dict[str, Any]:
        cluster = self.scenario.cluster
        urls = self.http.urls
        return {
            "nodes": [
                {
                    "name": name,
                    "address": node.ip,
                    "agent": urls.get(name),
                    "role": "server" if node.server else "client",
                    "running": node.up,
                }
                for name, node in sorted(cluster.nodes.items())
            ]
        }


def _down_is_conflict(fn: Callable[[], None]) -> None:
    try:
        fn()
    except NodeDown as exc:
        raise ControlError(409, str(exc)) from None


def _float(query: dict[str, list[str]], key: str, default: float) -> float:
    raw = query.get(key)
    if not raw:
        return default
    try:
        return float(raw[0])
    except ValueError:
        raise ControlError(400, f"{key}={raw[0]!r} is not a number") from None


def _isolate_list(body: bytes) -> list[str]:
    try:
        data = json.loads(body or b"{}")
    except json.JSONDecodeError:
        raise ControlError(400, 'body must be JSON like {"isolate": ["node"]}') from None
    isolate = data.get("isolate") if isinstance(data, dict) else None
    if not isinstance(isolate, list) or not isolate or not all(isinstance(n, str) for n in isolate):
        raise ControlError(400, 'body must be JSON like {"isolate": ["node"]}')
    return isolate


class _Server(GuardedServer):
    label = "control API"

    def __init__(self, address: tuple[str, int], owner: ControlServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class _Handler(GuardedHandler):
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the console owns the terminal."""

    def _serve(self) -> None:
        split = urlsplit(self.path)
        body = self.read_body()
        if body is None:
            return
        try:
            payload = self.server.owner.handle(self.command, split.path, parse_qs(split.query), body)
            status = 200
        except ControlError as exc:
            payload, status = {"error": str(exc)}, exc.status
        except Exception as exc:  # a fault the model refuses (e.g. a node already down)
            payload, status = {"error": f"{type(exc).__name__}: {exc}"}, 500
        self.send_reply(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())
