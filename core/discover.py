"""Join targets from the leader tag: Consul's cloud auto-join syntax, ordering, output formats."""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from operator import attrgetter
from pathlib import Path

from tagjoin.core.errors import ConfigError
from tagjoin.core.model import Instance, parse_term

ADDR_TYPES = ("private_v4", "public_v4")
# Keys go-discover's AWS provider knows but we deliberately refuse, with the reason shown to the user.
_REFUSED_KEYS = {
    "access_key_id": "pass credentials through the standard AWS chain (env, profile, instance role)",
    "secret_access_key": "pass credentials through the standard AWS chain (env, profile, instance role)",
    "session_token": "pass credentials through the standard AWS chain (env, profile, instance role)",
    "service": "only EC2 discovery is supported",
    "ecs_cluster": "only EC2 discovery is supported",
    "ecs_family": "only EC2 discovery is supported",
}
_KNOWN_KEYS = ("provider", "tag_key", "tag_value", "region", "addr_type", "endpoint")


class Source(StrEnum):
    LEADER_TAG = "leader-tag"
    FALLBACK = "fallback"
    NONE = "none"


@dataclass(frozen=True)
class DiscoverSpec:
    """A parsed `provider=aws ...` string; None means "use the configured default"."""

    tag_key: str | None = None
    tag_value: str | None = None
    region: str | None = None
    addr_type: str = "private_v4"
    endpoint: str | None = None


@dataclass(frozen=True)
class Targets:
    addresses: tuple[str, ...]
    source: Source

    def render(self, fmt: str) -> str:
        if fmt == "lines":
            return "".join(f"{a}\n" for a in self.addresses)
        if fmt == "flags":
            return " ".join(f"-retry-join={a}" for a in self.addresses) + ("\n" if self.addresses else "")
        if fmt == "json":
            return json.dumps({"targets": list(self.addresses), "source": self.source.value}) + "\n"
        raise ConfigError(f"unknown output format {fmt!r}; use lines, flags or json")


def parse_discover(text: str) -> DiscoverSpec:
    """Parse Consul's cloud auto-join syntax (go-discover), refusing what we cannot honour."""
    pairs = _split_pairs(text)
    provider = pairs.pop("provider", None)
    if provider is None:
        raise ConfigError(f"discover string {text!r} has no provider=; expected provider=aws tag_key=...")
    if provider != "aws":
        raise ConfigError(f"provider={_shown(provider)} is not supported; only provider=aws is")
    for key in pairs:
        if key in _REFUSED_KEYS:
            raise ConfigError(f"discover key {key}= is not supported: {_REFUSED_KEYS[key]}")
        if key not in _KNOWN_KEYS:
            known = " ".join(f"{k}=" for k in _KNOWN_KEYS)
            raise ConfigError(f"unknown discover key {key}= (known: {known})")
    addr_type = pairs.get("addr_type", "private_v4")
    if addr_type not in ADDR_TYPES:
        raise ConfigError(f"addr_type={_shown(addr_type)} is not supported; use private_v4 or public_v4")
    return DiscoverSpec(
        tag_key=pairs.get("tag_key") or None,
        tag_value=pairs.get("tag_value") or None,
        region=pairs.get("region") or None,
        addr_type=addr_type,
        endpoint=pairs.get("endpoint") or None,
    )


def _shown(value: str) -> str:
    """A value from the discover string as an error message may quote it: on one line, not too long."""
    if value.isprintable() and len(value) <= 60:
        return value
    return repr(value[:60] + ("…" if len(value) > 60 else ""))


def _split_pairs(text: str) -> dict[str, str]:
    """Split `k=v k="v w"` with go-discover's quoting: double quotes, backslash escapes."""
    pairs: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        space = _next_space(text, i)
        if eq == -1 or (space != -1 and space < eq):
            raise ConfigError(f"discover string: expected key=value at {text[i:].split()[0]!r}")
        key = text[i:eq]
        value, i = _read_value(text, eq + 1)
        if key in pairs:
            raise ConfigError(f"discover string: duplicate key {key}=")
        pairs[key] = value
    return pairs


def _next_space(text: str, start: int) -> int:
    for j in range(start, len(text)):
        if text[j].isspace():
            return j
    return -1


def _read_value(text: str, i: int) -> tuple[str, int]:
    if i < len(text) and text[i] == '"':
        out: list[str] = []
        i += 1
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                return "".join(out), i + 1
            out.append(ch)
            i += 1
        raise ConfigError("discover string: unterminated quoted value")
    end = _next_space(text, i)
    end = len(text) if end == -1 else end
    return text[i:end], end


def address_of(instance: Instance, addr_type: str) -> str | None:
    return _address_getter(addr_type)(instance)


def _address_getter(addr_type: str) -> Callable[[Instance], str | None]:
    """`address_of` for one `addr_type`, one C call an instance: a fallback lists the whole fleet."""
    return _PUBLIC_IP if addr_type == "public_v4" else _PRIVATE_IP


_PUBLIC_IP: Callable[[Instance], str | None] = attrgetter("public_ip")
_PRIVATE_IP: Callable[[Instance], str | None] = attrgetter("private_ip")


def select_targets(
    tagged: Iterable[Instance],
    *,
    tag_key: str,
    own_addresses: Iterable[str] = (),
    addr_type: str = "private_v4",
    tag_value: str | None = None,
    fallback: Sequence[Instance] = (),
) -> Targets:
    """Order the tagged running instances best first (highest term) and drop this node's own address.

    Joining yourself counts as success in Consul and leaves the node an island, so our own
    addresses never appear. The fallback set is used only when no leader tag yields an address,
    and then at most FALLBACK_LIMIT of it.
    """
    own = set(own_addresses)
    holders = [
        i for i in tagged if i.running and tag_key in i.tags and (tag_value is None or i.tags[tag_key] == tag_value)
    ]
    # Highest term first; naive `true` values and garbled ones rank below any term.
    holders.sort(key=lambda i: (-(parse_term(i.tags[tag_key]) or -1), i.instance_id))
    picked = _addresses(holders, addr_type, own)
    if picked:
        return Targets(picked, Source.LEADER_TAG)
    # In address order: the strings sort without a key call per instance.
    spare = sorted(_addresses([i for i in fallback if i.running], addr_type, own))
    picked = _spread_pick(tuple(spare), own, FALLBACK_LIMIT)
    return Targets(picked, Source.FALLBACK if picked else Source.NONE)


# memberlist's Join push-pulls its full member list with every address it is given, and Consul's
# retry_join gives it all of them in each attempt; one live member is enough to learn the pool. A
# fallback naming the whole fleet made each boot of an n-member cluster n state exchanges of n
# entries, so it is cut to a few, which still ride out several of them being down.
FALLBACK_LIMIT = 8


def _spread_pick(addresses: tuple[str, ...], own: set[str], limit: int) -> tuple[str, ...]:
    """At most `limit` of `addresses` (in address order), a run of the sorted ring starting where
    this node's own addresses point, so that nodes booting together spread their joins over the
    fleet instead of all asking the same few. The start is a checksum of all of them: a host's
    addresses include some every host shares (docker0's 172.17.0.1) and, with public_v4 targets,
    none of the listed kind, so no single one of them can place the node on the ring."""
    if len(addresses) <= limit:
        return addresses
    start = zlib.crc32(",".join(sorted(own)).encode()) % len(addresses) if own else 0
    ring = addresses[start:] + addresses[:start]
    return tuple(sorted(ring[:limit]))


def why_no_targets(
    tagged: Iterable[Instance],
    *,
    tag_key: str,
    own_addresses: Iterable[str] = (),
    addr_type: str = "private_v4",
    tag_value: str | None = None,
) -> str:
    """Why the tag's holders gave no address, e.g. "1 holder (i-0abc=2) has no public IPv4".

    "Nobody carries the tag" and "somebody does, but is filtered out" call for different fixes
    (start the cluster, or change addr_type / tag_value / --self), so the message names which.
    """
    own = set(own_addresses)
    groups: dict[str, list[Instance]] = {}
    for inst in tagged:
        if tag_key not in inst.tags:
            continue
        if not inst.running:
            why = f"is {inst.state}" if inst.state else "is not running"
        elif tag_value is not None and inst.tags[tag_key] != tag_value:
            why = f"has a value other than {tag_value}"
        elif not address_of(inst, addr_type):
            why = f"has no {_ADDR_NAMES[addr_type]}"
        elif address_of(inst, addr_type) in own:
            why = "is this node"
        else:
            continue
        groups.setdefault(why, []).append(inst)
    if not groups:
        return f"no running instance carries tag {tag_key}"
    parts = []
    for why, insts in groups.items():
        shown = ", ".join(f"{i.instance_id}={i.tags[tag_key]}" for i in insts[:3])
        more = f", {len(insts) - 3} more" if len(insts) > 3 else ""
        noun = "holder" if len(insts) == 1 else "holders"
        parts.append(f"{len(insts)} {noun} ({shown}{more}) {why if len(insts) == 1 else _plural(why)}")
    return "; ".join(parts)


_ADDR_NAMES = {"private_v4": "private IPv4", "public_v4": "public IPv4"}


def _plural(why: str) -> str:
    if why == "is this node":
        return "are this node's own addresses"
    for one, many in (("has ", "have "), ("is ", "are ")):
        if why.startswith(one):
            return many + why[len(one) :]
    return why


def _addresses(instances: Iterable[Instance], addr_type: str, own: set[str]) -> tuple[str, ...]:
    # A dict keeps the first place of each address, and a fallback lists the whole fleet: a list
    # searched for every address made a fleet of thousands cost millions of comparisons a boot.
    found = map(_address_getter(addr_type), instances)
    return tuple(dict.fromkeys(addr for addr in found if addr and addr not in own))


def local_addresses(fib_trie: Path = Path("/proc/net/fib_trie")) -> set[str]:
    """This host's own IPv4 addresses, read from the kernel without opening any socket."""
    try:
        lines = fib_trie.read_text().splitlines()
    except OSError:
        return set()
    found: set[str] = set()
    for prev, line in itertools.pairwise(lines):
        if line.strip() == "/32 host LOCAL":
            addr = prev.strip().removeprefix("|-- ").strip()
            if addr and not addr.startswith("127."):
                found.add(addr)
    return found
