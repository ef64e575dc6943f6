"""`consul watch` itself, as a simulated process that runs a real handler on every change.

Modelled on Consul's api/watch/plan.go (`RunWithClientAndHclog`) and command/watch/watch.go:
- the CLI first asks its agent for its node name (`Agent().NodeName()`) and exits 1 if it cannot;
- then it loops on a blocking query (`/v1/catalog/nodes` for `-type=nodes`, `/v1/health/state/any`
  for `-type=checks`) with the last index and the server's default wait;
- on an error it backs off `retryInterval * failures²` (5 s · n²), capped at `maxBackoffTime`
  (180 s), and keeps the index it had;
- an unchanged index does nothing; a changed index with a result equal to the last one does
  nothing; an index that went backwards starts over from 0 (the next result fires);
- the first result fires the handler (fire-on-create);
- the handler gets the result as JSON on stdin and `CONSUL_INDEX` in its environment, and runs
  synchronously: the next query starts after it returned. If it exits non-zero the CLI prints
  "Error executing handler" and exits 1 — and systemd, not Consul, brings it back.

The handler is a generator of `Checkpoint`s, like every process the fleet steps: the watch yields
its own queries and `yield from`s the handler, so latency, holds and faults fall between any two
calls of either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from tagjoin.core.clock import Clock
from tagjoin.core.handoff import Checkpoint
from tagjoin.sim.consul.http_api import AgentApi, AgentUnavailable, ApiRequest, ApiResponse

RETRY_INTERVAL_MS = 5_000
MAX_BACKOFF_MS = 180_000
PATHS = {"nodes": "/v1/catalog/nodes", "checks": "/v1/health/state/any"}

# A handler run: (payload on stdin, CONSUL_INDEX) → the steps of the child process, ending in its exit status.
HandlerFactory = Callable[[str, str], Generator[Checkpoint, None, int]]


@dataclass(frozen=True)
class WatchExit:
    """How a `consul watch` process ended."""

    code: int
    reason: str


def backoff_ms(failures: int) -> int:
    """plan.go: `retryInterval * failures²`, never more than `maxBackoffTime`."""
    return min(RETRY_INTERVAL_MS * failures * failures, MAX_BACKOFF_MS)


def consul_watch(
    api: AgentApi,
    node: str,
    kind: str,
    clock: Clock,
    handler: HandlerFactory,
    *,
    fired: Callable[[int], None] | None = None,
) -> Generator[Checkpoint, None, WatchExit]:
    """`consul watch -type=<kind> <handler>` on agent `node`, until its handler fails."""
    path = PATHS[kind]
    yield Checkpoint("consul watch: agent/self", "/v1/agent/self")
    if _get(api, node, "/v1/agent/self") is None:
        return WatchExit(1, "Error querying Consul agent")
    last_index: int | None = None
    last_result: Any = None
    failures = 0
    while True:
        target = f"{path}?index={last_index}" if last_index else path
        yield Checkpoint(f"consul watch: {kind}", target)
        answer = _get(api, node, target)
        if answer is None:
            failures += 1
            clock.sleep(backoff_ms(failures) / 1000)
            continue
        failures = 0
        index, result = answer
        if last_index is not None and index == last_index:
            continue
        previous = last_index
        # WaitIndexVal.Next (api/watch/funcs.go) keeps the new index; a client that saw the
        # index go backwards starts over from 0, so the next answer is a fresh first result.
        last_index = 0 if previous is not None and index < previous else index
        if previous is not None and result == last_result:
            continue
        last_result = result
        if fired is not None:
            fired(index)
        code = yield from handler(json.dumps(result), str(index))
        if code != 0:
            return WatchExit(1, f"Error executing handler: exit status {code}")


def _get(api: AgentApi, node: str, target: str) -> tuple[int, Any] | None:
    """The agent's answer as (X-Consul-Index, decoded body), or None for any failure."""
    try:
        response = api.handle(node, ApiRequest.build("GET", target))
    except AgentUnavailable:
        return None
    if not isinstance(response, ApiResponse) or response.status != 200:
        return None
    raw_index = response.headers.get("X-Consul-Index", "0")
    return (int(raw_index) if raw_index.isdigit() else 0), response.json()
