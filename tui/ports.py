"""What the console needs from Consul, EC2 and the node directory, as structural types.

The console is written against these so the test doubles and the real adapters (tagjoin.core.consul.client,
tagjoin.core.aws.tag_store) plug in alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tagjoin.core.model import (
    AgentSelf,
    AutopilotHealth,
    AutopilotState,
    Blocking,
    HealthCheck,
    Instance,
    Member,
    NodeService,
    RaftConfiguration,
)


class ConsulApi(Protocol):
    """The subset of tagjoin.core.consul.client.ConsulClient the console calls."""

    @property
    def address(self) -> str:
        """The agent this client talks to, as a URL."""
        ...

    def leader(self) -> str | None: ...

    def members(self) -> list[Member]: ...

    def agent_self(self) -> AgentSelf: ...

    def leave(self) -> None: ...

    def force_leave(self, node: str, *, prune: bool = False) -> None: ...

    def raft_configuration(self, *, stale: bool = False) -> RaftConfiguration: ...

    def autopilot_health(self) -> AutopilotHealth: ...

    def autopilot_state(self) -> AutopilotState: ...

    def health_node(self, node: str, *, consistency: str | None = ...) -> Blocking[list[HealthCheck]]: ...

    def node_services(self, node: str) -> list[NodeService]: ...

    def with_address(self, address: str, *, timeout: float | None = None) -> ConsulApi: ...

    def close(self) -> None: ...


class InstanceStore(Protocol):
    """The subset of tagjoin.core.aws.tag_store.TagStore the console reads."""

    def instances(self, *, states: Sequence[str] | None = ...) -> list[Instance]: ...


class AgentResolver(Protocol):
    """Where each node's own HTTP agent answers.

    A real cluster derives it from an address template; the demo asks its control API,
    because every simulated agent listens on its own loopback port.
    """

    def refresh(self) -> None:
        """Re-read the directory, if it has one; called once per poll, in the poll thread."""
        ...

    def agent_url(self, node: str, address: str) -> str | None: ...

    def running(self, node: str) -> bool | None:
        """Whether the node's agent process runs, if the directory knows (the demo's does); else None.

        Consul lists a member `left` as soon as it announced its leave, while its agent still drains
        for seconds before it exits; only the process state tells whether it can be started again.
        """
        ...
