"""Client of the demo cluster's control API (crash, restart, partition, pause, throttle).

The server side lives in sim/; this is the contract the console relies on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from tagjoin.core.errors import TagjoinError

_TIMEOUT = 10.0


class DemoControlError(TagjoinError):
    """The control API refused a request or could not be reached."""


@dataclass(frozen=True)
class DemoNode:
    name: str
    address: str
    agent: str  # the node's own HTTP agent, e.g. http://127.0.0.1:18501
    role: str  # server / client
    running: bool


class DemoControl:
    def __init__(
        self, base_url: str, *, transport: httpx.BaseTransport | None = None, timeout: float = _TIMEOUT
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def crash(self, node: str) -> None:
        self._post(f"/control/crash/{_seg(node)}")

    def restart(self, node: str) -> None:
        self._post(f"/control/restart/{_seg(node)}")

    def partition(self, isolate: Sequence[str]) -> None:
        self._post("/control/partition", json={"isolate": list(isolate)})

    def heal(self) -> None:
        self._post("/control/heal")

    def pause(self, node: str, seconds: float) -> None:
        self._post(f"/control/pause/{_seg(node)}", params={"seconds": f"{seconds:g}"})

    def throttle(self, action: str, count: int) -> None:
        self._post("/control/throttle", params={"action": action, "count": str(count)})

    def nodes(self) -> list[DemoNode]:
        data = self._request("GET", "/control/nodes")
        raw = data.get("nodes")
        if not isinstance(raw, list):
            raise DemoControlError(f"demo control {self.base_url}/control/nodes: no 'nodes' list in the answer")
        try:
            return [
                DemoNode(
                    name=str(n["name"]),
                    address=str(n["address"]),
                    agent=str(n["agent"]),
                    role=str(n.get("role", "")),
                    running=bool(n.get("running", True)),
                )
                for n in raw
            ]
        except (KeyError, TypeError) as exc:
            raise DemoControlError(
                f"demo control {self.base_url}/control/nodes: malformed node entry ({exc})"
            ) from None

    def _post(self, path: str, *, json: Any = None, params: dict[str, str] | None = None) -> None:
        self._request("POST", path, json=json, params=params)

    def _request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        where = f"demo control {method} {path}"
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise DemoControlError(f"{where}: {exc or type(exc).__name__}; is the demo cluster running?") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            detail = data.get("error") if isinstance(data, dict) else None
            raise DemoControlError(f"{where}: HTTP {response.status_code}: {detail or response.text[:200]}")
        if not isinstance(data, dict):
            raise DemoControlError(f"{where}: the answer is not a JSON object")
        return data


def _seg(node: str) -> str:
    return quote(node, safe="")
