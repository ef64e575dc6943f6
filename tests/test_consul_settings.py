"""CONSUL_* env vars and flags → ConsulSettings, with the Go client's semantics (api/api.go `DefaultConfig`)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tagjoin.core.consul.settings import (
    DEFAULT_TIMEOUT,
    ConsulSettings,
    build_http_client,
    consul_settings_from_env,
    ssl_context,
)
from tagjoin.core.errors import ConfigError
from tests.fake_agent import make_tls_files

SECRET = "b3a9f0c2-5e1d-4c7a-9f8e-secret-token"


def from_env(**env: str) -> ConsulSettings:
    return consul_settings_from_env(env)


# -- address --


def test_defaults() -> None:
    s = from_env()
    assert (s.address, s.scheme, s.unix_socket, s.path_prefix) == ("127.0.0.1:8500", "http", None, "")
    assert s.token is None
    assert s.ssl_verify is True
    assert s.timeout == DEFAULT_TIMEOUT == 10.0
    assert s.base_url == "http://127.0.0.1:8500"


def test_empty_addr_means_default() -> None:
    assert from_env(CONSUL_HTTP_ADDR="").address == "127.0.0.1:8500"


@pytest.mark.parametrize(
    ("raw", "scheme", "address", "prefix"),
    [
        ("10.0.1.10:8500", "http", "10.0.1.10:8500", ""),
        ("http://10.0.1.10:8500", "http", "10.0.1.10:8500", ""),
        ("https://10.0.1.10:8501", "https", "10.0.1.10:8501", ""),
        ("https://consul.example:8501/consul", "https", "consul.example:8501", "/consul"),
        ("http://proxy.example/a/b/", "http", "proxy.example", "/a/b"),
        ("http://proxy.example/", "http", "proxy.example", ""),
        ("[::1]:8500", "http", "[::1]:8500", ""),
    ],
)
def test_address_forms(raw: str, scheme: str, address: str, prefix: str) -> None:
    s = from_env(CONSUL_HTTP_ADDR=raw)
    assert (s.scheme, s.address, s.path_prefix, s.unix_socket) == (scheme, address, prefix, None)
    assert s.base_url == f"{scheme}://{address}{prefix}"


def test_unix_socket_address() -> None:
    s = from_env(CONSUL_HTTP_ADDR="unix:///var/run/consul/http.sock")
    assert s.unix_socket == "/var/run/consul/http.sock"
    assert s.display_address == "unix:///var/run/consul/http.sock"
    assert s.base_url == "http://localhost"


@pytest.mark.parametrize("raw", ["ftp://10.0.1.10:21", "tcp://host:8500", "HTTP://host:8500"])
def test_unknown_scheme(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^Unknown protocol scheme: \w+"):
        from_env(CONSUL_HTTP_ADDR=raw)


@pytest.mark.parametrize("raw", ["http://", "https:///prefix", "unix://", "http://bad host:8500", "host:port"])
def test_address_without_host(raw: str) -> None:
    with pytest.raises(ConfigError, match="CONSUL_HTTP_ADDR"):
        from_env(CONSUL_HTTP_ADDR=raw)


def test_http_addr_flag_wins() -> None:
    s = consul_settings_from_env({"CONSUL_HTTP_ADDR": "10.0.1.10:8500"}, http_addr="10.0.2.10:8500")
    assert s.address == "10.0.2.10:8500"


def test_bad_flag_address_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--http-addr"):
        consul_settings_from_env({}, http_addr="http://")


# -- CONSUL_HTTP_SSL / CONSUL_HTTP_SSL_VERIFY (strconv.ParseBool) --


@pytest.mark.parametrize("raw", ["1", "t", "T", "TRUE", "true", "True"])
def test_ssl_true_spellings(raw: str) -> None:
    assert from_env(CONSUL_HTTP_SSL=raw).scheme == "https"


@pytest.mark.parametrize("raw", ["0", "f", "F", "FALSE", "false", "False"])
def test_ssl_false_spellings(raw: str) -> None:
    assert from_env(CONSUL_HTTP_SSL=raw).scheme == "http"


@pytest.mark.parametrize("raw", ["yes", "on", "tRUE", " true", "2"])
def test_ssl_unparseable_is_ignored(raw: str) -> None:
    assert from_env(CONSUL_HTTP_SSL=raw).scheme == "http"


def test_ssl_env_is_never_downgraded_by_http_address() -> None:
    assert from_env(CONSUL_HTTP_SSL="true", CONSUL_HTTP_ADDR="http://10.0.1.10:8501").scheme == "https"


def test_https_address_wins_over_ssl_false() -> None:
    assert from_env(CONSUL_HTTP_SSL="false", CONSUL_HTTP_ADDR="https://10.0.1.10:8501").scheme == "https"


def test_ssl_with_plain_host_port() -> None:
    s = from_env(CONSUL_HTTP_SSL="1", CONSUL_HTTP_ADDR="10.0.1.10:8501")
    assert s.base_url == "https://10.0.1.10:8501"


@pytest.mark.parametrize(
    ("raw", "verify"),
    [("false", False), ("0", False), ("F", False), ("true", True), ("1", True), ("", True), ("nope", True)],
)
def test_ssl_verify(raw: str, verify: bool) -> None:
    assert from_env(CONSUL_HTTP_SSL_VERIFY=raw).ssl_verify is verify


def test_ssl_verify_unset() -> None:
    assert from_env().ssl_verify is True


# -- token precedence: -token-file > -token > CONSUL_HTTP_TOKEN_FILE > CONSUL_HTTP_TOKEN --


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_token_env() -> None:
    assert from_env(CONSUL_HTTP_TOKEN="env-token").token == "env-token"


def test_token_file_env_beats_token_env(tmp_path: Path) -> None:
    env = {
        "CONSUL_HTTP_TOKEN": "env-token",
        "CONSUL_HTTP_TOKEN_FILE": write(tmp_path / "t", "  file-token\n"),
    }
    assert consul_settings_from_env(env).token == "file-token"


def test_token_flag_beats_token_file_env(tmp_path: Path) -> None:
    env = {"CONSUL_HTTP_TOKEN": "env-token", "CONSUL_HTTP_TOKEN_FILE": write(tmp_path / "t", "file-token")}
    assert consul_settings_from_env(env, token="flag-token").token == "flag-token"


def test_token_file_flag_beats_everything(tmp_path: Path) -> None:
    env = {"CONSUL_HTTP_TOKEN": "env-token", "CONSUL_HTTP_TOKEN_FILE": write(tmp_path / "t", "env-file")}
    flag_file = write(tmp_path / "f", "\tflag-file-token \n")
    s = consul_settings_from_env(env, token="flag-token", token_file=flag_file)
    assert s.token == "flag-file-token"


def test_empty_token_file_falls_through(tmp_path: Path) -> None:
    env = {"CONSUL_HTTP_TOKEN": "env-token", "CONSUL_HTTP_TOKEN_FILE": write(tmp_path / "t", " \n")}
    assert consul_settings_from_env(env).token == "env-token"


def test_token_flag_skips_unreadable_env_file(tmp_path: Path) -> None:
    env = {"CONSUL_HTTP_TOKEN_FILE": str(tmp_path / "missing")}
    assert consul_settings_from_env(env, token="flag-token").token == "flag-token"


def test_empty_token_is_none() -> None:
    assert from_env(CONSUL_HTTP_TOKEN="").token is None


def test_unreadable_token_file_names_path_not_contents(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-token")
    with pytest.raises(ConfigError) as info:
        from_env(CONSUL_HTTP_TOKEN_FILE=missing)
    assert missing in str(info.value)
    assert "CONSUL_HTTP_TOKEN_FILE" in str(info.value)
    assert "\n" not in str(info.value)


def test_token_file_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--token-file"):
        consul_settings_from_env({}, token_file=str(tmp_path))


def test_non_utf8_token_file_never_shows_contents(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"\xff\xfe" + SECRET.encode())
    with pytest.raises(ConfigError) as info:
        from_env(CONSUL_HTTP_TOKEN_FILE=str(path))
    assert SECRET not in str(info.value)
    assert str(path) in str(info.value)


# -- TLS files and server name --


def test_tls_env() -> None:
    s = from_env(
        CONSUL_CACERT="/etc/consul/ca.pem",
        CONSUL_CAPATH="/etc/consul/cas",
        CONSUL_CLIENT_CERT="/etc/consul/client.pem",
        CONSUL_CLIENT_KEY="/etc/consul/client.key",
        CONSUL_TLS_SERVER_NAME="server.dc1.consul",
    )
    assert s.ca_file == "/etc/consul/ca.pem"
    assert s.ca_path == "/etc/consul/cas"
    assert (s.client_cert, s.client_key) == ("/etc/consul/client.pem", "/etc/consul/client.key")
    assert s.tls_server_name == "server.dc1.consul"


def test_tls_flags_win() -> None:
    env = {
        "CONSUL_CACERT": "env-ca",
        "CONSUL_CAPATH": "env-capath",
        "CONSUL_CLIENT_CERT": "env-cert",
        "CONSUL_CLIENT_KEY": "env-key",
        "CONSUL_TLS_SERVER_NAME": "env.consul",
    }
    s = consul_settings_from_env(
        env,
        ca_file="flag-ca",
        ca_path="flag-capath",
        client_cert="flag-cert",
        client_key="flag-key",
        tls_server_name="flag.consul",
    )
    assert (s.ca_file, s.ca_path, s.client_cert, s.client_key) == (
        "flag-ca",
        "flag-capath",
        "flag-cert",
        "flag-key",
    )
    assert s.tls_server_name == "flag.consul"


@pytest.mark.parametrize(
    "env",
    [{"CONSUL_CLIENT_CERT": "client.pem"}, {"CONSUL_CLIENT_KEY": "client.key"}],
)
def test_client_cert_and_key_come_together(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="both client cert and client key must be provided"):
        consul_settings_from_env(env)


def test_flag_cert_with_env_key_is_a_pair() -> None:
    s = consul_settings_from_env({"CONSUL_CLIENT_KEY": "env.key"}, client_cert="flag.pem")
    assert (s.client_cert, s.client_key) == ("flag.pem", "env.key")


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("server.dc1.consul", "server.dc1.consul"),
        ("server.dc1.consul:8501", "server.dc1.consul"),
        ("10.0.1.10:8501", "10.0.1.10"),
        ("[::1]:8501", "::1"),
        ("[::1]", "::1"),
    ],
)
def test_tls_server_name_port_stripped(raw: str, name: str) -> None:
    assert from_env(CONSUL_TLS_SERVER_NAME=raw).tls_server_name == name


def test_tls_server_name_too_many_colons() -> None:
    with pytest.raises(ConfigError, match="CONSUL_TLS_SERVER_NAME"):
        from_env(CONSUL_TLS_SERVER_NAME="fe80::1:8501")


# -- timeout, repr, derived settings --


def test_timeout_flag() -> None:
    assert consul_settings_from_env({}, timeout=2.5).timeout == 2.5


@pytest.mark.parametrize("timeout", [0.0, -1.0])
def test_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        consul_settings_from_env({}, timeout=timeout)


def test_repr_and_redacted_never_show_token() -> None:
    s = from_env(CONSUL_HTTP_TOKEN=SECRET)
    assert s.token == SECRET
    for text in (repr(s), str(s), f"{s}", str(s.redacted()), repr([s])):
        assert SECRET not in text
        assert "<redacted>" in text
    assert s.redacted()["token"] == "<redacted>"
    assert from_env().redacted()["token"] is None


def test_with_address_keeps_token_and_tls() -> None:
    s = from_env(CONSUL_HTTP_ADDR="https://10.0.1.10:8501", CONSUL_HTTP_TOKEN=SECRET, CONSUL_CACERT="ca.pem")
    other = s.with_address("10.0.2.10:8501")
    assert (other.scheme, other.address, other.token, other.ca_file) == (
        "https",
        "10.0.2.10:8501",
        SECRET,
        "ca.pem",
    )
    assert s.address == "10.0.1.10:8501"


def test_with_address_parses_urls() -> None:
    s = from_env().with_address("https://10.0.2.10:8501/prefix")
    assert (s.scheme, s.address, s.path_prefix) == ("https", "10.0.2.10:8501", "/prefix")
    with pytest.raises(ConfigError, match="Unknown protocol scheme: gopher"):
        s.with_address("gopher://x")


def test_direct_construction_checks_scheme() -> None:
    with pytest.raises(ConfigError, match="Unknown protocol scheme: ftp"):
        ConsulSettings(scheme="ftp")


# -- the httpx client --


def test_client_sends_token_header_only_when_set() -> None:
    with build_http_client(from_env(CONSUL_HTTP_TOKEN=SECRET)) as client:
        assert client.headers["X-Consul-Token"] == SECRET
        assert str(client.base_url) == "http://127.0.0.1:8500"
    with build_http_client(from_env()) as client:
        assert "X-Consul-Token" not in client.headers


def test_ssl_context_no_verify() -> None:
    context = ssl_context(from_env(CONSUL_HTTP_SSL_VERIFY="false"))
    assert context.verify_mode == ssl.CERT_NONE
    assert context.check_hostname is False


def test_ssl_context_loads_ca_and_client_cert(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    s = consul_settings_from_env({}, ca_file=files.ca_file, client_cert=files.client_cert, client_key=files.client_key)
    context = ssl_context(s)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "Consul Agent CA"),),)]


def test_ssl_context_bad_ca_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "ca.pem")
    with pytest.raises(ConfigError, match=r"CA certificates from .*ca\.pem"):
        ssl_context(from_env(CONSUL_CACERT=missing))


def test_ssl_context_bad_client_key(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    s = consul_settings_from_env({}, client_cert=files.client_cert, client_key=files.ca_file)
    with pytest.raises(ConfigError, match="client certificate"):
        ssl_context(s)
