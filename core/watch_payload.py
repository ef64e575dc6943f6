"""Reading the payload `consul watch` hands a handler on stdin (`nodes` or `checks` watches).

The payload is only a trigger, so a payload we will not read costs nothing but a line: anything
larger or deeper than a real watch sends is refused before it can cost memory or the stack.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO

# A nodes watch on 10,000 nodes sends about 5 MB; a checks watch on `critical` far less.
MAX_PAYLOAD_BYTES = 16 << 20
# Watch payloads nest four levels (list, check, Definition, …); nothing real comes near this.
MAX_DEPTH = 32
# CONSUL_INDEX is a uint64.
_MAX_INDEX = 2**64 - 1


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


def read_payload(stream: BinaryIO, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """At most `limit` + 1 bytes of `stream`: enough to tell a payload that is too large.

    The rest is left unread: `consul watch` ignores the broken pipe, and draining an endless
    stream would never end.
    """
    chunks: list[bytes] = []
    left = limit + 1
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def parse_payload(raw: str | bytes, *, limit: int = MAX_PAYLOAD_BYTES) -> WatchPayload:
    """Classify a watch payload. The handoff does not depend on it: it is a trigger, not data.

    An empty list is a valid payload (a checks watch on `critical` with nothing failing).
    """
    if len(raw) > limit:
        raise PayloadError(f"payload is larger than {limit >> 20} MiB; no watch sends that much")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(f"payload is not UTF-8 text (byte {exc.start})") from None
    text = raw.strip()
    if not text:
        raise PayloadError("empty payload on stdin (expected the JSON list a nodes or checks watch sends)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"payload is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise PayloadError(f"payload nests deeper than {MAX_DEPTH} levels; no watch sends that") from None
    if _depth_exceeds(data, MAX_DEPTH):
        raise PayloadError(f"payload nests deeper than {MAX_DEPTH} levels; no watch sends that")
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


def _depth_exceeds(data: object, limit: int) -> bool:
    """Whether `data` nests deeper than `limit`, found without recursion."""
    level: list[object] = [data]
    for _ in range(limit):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item if isinstance(item, list) else ())
        ]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)


def parse_index(raw: str | None) -> int | None:
    """CONSUL_INDEX as consul watch sets it; None when absent or garbled."""
    if raw is None:
        return None
    text = raw.strip()
    # isdigit() alone admits "²" and other digits int() refuses; 20 digits hold any uint64.
    if not text or not text.isascii() or not text.isdigit() or len(text) > 20:
        return None
    value = int(text)
    return value if value <= _MAX_INDEX else None
