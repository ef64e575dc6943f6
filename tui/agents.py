"""Per-node agent addresses: an operator's template, a map file, or the demo's node directory."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
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


class MapAgents:
    """Explicit agent URLs per node from a JSON file, `{"agents": {"node": "http://127.0.0.1:18501"}}`.

    For agents a template cannot describe, such as `tagjoin sim serve`'s, each on its own loopback
    port (`sim serve --agent-map FILE` writes and updates the file). The file is read again when it
    changes, so a restarted `sim serve` is followed; a node it does not list has no known agent.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._urls: Mapping[str, str] = MappingProxyType({})
        try:
            self._load()
        except ConfigError:
            raise
        except OSError as exc:
            raise ConfigError(f"agent map {self.path}: {exc.strerror or exc}") from None

    def _load(self) -> None:
        st = self.path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            data = json.loads(self.path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"agent map {self.path} is not JSON ({exc})") from None
        agents = data.get("agents") if isinstance(data, dict) else None
        if not isinstance(agents, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in agents.items()
        ):
            raise ConfigError(f'agent map {self.path}: expected {{"agents": {{"node": "http://host:port"}}}}')
        self._urls = MappingProxyType(dict(agents))
        self._stamp = stamp

    def refresh(self) -> None:
        try:
            self._load()
        except (OSError, ConfigError):
            return  # mid-rewrite or gone for a moment: keep the last map

    def agent_url(self, node: str, address: str) -> str | None:
        return self._urls.get(node)

    def running(self, node: str) -> bool | None:
        return None
