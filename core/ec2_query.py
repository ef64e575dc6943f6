"""The EC2 operations over EC2's Query API with the standard library only.

Why not boto3 here: a node command spends most of its life starting up, and importing botocore
and loading its EC2 service model costs ~0.2 s before the first request; this client costs a few
ms. It sends the same form-encoded requests the aws CLI sends, signs them with SigV4, and reads
the XML answers. What it does not implement (proxies, FIPS endpoints, assumed roles, SSO, …) is
detected up front by `tagjoin.core.aws.connect`, which then uses boto3 instead.
"""

from __future__ import annotations

import http.client
import re
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlencode, urlsplit

from core import sigv4
from tagjoin.core.aws.ec2_api import (
    CREATE_TAGS,
    DELETE_TAGS,
    DESCRIBE,
    DESCRIBE_TAGS,
    ApiFault,
    Filter,
    InstancePage,
    TagEntry,
    TagPage,
    TransportFault,
)
from tagjoin.core.aws_credentials import Credentials
from tagjoin.core.errors import ConfigError, Ec2Error
from tagjoin.core.model import Instance
from tagjoin.core.text import one_line

API_VERSION = "2016-11-15"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
USER_AGENT = "consul-tagjoin (ec2-query)"
# botocore's check, so a typo fails the same way whichever client is used.
_REGION = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?$")
# botocore's partition patterns; regions of other partitions (ISO, sovereign clouds) go to boto3.
_COMMERCIAL = re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+$")
_CHINA = re.compile(r"^cn-\w+-\d+$")
_GOVCLOUD = re.compile(r"^us-gov-\w+-\d+$")
# A kept-alive connection the server has since closed fails like this before any answer arrives.
# Over TLS the same shows up as an EOF or a close notification.
_STALE = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


def default_endpoint(region: str) -> str | None:
    """EC2's regional endpoint in the commercial, China and GovCloud partitions; None for any other."""
    if not _REGION.match(region):
        raise ConfigError(f"AWS region {region!r} is not a valid region name; check AWS_REGION")
    if _CHINA.match(region):
        return f"https://ec2.{region}.amazonaws.com.cn"
    if _COMMERCIAL.match(region) or _GOVCLOUD.match(region):
        return f"https://ec2.{region}.amazonaws.com"
    return None


class QueryEc2:
    """`Ec2Api` as signed POSTs to one endpoint, over one kept-alive connection."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: Callable[[], Credentials],
        *,
        ca_bundle: str | None = None,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"bad EC2 endpoint {endpoint!r}: expected http(s)://host[:port]; check AWS_ENDPOINT_URL")
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"bad EC2 endpoint {endpoint!r}: invalid port; check AWS_ENDPOINT_URL") from None
        self.endpoint = endpoint
        self.region = region
        self._credentials = credentials
        self._utcnow = utcnow
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = port or (443 if self._https else 80)
        self._path = unquote(parts.path) or "/"  # signed decoded, sent encoded
        self._target = quote(self._path, safe="/~")
        default_port = port is None or port == (443 if self._https else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self._ca_bundle = ca_bundle
        self._conn: http.client.HTTPConnection | None = None
        self._tls: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    # -- the four operations -----------------------------------------------------------------

    def describe_instances(
        self, filters: Sequence[Filter], instance_ids: Sequence[str] = (), next_token: str | None = None
    ) -> InstancePage:
        params = _filter_params(filters)
        params.extend((f"InstanceId.{n}", i) for n, i in enumerate(instance_ids, 1))
        if next_token:
            params.append(("NextToken", next_token))
        root = self._send(DESCRIBE, params)
        found = [
            _instance(item)
            for reservation in _items(root.find("{*}reservationSet"))
            for item in _items(reservation.find("{*}instancesSet"))
        ]
        return InstancePage(found, _text(root, "nextToken") or None)

    def describe_tags(self, filters: Sequence[Filter], next_token: str | None = None) -> TagPage:
        params = _filter_params(filters)
        if next_token:
            params.append(("NextToken", next_token))
        root = self._send(DESCRIBE_TAGS, params)
        tags = [
            TagEntry(_text(item, "resourceId"), _text(item, "key"), _text(item, "value"))
            for item in _items(root.find("{*}tagSet"))
        ]
        return TagPage([t for t in tags if t.resource_id and t.key], _text(root, "nextToken") or None)

    def create_tags(self, instance_ids: Sequence[str], key: str, value: str) -> None:
        self._send(CREATE_TAGS, _tag_params(instance_ids, key, value))

    def delete_tags(self, instance_ids: Sequence[str], key: str, value: str) -> None:
        self._send(DELETE_TAGS, _tag_params(instance_ids, key, value))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- transport -----------------------------------------------------------------------------

    def _send(self, action: str, params: list[tuple[str, str]]) -> ET.Element:
        body = urlencode([("Action", action), ("Version", API_VERSION), *params], quote_via=quote, safe="-_.~")
        status, payload = self._post(action, body.encode())
        try:
            root = ET.fromstring(payload)
        except ET.ParseError:
            root = None
        if 200 <= status < 300 and root is not None:
            return root
        if root is not None and (code := _text(root, ".//{*}Code")):
            raise ApiFault(code, status, _text(root, ".//{*}Message"))
        snippet = one_line(payload.decode("utf-8", "replace"), limit=80)
        if 200 <= status < 300:
            # A 2xx that is not XML is a truncated or mangled answer; asking again is what helps.
            raise TransportFault(f"EC2 {action}: unreadable answer (HTTP {status}): {snippet!r}")
        raise ApiFault(f"HTTP{status}", status, snippet)

    def _post(self, action: str, body: bytes) -> tuple[int, bytes]:
        creds = self._credentials()
        when = self._utcnow()
        headers = {
            "host": self._host_header,
            "content-type": "application/x-www-form-urlencoded; charset=utf-8",
            "x-amz-date": when.strftime("%Y%m%dT%H%M%SZ"),
        }
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        headers["authorization"] = sigv4.sign(
            method="POST",
            path=self._path,
            headers=headers,
            body=body,
            access_key=creds.access_key,
            secret_key=creds.secret_key,
            region=self.region,
            service="ec2",
            when=when,
        )
        headers["user-agent"] = USER_AGENT
        # One connection, so one request at a time: the console polls and acts from several threads.
        with self._lock:
            return self._post_signed(action, body, headers)

    def _post_signed(self, action: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        reused = self._conn is not None
        try:
            try:
                return self._exchange(body, headers)
            except _STALE:
                if not reused:
                    raise
                # The server closed the kept-alive connection while we were idle: ask once more on a
                # new one. All four operations are idempotent, so a request that did arrive may repeat.
                return self._exchange(body, headers)
        except ssl.SSLCertVerificationError as exc:
            raise Ec2Error(f"EC2 {action}: TLS failure: {one_line(str(exc))}; check AWS_ENDPOINT_URL") from None
        except http.client.HTTPException as exc:
            reason = one_line(f"not a usable HTTP answer ({type(exc).__name__}: {exc})")
            raise TransportFault(f"EC2 {action}: {self._host_header}: {reason}") from None
        except OSError as exc:
            reason = one_line(str(exc) or type(exc).__name__)
            raise TransportFault(f"EC2 {action}: {self._host_header}: {reason}") from None

    def _exchange(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        conn = self._connection()
        try:
            conn.request("POST", self._target, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, payload

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            conn: http.client.HTTPConnection
            if self._https:
                context = self._tls_context()
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=CONNECT_TIMEOUT, context=context)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=CONNECT_TIMEOUT)
            conn.connect()
            if conn.sock is not None:
                conn.sock.settimeout(READ_TIMEOUT)
            self._conn = conn
        return self._conn

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            # botocore's trust store (certifi's bundle) rather than the OS one, so a node that works
            # with boto3 trusts the same endpoints; AWS_CA_BUNDLE replaces it, as for botocore.
            import certifi

            cafile = self._ca_bundle or certifi.where()
            try:
                self._tls = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as exc:
                raise Ec2Error(
                    f"cannot load the CA bundle {cafile}: {one_line(str(exc))}; check AWS_CA_BUNDLE"
                ) from None
        return self._tls


def _filter_params(filters: Iterable[Filter]) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    for n, f in enumerate(filters, 1):
        params.append((f"Filter.{n}.Name", f["Name"]))
        params.extend((f"Filter.{n}.Value.{m}", v) for m, v in enumerate(f["Values"], 1))
    return params


def _tag_params(instance_ids: Sequence[str], key: str, value: str) -> list[tuple[str, str]]:
    params = [(f"ResourceId.{n}", i) for n, i in enumerate(instance_ids, 1)]
    params += [("Tag.1.Key", key), ("Tag.1.Value", value)]
    return params


def _items(parent: ET.Element | None) -> list[ET.Element]:
    return [] if parent is None else parent.findall("{*}item")


def _text(element: ET.Element, path: str) -> str:
    found = element.find(path if path.startswith(".") else "{*}" + path)
    return (found.text or "") if found is not None else ""


def _instance(item: ET.Element) -> Instance:
    state = item.find("{*}instanceState")
    return Instance(
        instance_id=_text(item, "instanceId"),
        private_ip=_text(item, "privateIpAddress") or None,
        public_ip=_text(item, "ipAddress") or None,
        state=_text(state, "name") if state is not None else "unknown",
        tags={_text(t, "key"): _text(t, "value") for t in _items(item.find("{*}tagSet")) if _text(t, "key")},
    )
