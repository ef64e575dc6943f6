"""Serve each simulated agent's Consul HTTP API on its own loopback port.

Building blocks for `tagjoin sim serve`: `serve_cluster(cluster, driver)` starts one threaded HTTP
server per agent on 127.0.0.1 (the OS picks the ports) and returns a `ClusterHttp` whose `urls` map
node names to `http://127.0.0.1:PORT`. Servers follow the agents' lives: a crash or the shutdown after
a graceful leave closes the listener (connection refused), a restart reopens the same port, a node
added later gets a server too. A paused agent accepts connections and does not answer. Blocking
queries wait on the paced driver's condition until the index moves past `?index` or `?wait` runs out
in virtual time (bounded in wall time too).
"""

from __future__ import annotations

import threading
from typing import Any

from tagjoin.sim.consul.cluster import Cluster
from tagjoin.sim.consul.cluster_events import NodeAdded, NodeCrashed, NodeRestarted, NodeShutdown
from tagjoin.sim.consul.http_api import AclConfig, AgentApi, AgentUnavailable, ApiRequest, ApiResponse, Block
from tagjoin.sim.live.http_guard import GuardedHandler, GuardedServer
from tagjoin.sim.live.paced_driver import PacedDriver

LOOPBACK = "127.0.0.1"
WAIT_SLICE_S = 0.25  # re-check at least this often even without a notification
PAUSED_HOLD_S = 300.0  # how long a paused agent keeps a connection hanging


class _Server(GuardedServer):
    def __init__(self, address: tuple[str, int], owner: AgentHttpServer) -> None:
        self.owner = owner
        self.label = f"agent {owner.node}"
        super().__init__(address, _Handler)


class _Handler(GuardedHandler):
    # TCP_NODELAY, as Go's net/http (the real agent) sets: headers and body go out in two writes, and
    # with Nagle on, the body waited for the client's delayed ACK — 40 ms on every keep-alive request.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _serve(self) -> None:
        if self.read_body() is None:
            return
        if not self.server.owner.serving(self.server):
            # A keep-alive connection that outlived its listener (a crash, a shutdown, the whole
            # simulation stopped): the process behind it is gone, so nothing answers.
            self.close_connection = True
            return
        req = ApiRequest.build(self.command, self.path, {k: v for k, v in self.headers.items()})
        response = self.server.owner.respond(req)
        if response is None:
            self.close_connection = True  # agent gone: drop the connection without a reply
            return
        self.send_reply(response.status, response.headers, response.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the simulator's trace is the log; stderr noise would drown test output


class AgentHttpServer:
    """One agent's API on LOOPBACK:port; `start()` again after `stop()` reuses the port."""

    def __init__(self, api: AgentApi, node: str, driver: PacedDriver, port: int = 0) -> None:
        self.api = api
        self.node = node
        self.driver = driver
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    def serving(self, server: _Server) -> bool:
        """Whether `server` is this agent's current listener (not one stopped since)."""
        return self._server is server

    def start(self) -> None:
        if self._server is not None:
            return
        try:
            server = _Server((LOOPBACK, self.port), self)
        except OSError:
            if self.port == 0:
                raise
            server = _Server((LOOPBACK, 0), self)  # port taken meanwhile: the URL changes
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"http-{self.node}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=2.0)

    def respond(self, req: ApiRequest) -> ApiResponse | None:
        """The reply for `req`, waiting as a blocking query or a paused agent would; None = drop."""
        driver = self.driver
        engine = driver.engine
        wall_limit: float | None = None
        virtual_deadline: int | None = None
        with driver.changed:
            while True:  # bounded: every branch either returns or waits toward a wall-clock limit
                try:
                    # The wait's jitter is drawn once, on the look that starts the wait.
                    result = self.api.handle(self.node, req, may_block=True, jitter=virtual_deadline is None)
                except AgentUnavailable as exc:
                    if exc.refused:
                        return None
                    if wall_limit is None:
                        wall_limit = driver.wall() + PAUSED_HOLD_S
                    if driver.wall() >= wall_limit:
                        return None
                    driver.changed.wait(WAIT_SLICE_S)
                    continue
                if isinstance(result, ApiResponse):
                    return result
                assert isinstance(result, Block)
                if virtual_deadline is None:
                    virtual_deadline = engine.now + result.wait_ms
                    wall_limit = driver.wall() + result.wait_ms / 1000 / driver.speed + 1.0
                assert wall_limit is not None
                if engine.now >= virtual_deadline or driver.wall() >= wall_limit or not driver.running:
                    final = self.api.handle(self.node, req, may_block=False)
                    assert isinstance(final, ApiResponse)
                    return final
                driver.changed.wait(min(WAIT_SLICE_S, max(0.01, wall_limit - driver.wall())))


class ClusterHttp:
    """Per-agent HTTP servers that follow crashes, shutdowns, restarts and new nodes."""

    def __init__(self, cluster: Cluster, driver: PacedDriver, api: AgentApi, *, first_port: int = 0) -> None:
        self.cluster = cluster
        self.driver = driver
        self.api = api
        # 0: the OS picks each port. Otherwise agents get first_port, first_port + 1, … in the order
        # they appear (sorted names at start), so a restarted `sim serve` listens where it did.
        self.first_port = first_port
        self.servers: dict[str, AgentHttpServer] = {}
        self._unsubscribe: list[Any] = []

    @property
    def urls(self) -> dict[str, str]:
        return {name: server.url for name, server in sorted(self.servers.items())}

    def start(self) -> dict[str, str]:
        with self.driver.lock:
            for name in sorted(self.cluster.nodes):
                self._open(name)
            subscribe = self.cluster.subscribe
            self._unsubscribe = [
                subscribe(NodeAdded, lambda ev: self._open(ev.node_name)),
                subscribe(NodeCrashed, lambda ev: self._close(ev.node_name)),
                subscribe(NodeShutdown, lambda ev: self._close(ev.node_name)),
                subscribe(NodeRestarted, lambda ev: self._open(ev.node_name)),
            ]
        return self.urls

    def _open(self, name: str) -> None:
        server = self.servers.get(name)
        if server is None:
            port = self.first_port + len(self.servers) if self.first_port else 0
            server = AgentHttpServer(self.api, name, self.driver, port)
            self.servers[name] = server
        if self.cluster.nodes[name].up:
            server.start()

    def _close(self, name: str) -> None:
        server = self.servers.get(name)
        if server is not None:
            server.stop()

    def close(self) -> None:
        with self.driver.lock:
            for unsubscribe in self._unsubscribe:
                unsubscribe()
            self._unsubscribe = []
        # All at once: each stop waits for its serve_forever loop to notice.
        stoppers = [threading.Thread(target=server.stop) for server in self.servers.values()]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()

    def __enter__(self) -> ClusterHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_cluster(
    cluster: Cluster,
    driver: PacedDriver,
    *,
    api: AgentApi | None = None,
    acl: AclConfig | None = None,
    first_port: int = 0,
) -> ClusterHttp:
    """Start an HTTP API per agent on loopback; `.urls` maps node name → `http://127.0.0.1:PORT`."""
    served = ClusterHttp(cluster, driver, api or AgentApi(cluster, acl=acl), first_port=first_port)
    served.start()
    return served
