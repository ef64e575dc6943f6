"""AWS credentials for the stdlib EC2 client, resolved the way botocore resolves them.

Only the sources a node actually uses are implemented: environment keys, static keys in a shared
profile, and the instance role from the metadata service (IMDSv2 with botocore's IMDSv1 fallback).
Every other source botocore would consult before the instance role — assume-role, SSO, web
identity, credential processes, container credentials, the boto2 files — is detected from the
environment and the config files alone and reported as `NeedsBotocore`, so the caller can hand
the whole job to boto3 before any request goes out.

Where botocore has quirks the chain keeps them, because a node that works with boto3 today must
keep working: AWS_DEFAULT_PROFILE beats AWS_PROFILE, AWS_SECURITY_TOKEN beats AWS_SESSION_TOKEN,
a secret key without an access key id is ignored rather than reported, and a timeout waiting for
the IMDSv2 token (the PUT response dropped by a hop limit of 1 in a container) falls back to IMDSv1.
"""

from __future__ import annotations

import configparser
import http.client
import json
import os
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeAlias
from urllib.parse import urlsplit

from tagjoin.core.errors import ConfigError, Ec2Error
from tagjoin.core.proxies import proxied

REFRESH_MARGIN = 5 * 60.0
RETRY_PAUSE = 30.0
IMDS_URL_IPV4 = "http://169.254.169.254/"
IMDS_URL_IPV6 = "http://[fd00:ec2::254]/"
TOKEN_PATH = "latest/api/token"
ROLE_PATH = "latest/meta-data/iam/security-credentials/"
TOKEN_TTL = "21600"
MAX_METADATA_BYTES = 1 << 16

# Profile keys that make botocore fetch credentials some other way (STS, SSO, a child process).
DELEGATING_KEYS = (
    "role_arn",
    "source_profile",
    "credential_process",
    "credential_source",
    "web_identity_token_file",
    "sso_session",
    "sso_start_url",
    "sso_account_id",
    "sso_role_name",
    "login_session",
)
# Profile keys that change where or how botocore sends requests; the lean client honours none.
REQUEST_SHAPING_KEYS = ("endpoint_url", "services", "ca_bundle", "use_fips_endpoint", "use_dualstack_endpoint")

_HINT = "attach an instance role, set AWS_PROFILE, or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"

# A value that starts on the line after its key is a nested block, which botocore reads as a dict.
Section: TypeAlias = dict[str, str | dict[str, str]]

_VAR = re.compile(r"\$(?:(\w+)|\{([^}]*)\})", re.ASCII)
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(repr=False)
    expires_at: float | None  # epoch seconds; None = does not expire
    source: str


class NeedsBotocore(Exception):
    """The setup uses a credential source only botocore implements; str(exc) names it in a few words."""


@dataclass(frozen=True)
class _Imds:
    scheme: str
    host: str
    port: int | None
    prefix: str  # path of the endpoint, ending in "/"
    timeout: float
    attempts: int
    v1_disabled: bool

    @property
    def url(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}{port}{self.prefix}"


_Plan: TypeAlias = Credentials | _Imds | None  # None: metadata disabled, so nothing is left to try


class _Unreachable(Exception):
    """No TCP connection to the metadata service."""


class _NoAnswer(Exception):
    """Connected, but no complete HTTP response before the timeout."""


class CredentialChain:
    def __init__(
        self, env: Mapping[str, str], *, home: Path | None = None, now: Callable[[], float] = time.time
    ) -> None:
        self._env = env
        self._home = home if home is not None else Path.home()
        self._now = now
        self._profile_memo: _Profile | None = None
        self._plan_memo: _Plan = None
        self._planned = False
        self._cached: Credentials | None = None
        self._retry_at = 0.0  # inside the refresh window, no new fetch before this time

    def check_supported(self) -> None:
        """No network. Raises NeedsBotocore if botocore would take credentials from a source we don't implement,
        ConfigError if AWS_PROFILE/AWS_DEFAULT_PROFILE names a profile that exists in neither file."""
        profile = self._profile()
        for key in REQUEST_SHAPING_KEYS:
            if key in profile.settings:
                raise NeedsBotocore(f"{key} in profile {profile.name}")
        try:
            self._plan()
        except Ec2Error:
            # Partial keys: botocore stops on them as well, so boto3 would not help; get() reports them.
            return

    def get(self) -> Credentials:
        """Cached. Instance-role credentials are fetched again once now() is within 5 minutes of expires_at.

        Inside that window a fetch that brings no newer keys, or fails, is not repeated for
        RETRY_PAUSE seconds while the current keys are still valid: the metadata service rotates
        role keys *at least* five minutes ahead, and every EC2 call must not wait on it meanwhile.
        """
        cached = self._cached
        now = self._now()
        if cached is not None and (cached.expires_at is None or now < cached.expires_at - REFRESH_MARGIN):
            return cached
        if cached is not None and cached.expires_at is not None and now < min(self._retry_at, cached.expires_at):
            return cached
        plan = self._plan()
        if plan is None:
            raise Ec2Error(f"no AWS credentials: instance metadata is disabled (AWS_EC2_METADATA_DISABLED); {_HINT}")
        if isinstance(plan, Credentials):
            self._cached = plan
            return plan
        try:
            fresh = _fetch_instance_role(plan)
        except Ec2Error:
            # A metadata hiccup inside the refresh window must not fail a call the current keys can still sign.
            if cached is not None and cached.expires_at is not None and now < cached.expires_at:
                self._retry_at = now + RETRY_PAUSE
                return cached
            raise
        if fresh.expires_at is not None and now >= fresh.expires_at - REFRESH_MARGIN:
            self._retry_at = now + RETRY_PAUSE
        self._cached = fresh
        return fresh

    def _plan(self) -> _Plan:
        if not self._planned:
            self._plan_memo = self._resolve()
            self._planned = True
        return self._plan_memo

    def _resolve(self) -> _Plan:
        profile = self._profile()  # botocore fails on a missing profile even when the env keys would win
        env = self._env
        access_key = env.get("AWS_ACCESS_KEY_ID", "")
        if access_key:
            secret_key = env.get("AWS_SECRET_ACCESS_KEY", "")
            if not secret_key:
                raise Ec2Error(
                    "partial credentials in the environment: AWS_ACCESS_KEY_ID is set, AWS_SECRET_ACCESS_KEY is not"
                )
            token = env.get("AWS_SECURITY_TOKEN") or env.get("AWS_SESSION_TOKEN") or None
            return Credentials(access_key, secret_key, token, None, "environment")
        if env.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
            raise NeedsBotocore("web identity")
        for key in DELEGATING_KEYS:
            if key in profile.settings:
                raise NeedsBotocore(f"{key} in profile {profile.name}")
        static = _static_keys(profile.in_credentials, f"profile {profile.name} ({profile.credentials_shown})")
        if static is None:
            static = _static_keys(profile.in_config, f"profile {profile.name} ({profile.config_shown})")
        if static is not None:
            return static
        if "AWS_CREDENTIAL_FILE" in env:
            raise NeedsBotocore("AWS_CREDENTIAL_FILE (EC2 API tools credentials)")
        self._check_boto_config()
        if "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" in env or "AWS_CONTAINER_CREDENTIALS_FULL_URI" in env:
            raise NeedsBotocore("container credentials")
        if env.get("AWS_EC2_METADATA_DISABLED", "false").lower() == "true":
            return None
        imds = self._imds_settings(profile.settings)
        if proxied(env, imds.scheme, imds.host, imds.port):
            raise NeedsBotocore("an HTTP proxy for instance metadata")
        return imds

    def _profile(self) -> _Profile:
        if self._profile_memo is None:
            self._profile_memo = self._load_profile()
        return self._profile_memo

    def _load_profile(self) -> _Profile:
        env = self._env
        explicit = next((var for var in ("AWS_DEFAULT_PROFILE", "AWS_PROFILE") if var in env), None)
        name = env[explicit] if explicit is not None else "default"
        credentials_shown = env.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")
        config_shown = env.get("AWS_CONFIG_FILE", "~/.aws/config")
        credentials = _read_ini(self._path(credentials_shown))
        config_profiles = _profiles_of_config(_read_ini(self._path(config_shown)))
        if explicit is not None and name not in credentials and name not in config_profiles:
            raise ConfigError(f"The config profile ({name}) could not be found; fix {explicit} or {config_shown}")
        return _Profile(
            name=name,
            in_credentials=credentials.get(name, {}),
            in_config=config_profiles.get(name, {}),
            credentials_shown=credentials_shown,
            config_shown=config_shown,
        )

    def _path(self, value: str) -> Path:
        value = _VAR.sub(lambda m: self._env.get(m.group(1) or m.group(2), m.group(0)), value)
        if value == "~" or value.startswith("~/"):
            return self._home / value[2:]
        return Path(os.path.expanduser(value))

    def _check_boto_config(self) -> None:
        candidates = [self._env["BOTO_CONFIG"]] if "BOTO_CONFIG" in self._env else ["/etc/boto.cfg", "~/.boto"]
        for shown in candidates:
            section = _read_ini(self._path(shown)).get("Credentials", {})
            if "aws_access_key_id" in section:
                raise NeedsBotocore(f"boto config file {shown}")

    def _imds_settings(self, settings: Section) -> _Imds:
        def setting(var: str, key: str) -> tuple[str, str] | None:
            if var in self._env:
                return var, self._env[var]
            value = settings.get(key)
            return (f"{key} in profile", value) if isinstance(value, str) else None

        timeout = 1.0
        if (found := setting("AWS_METADATA_SERVICE_TIMEOUT", "metadata_service_timeout")) is not None:
            timeout = _number(found, whole=False)
        attempts = 1
        if (found := setting("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "metadata_service_num_attempts")) is not None:
            attempts = int(_number(found, whole=True))
        v1 = setting("AWS_EC2_METADATA_V1_DISABLED", "ec2_metadata_v1_disabled")
        v1_disabled = v1 is not None and v1[1].lower() == "true"

        mode = "ipv4"
        found = setting("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "ec2_metadata_service_endpoint_mode")
        if found is not None:
            mode = found[1].lower()
            if mode not in ("ipv4", "ipv6"):
                raise ConfigError(f"{found[0]} must be IPv4 or IPv6, not {found[1]!r}")
        elif (found := setting("AWS_IMDS_USE_IPV6", "imds_use_ipv6")) is not None and found[1].lower() == "true":
            mode = "ipv6"
        endpoint = setting("AWS_EC2_METADATA_SERVICE_ENDPOINT", "ec2_metadata_service_endpoint")
        source, url = endpoint if endpoint is not None else ("", IMDS_URL_IPV6 if mode == "ipv6" else IMDS_URL_IPV4)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{source or 'the metadata endpoint'} is not an http(s) URL: {url!r}")
        prefix = parts.path if parts.path.endswith("/") else parts.path + "/"
        return _Imds(parts.scheme, parts.hostname, port, prefix, timeout, attempts, v1_disabled)


@dataclass(frozen=True)
class _Profile:
    name: str
    in_credentials: Section
    in_config: Section
    credentials_shown: str
    config_shown: str

    @property
    def settings(self) -> Section:
        # botocore lays the credentials file over the config file when it looks a profile up.
        return {**self.in_config, **self.in_credentials}


def _static_keys(section: Section, source: str) -> Credentials | None:
    if "aws_access_key_id" not in section:
        return None
    access_key = section["aws_access_key_id"]
    secret_key = section.get("aws_secret_access_key")
    if not isinstance(secret_key, str):
        raise Ec2Error(f"partial credentials in {source}: aws_access_key_id without aws_secret_access_key")
    token = section.get("aws_security_token", section.get("aws_session_token"))
    if not isinstance(access_key, str) or not isinstance(token, str | None):
        raise Ec2Error(f"AWS credentials in {source} are written as a nested block, not as plain values")
    return Credentials(access_key, secret_key, token or None, None, source)


def _read_ini(path: Path) -> dict[str, Section]:
    """Sections as botocore sees them: a missing or unreadable file is empty, a broken one is an error."""
    try:
        if not path.is_file():
            return {}
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    except UnicodeDecodeError:
        raise ConfigError(f"cannot parse {path}: not UTF-8 text") from None
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        # configparser quotes the offending line, which may hold a secret key: give the line number only.
        raise ConfigError(f"cannot parse {path}{_line_of(exc)}: not a valid INI file") from None
    sections: dict[str, Section] = {}
    for name in parser.sections():
        section: Section = {}
        for option in parser.options(name):
            value = parser.get(name, option)
            if value.startswith("\n"):
                try:
                    section[option] = _nested(value)
                except ValueError:
                    raise ConfigError(f"cannot parse {path}: bad nested block under {option} in [{name}]") from None
            else:
                section[option] = value
        sections[name] = section
    return sections


def _line_of(exc: configparser.Error) -> str:
    lineno = getattr(exc, "lineno", None)
    if lineno is None and isinstance(exc, configparser.ParsingError) and exc.errors:
        lineno = exc.errors[0][0]
    return f" (line {lineno})" if isinstance(lineno, int) else ""


def _nested(value: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for line in value.splitlines():
        if line.strip():
            key, rest = line.strip().split("=", 1)
            parsed[key.strip()] = rest.strip()
    return parsed


def _profiles_of_config(sections: dict[str, Section]) -> dict[str, Section]:
    profiles: dict[str, Section] = {}
    # File order matters: of [default] and [profile default], botocore keeps whichever comes last.
    for name, section in sections.items():
        if name.startswith("profile"):
            try:
                parts = shlex.split(name)
            except ValueError:
                continue
            if len(parts) == 2:
                profiles[parts[1]] = section
        elif name == "default":
            profiles["default"] = section
    return profiles


def _number(found: tuple[str, str], *, whole: bool) -> float:
    source, raw = found
    try:
        value = float(int(raw)) if whole else float(raw)
    except ValueError:
        value = float("nan")
    if whole and not value >= 1:
        raise ConfigError(f"{source} must be a whole number of at least 1, not {raw!r}")
    if not value > 0:  # also rejects nan
        raise ConfigError(f"{source} must be a positive number of seconds, not {raw!r}")
    return value


def _fetch_instance_role(imds: _Imds) -> Credentials:
    token = _metadata_token(imds)
    if token is None and imds.v1_disabled:
        raise Ec2Error(
            f"no AWS credentials: instance metadata at {imds.url} gave no IMDSv2 token"
            " and IMDSv1 is disabled (AWS_EC2_METADATA_V1_DISABLED)"
        )
    status, body = _metadata_get(imds, ROLE_PATH, token)
    role = next((line.strip() for line in body.decode("utf-8", "replace").splitlines() if line.strip()), "")
    if status == 404 or (status == 200 and not role):
        raise Ec2Error(f"no AWS credentials: this instance has no IAM role; {_HINT}")
    if status != 200:
        raise Ec2Error(f"no AWS credentials: instance metadata answered HTTP {status} for the IAM role name; {_HINT}")
    if not _ROLE_NAME.fullmatch(role):  # it goes into the next request line verbatim
        raise Ec2Error("instance metadata returned a malformed IAM role name")
    status, body = _metadata_get(imds, ROLE_PATH + role, token)
    if status != 200:
        raise Ec2Error(f"instance metadata answered HTTP {status} for the credentials of instance role {role}")
    return _role_credentials(role, body)


def _role_credentials(role: str, body: bytes) -> Credentials:
    unusable = f"instance metadata returned unusable credentials for instance role {role}"
    try:
        doc = json.loads(body)
    except ValueError:
        raise Ec2Error(f"{unusable}: not JSON") from None
    if not isinstance(doc, dict):
        raise Ec2Error(f"{unusable}: not a JSON object")
    missing = [key for key in ("AccessKeyId", "SecretAccessKey", "Token", "Expiration") if key not in doc]
    if missing:
        code = doc.get("Code")
        detail = f" (Code {code})" if isinstance(code, str) and code.isprintable() and len(code) < 80 else ""
        raise Ec2Error(f"{unusable}: no {', '.join(missing)}{detail}")
    access_key, secret_key, token, expiration = (
        doc[key] for key in ("AccessKeyId", "SecretAccessKey", "Token", "Expiration")
    )
    if not all(isinstance(value, str) and value for value in (access_key, secret_key, token, expiration)):
        raise Ec2Error(f"{unusable}: a credential field is empty or not a string")
    try:
        expires = datetime.fromisoformat(expiration)
    except ValueError:
        raise Ec2Error(f"{unusable}: Expiration is not an ISO 8601 time") from None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return Credentials(access_key, secret_key, token, expires.timestamp(), f"instance role {role}")


def _metadata_token(imds: _Imds) -> str | None:
    """The IMDSv2 token, or None where botocore would fall back to IMDSv1."""
    reached = False
    for _ in range(imds.attempts):
        try:
            status, body = _send(imds, "PUT", TOKEN_PATH, {"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL})
        except _Unreachable:
            continue
        except _NoAnswer:
            return None
        reached = True
        if status == 200:
            return body.decode("ascii", "replace").strip() or None
        if status in (403, 404, 405):
            return None
        if status == 400:
            raise Ec2Error(f"instance metadata at {imds.url} rejected the IMDSv2 token request (HTTP 400)")
    if not reached:
        raise Ec2Error(f"no AWS credentials: no instance metadata service at {imds.url}; {_HINT}")
    return None


def _metadata_get(imds: _Imds, path: str, token: str | None) -> tuple[int, bytes]:
    headers = {} if token is None else {"X-aws-ec2-metadata-token": token}
    last: tuple[int, bytes] | None = None
    for _ in range(imds.attempts):
        try:
            last = _send(imds, "GET", path, headers)
        except (_Unreachable, _NoAnswer):
            continue
        status, body = last
        if status == 200 and body.strip():
            break
    if last is None:
        raise Ec2Error(f"no AWS credentials: instance metadata at {imds.url} did not answer; {_HINT}")
    return last


def _send(imds: _Imds, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    kind = http.client.HTTPSConnection if imds.scheme == "https" else http.client.HTTPConnection
    # An explicit port: left to guess it, http.client would read an IPv6 host's last group as the port.
    conn = kind(imds.host, imds.port or kind.default_port, timeout=imds.timeout)
    try:
        try:
            conn.connect()
        except OSError as exc:
            raise _Unreachable from exc
        try:
            conn.request(method, imds.prefix + path, headers=headers)
            response = conn.getresponse()
            return response.status, response.read(MAX_METADATA_BYTES)
        except (OSError, http.client.HTTPException) as exc:
            raise _NoAnswer from exc
    finally:
        conn.close()
