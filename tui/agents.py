"""Per-node agent addresses: from an operator's template, or from the demo's node directory."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tagjoin.core.errors import ConfigError, TagjoinError
from tagjoin.tui.demo_control import DemoControl

DEFAULT_AGENT_TEMPLATE = "http://{address}:8500"


class TemplateAgents:
    """`http://{address}:8500` and the like; `{node}` is offered too for DNS-named agents."""

    def __init__(self, template: str = DEFAULT_AGENT_TEMPLATE) -> None:
        try:
            template.format(address="10.0.0.1", node="node")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"agent template {template!r} is not valid ({exc}); use {{address}} and/or {{node}}, "
                f"e.g. {DEFAULT_AGENT_TEMPLATE}"
            ) from None
        if "{address}" not in template and "{node}" not in template:
            raise ConfigError(f"agent template {template!r} names neither {{address}} nor {{node}}")
        self.template = template

    def refresh(self) -> None:
        return None

    def agent_url(self, node: str, address: str) -> str | None:
        return self.template.format(address=address, node=node)

    def running(self, node: str) -> bool | None:
        return None  # a real cluster's processes are not visible from here


class DemoAgents:
    """The demo's agents each listen on their own loopback port, listed by `GET /control/nodes`."""

    def __init__(self, control: DemoControl) -> None:
        self._control = control
        # Replaced whole, never mutated: readers in other threads see one map or the other.
        self._urls: Mapping[str, str] = MappingProxyType({})
        self._running: Mapping[str, bool] = MappingProxyType({})

    def refresh(self) -> None:
        try:
            nodes = self._control.nodes()
        except TagjoinError:
            return  # keep the last map; the poll itself reports what is unreachable
        self._urls = MappingProxyType({n.name: n.agent for n in nodes})
        self._running = MappingProxyType({n.name: n.running for n in nodes})

    def agent_url(self, node: str, address: str) -> str | None:
        return self._urls.get(node)

    def running(self, node: str) -> bool | None:
        return self._running.get(node)
