"""Whether a request goes through an HTTP proxy, by urllib's environment rules (which botocore follows)."""

from __future__ import annotations

from collections.abc import Mapping


def proxied(env: Mapping[str, str], scheme: str, host: str, port: int | None) -> bool:
    """True when `<scheme>_proxy` is set and `no_proxy` does not exempt `host` (or `host:port`)."""
    if not _proxy_var(env, scheme):
        return False
    no_proxy = _proxy_var(env, "no")
    if not no_proxy:
        return True
    if no_proxy.strip() == "*":
        return False
    names = {host.lower()} | ({f"{host.lower()}:{port}"} if port is not None else set())
    for entry in no_proxy.split(","):
        entry = entry.strip().lstrip(".").lower()
        if entry and any(name == entry or name.endswith("." + entry) for name in names):
            return False
    return True


def _proxy_var(env: Mapping[str, str], scheme: str) -> str | None:
    lower = f"{scheme}_proxy"
    if lower in env:  # urllib prefers the lowercase spelling, even when it is empty
        return env[lower] or None
    return next((value for name, value in env.items() if name.lower() == lower and value), None)
