"""Reading the payload `consul watch` hands a handler on stdin (`nodes` or `checks` watches)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class WatchKind(StrEnum):
    NODES = "nodes"
    CHECKS = "checks"
    EMPTY = "empty"


@dataclass(frozen=True)
class WatchPayload:
    kind: WatchKind
    count: int
    critical: tuple[str, ...] = ()  # nodes whose serfHealth is critical (checks watches)


class PayloadError(ValueError):
    """The payload is not what a nodes or checks watch sends."""


def parse_payload(raw: str) -> WatchPayload:
    """Classify a watch payload. The handoff does not depend on it: it is a trigger, not data.

    An empty list is a valid payload (a checks watch on `critical` with nothing failing).
    """
    text = raw.strip()
    if not text:
        raise PayloadError("empty payload on stdin (expected the JSON list a nodes or checks watch sends)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"payload is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, list):
        raise PayloadError(f"payload is a JSON {type(data).__name__}, expected a list of nodes or checks")
    if not data:
        return WatchPayload(WatchKind.EMPTY, 0)
    if not all(isinstance(item, Mapping) for item in data):
        raise PayloadError("payload list holds something other than objects")
    if all("CheckID" in item and "Status" in item for item in data):
        critical = tuple(
            sorted(
                {
                    str(item.get("Node", ""))
                    for item in data
                    if item.get("CheckID") == "serfHealth" and item.get("Status") == "critical"
                }
            )
        )
        return WatchPayload(WatchKind.CHECKS, len(data), critical)
    if all("Node" in item and "Address" in item for item in data):
        return WatchPayload(WatchKind.NODES, len(data))
    raise PayloadError("payload objects are neither catalog nodes (Node, Address) nor health checks (CheckID, Status)")


def parse_index(raw: str | None) -> int | None:
    """CONSUL_INDEX as consul watch sets it; None when absent or garbled."""
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw.strip())
