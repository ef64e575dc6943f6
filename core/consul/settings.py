"""How to reach a Consul agent: CONSUL_* env vars and flags, with the Go client's semantics.

The precedence and parsing rules follow hashicorp/consul api/api.go (`defaultConfig`, `NewClient`,
`SetupTLSConfig`) so that an operator's existing `consul` CLI environment works unchanged.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import NamedTuple

import httpx

from tagjoin.core.errors import ConfigError
from tagjoin.core.text import REDACTED

DEFAULT_ADDRESS = "127.0.0.1:8500"
DEFAULT_TIMEOUT = 10.0

# strconv.ParseBool accepts exactly these spellings; anything else is a parse error.
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})

# A unix socket has no host; httpx still needs one to build the request line.
_UDS_HOST = "localhost"


@dataclass(frozen=True, repr=False)
class ConsulSettings:
    """Where the agent's HTTP API is and how to authenticate to it.

    `address` is `host:port`; for a unix socket it is a placeholder host and `unix_socket`
    holds the socket path.
    """

    address: str = DEFAULT_ADDRESS
    scheme: str = "http"
    unix_socket: str | None = None
    path_prefix: str = ""
    token: str | None = None
    ca_file: str | None = None
    ca_path: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    ssl_verify: bool = True
    tls_server_name: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    # Where the token came from (`CONSUL_HTTP_TOKEN_FILE /etc/…`), to name it in messages: never the token.
    token_source: str | None = None

    def __post_init__(self) -> None:
        if self.token is not None:
            check_token(self.token, self.token_source or "the configuration")
        if self.scheme not in ("http", "https"):
            raise ConfigError(f"Unknown protocol scheme: {self.scheme}")
        if bool(self.client_cert) != bool(self.client_key):
            raise ConfigError(
                "both client cert and client key must be provided "
                "(set CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY, or neither)"
            )
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ConfigError(f"the Consul HTTP timeout must be positive, got {self.timeout}")

    @property
    def base_url(self) -> str:
        host = _UDS_HOST if self.unix_socket else self.address
        return f"{self.scheme}://{host}{self.path_prefix}"

    @property
    def token_description(self) -> str:
        """The token as an operator would recognise it, without its value."""
        if not self.token:
            return "the anonymous token (no token is set: CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE or --token-file)"
        return f"the token from {self.token_source}" if self.token_source else "the configured token"

    @property
    def display_address(self) -> str:
        """The agent as an operator would recognise it in an error message."""
        if self.unix_socket:
            return f"unix://{self.unix_socket}"
        return f"{self.scheme}://{self.address}{self.path_prefix}"

    def with_address(self, raw: str) -> ConsulSettings:
        """The same credentials and TLS setup aimed at another agent (`host:port` or a URL)."""
        endpoint = _parse_address(raw, scheme=self.scheme, source="agent address")
        return replace(
            self,
            address=endpoint.address,
            scheme=endpoint.scheme,
            unix_socket=endpoint.unix_socket,
            path_prefix=endpoint.path_prefix,
        )

    def redacted(self) -> dict[str, object]:
        """All settings, safe to print: the token is replaced by a marker."""
        return {
            "address": self.address,
            "scheme": self.scheme,
            "unix_socket": self.unix_socket,
            "path_prefix": self.path_prefix,
            "token": REDACTED if self.token else None,
            "ca_file": self.ca_file,
            "ca_path": self.ca_path,
            "client_cert": self.client_cert,
            "client_key": self.client_key,
            "ssl_verify": self.ssl_verify,
            "tls_server_name": self.tls_server_name,
            "timeout": self.timeout,
            "token_source": self.token_source,
        }

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.redacted().items())
        return f"ConsulSettings({fields})"


class _Endpoint(NamedTuple):
    scheme: str
    address: str
    unix_socket: str | None
    path_prefix: str


def consul_settings_from_env(
    env: Mapping[str, str],
    *,
    http_addr: str | None = None,
    token: str | None = None,
    token_file: str | None = None,
    ca_file: str | None = None,
    ca_path: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
    tls_server_name: str | None = None,
    timeout: float | None = None,
) -> ConsulSettings:
    """Settings from CONSUL_* env vars, each overridden by the matching flag when given."""
    addr_source = "--http-addr" if http_addr else "CONSUL_HTTP_ADDR"
    raw_addr = http_addr or env.get("CONSUL_HTTP_ADDR") or DEFAULT_ADDRESS
    # CONSUL_HTTP_SSL picks the scheme first; an explicit https:// in the address can only add TLS.
    scheme = "https" if _parse_go_bool(env.get("CONSUL_HTTP_SSL")) else "http"
    endpoint = _parse_address(raw_addr, scheme=scheme, source=addr_source)
    server_name = tls_server_name or env.get("CONSUL_TLS_SERVER_NAME") or None
    resolved, source = _resolve_token(env, token=token, token_file=token_file)
    return ConsulSettings(
        address=endpoint.address,
        scheme=endpoint.scheme,
        unix_socket=endpoint.unix_socket,
        path_prefix=endpoint.path_prefix,
        token=resolved,
        token_source=source,
        ca_file=ca_file or env.get("CONSUL_CACERT") or None,
        ca_path=ca_path or env.get("CONSUL_CAPATH") or None,
        client_cert=client_cert or env.get("CONSUL_CLIENT_CERT") or None,
        client_key=client_key or env.get("CONSUL_CLIENT_KEY") or None,
        # Only an explicit false turns verification off; a typo must not silently disable it.
        ssl_verify=_parse_go_bool(env.get("CONSUL_HTTP_SSL_VERIFY")) is not False,
        tls_server_name=_strip_port(server_name) if server_name else None,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
    )


def _parse_go_bool(raw: str | None) -> bool | None:
    """strconv.ParseBool; None for unset or unparseable (the Go client warns and ignores those)."""
    if raw in _GO_TRUE:
        return True
    if raw in _GO_FALSE:
        return False
    return None


def _parse_address(raw: str, *, scheme: str, source: str) -> _Endpoint:
    prefix_scheme, sep, rest = raw.partition("://")
    if not sep:
        return _Endpoint(scheme, _require_host(raw, raw, source), None, "")
    if prefix_scheme == "unix":
        if not rest:
            raise ConfigError(f"{source} {raw!r} names no socket path; use unix:///path/to/consul.sock")
        return _Endpoint(scheme, _UDS_HOST, rest, "")
    if prefix_scheme == "https":
        scheme = "https"
    elif prefix_scheme != "http":
        raise ConfigError(f"Unknown protocol scheme: {prefix_scheme} (in {source}; use http, https or unix)")
    # `http://` never downgrades: TLS requested by CONSUL_HTTP_SSL stays on, as in the Go client.
    host, slash, prefix = rest.partition("/")
    path_prefix = ("/" + prefix).rstrip("/") if slash else ""
    return _Endpoint(scheme, _require_host(host, raw, source), None, path_prefix)


def _require_host(host: str, raw: str, source: str) -> str:
    if not host:
        raise ConfigError(f"{source} {raw!r} names no host; use host:port, e.g. {DEFAULT_ADDRESS}")
    if any(ch.isspace() for ch in host):
        raise ConfigError(f"{source} {raw!r} is not a valid agent address (whitespace in the host)")
    try:
        port = httpx.URL(f"http://{host}/").port
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{source} {raw!r} is not a valid agent address ({exc})") from None
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"{source} {raw!r} is not a valid agent address (port {port} is out of range)")
    return host


def _strip_port(name: str) -> str:
    """CONSUL_TLS_SERVER_NAME may carry a port (it is often a copy of the address); SNI must not."""
    host = name
    if name.rfind(":") > name.rfind("]"):
        host = name.rpartition(":")[0]
        if ":" in host and not host.startswith("["):
            raise ConfigError(f"CONSUL_TLS_SERVER_NAME {name!r}: too many colons; bracket IPv6 hosts")
    return host.removeprefix("[").removesuffix("]")


def _resolve_token(
    env: Mapping[str, str], *, token: str | None, token_file: str | None
) -> tuple[str | None, str | None]:
    """The consul CLI's order: -token-file > -token > CONSUL_HTTP_TOKEN_FILE > CONSUL_HTTP_TOKEN.

    Returns the token and where it came from; the token is checked to be header-safe here, so a
    mistake is named by its source before any request could carry (or an error message echo) it.
    """
    if token_file:
        from_file = _read_token_file(token_file, "--token-file")
        if from_file:
            return from_file, f"--token-file {token_file}"
    if token:
        return check_token(token, "--token"), "--token"
    env_file = env.get("CONSUL_HTTP_TOKEN_FILE")
    if env_file:
        from_file = _read_token_file(env_file, "CONSUL_HTTP_TOKEN_FILE")
        if from_file:
            return from_file, f"CONSUL_HTTP_TOKEN_FILE {env_file}"
    from_env = env.get("CONSUL_HTTP_TOKEN") or None
    if from_env is None:
        return None, None
    return check_token(from_env, "CONSUL_HTTP_TOKEN"), "CONSUL_HTTP_TOKEN"


def check_token(token: str, source: str) -> str:
    """`token` if an HTTP header can carry it as is; the refusal names the source, never the token.

    A header value is visible ASCII and spaces: httpx refuses anything else only when the first
    request is built, with the whole value in its message.
    """
    for ch in token:
        if ch in "\r\n":
            raise ConfigError(
                f"the Consul token from {source} contains a line break; a token is one line "
                "(check the token file for a second line)"
            )
        if not ch.isascii():
            raise ConfigError(
                f"the Consul token from {source} contains a non-ASCII character; "
                "an HTTP header cannot carry it (check for a pasted quote or dash)"
            )
        if not 0x20 <= ord(ch) < 0x7F:
            raise ConfigError(
                f"the Consul token from {source} contains a control character (0x{ord(ch):02x}); "
                "an HTTP header cannot carry it"
            )
    return token


def _read_token_file(path: str, source: str) -> str | None:
    # Messages name the file and the OS reason only: the contents are the secret.
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot read the Consul token file {path} ({source}): {reason}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"the Consul token file {path} ({source}) is not UTF-8 text") from None
    stripped = text.strip()
    return check_token(stripped, f"{source} {path}") if stripped else None


def ssl_context(settings: ConsulSettings) -> ssl.SSLContext:
    """The TLS context for https agents: CA file/dir, client certificate, optional no-verify."""
    try:
        context = ssl.create_default_context(cafile=settings.ca_file, capath=settings.ca_path)
    except (OSError, ssl.SSLError) as exc:
        where = settings.ca_file or settings.ca_path
        raise ConfigError(f"cannot load the Consul CA certificates from {where}: {_os_reason(exc)}") from None
    if not settings.ssl_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.client_cert and settings.client_key:
        try:
            context.load_cert_chain(settings.client_cert, settings.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load the Consul client certificate {settings.client_cert} "
                f"with key {settings.client_key}: {_os_reason(exc)}"
            ) from None
    return context


def build_transport(settings: ConsulSettings) -> httpx.HTTPTransport:
    """A real network transport: TCP, or the agent's unix socket."""
    # Plain http never uses the context; passing one keeps httpx from loading a CA bundle for nothing.
    verify = ssl_context(settings) if settings.scheme == "https" else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return httpx.HTTPTransport(verify=verify, uds=settings.unix_socket, retries=0)


def build_http_client(settings: ConsulSettings, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """The httpx client for one agent; an injected transport replaces the network (simulator, tests)."""
    headers = {"User-Agent": "consul-tagjoin"}
    if settings.token:
        headers["X-Consul-Token"] = settings.token
    request_hooks: list[Callable[[httpx.Request], None]] = []
    if settings.tls_server_name and settings.scheme == "https":
        request_hooks.append(_sni_hook(settings.tls_server_name))
    return httpx.Client(
        base_url=settings.base_url,
        transport=transport if transport is not None else build_transport(settings),
        headers=headers,
        timeout=httpx.Timeout(settings.timeout),
        # Proxies and SSL_CERT_FILE from the environment must not override the CONSUL_* setup.
        trust_env=False,
        follow_redirects=False,
        event_hooks={"request": request_hooks},
    )


def _sni_hook(server_name: str) -> Callable[[httpx.Request], None]:
    # httpcore takes the TLS server name (SNI and hostname check) per request, not per context.
    def set_server_name(request: httpx.Request) -> None:
        request.extensions["sni_hostname"] = server_name

    return set_server_name


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
