"""Every parser of outside input, fuzzed: it returns a valid value or raises our own one-line error.

What the inputs are: go-discover strings, durations, `consul watch` payloads and CONSUL_INDEX,
settings from the environment, Consul's JSON answers of any shape (real httpx client, httpx's
own transport standing in for the network), EC2's answers of any status and body (real botocore
client and parser, its `before-send` hook standing in for the network), and the masking of
secrets in messages.

Example counts are kept modest so the default test loop stays fast; each test says its count.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

import botocore.config
import botocore.session
import httpx
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagjoin.core.argtypes import ANTI_ENTROPY_RANGE, INTERVAL_RANGE, MAX_DURATION_S, duration, duration_between
from tagjoin.core.aws.boto_ec2 import BotoEc2
from tagjoin.core.aws.ec2_api import ApiFault, InstancePage, TagPage, TransportFault
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.consul.settings import ConsulSettings, build_http_client, consul_settings_from_env
from tagjoin.core.discover import DiscoverSpec, parse_discover
from tagjoin.core.errors import ConfigError, ConsulError, Ec2Error, TagjoinError
from tagjoin.core.settings import AwsSettings, Scope, aws_from_env, scope_from_env
from tagjoin.core.text import REDACTED, one_line
from tagjoin.core.watch_payload import MAX_DEPTH, PayloadError, WatchPayload, parse_index, parse_payload
from tests.fake_agent import CATALOG_NODES, CHECKS, MEMBERS, RAFT_CONFIGURATION, SELF_SERVER
from tests.moto_world import FakeClock


def fuzz(examples: int) -> settings:
    """`examples` runs, no per-example deadline (a 100,000-deep payload takes a while to build)."""
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=24,
)


# -- go-discover strings ----------------------------------------------------------------------

_DISCOVER_KEYS = ("provider", "tag_key", "tag_value", "region", "addr_type", "endpoint", "service", "bogus")
_discover_values = st.sampled_from(
    ["aws", "azure", "consul-leader", "eu-west-1", "garbage", "private_v4", "public_v4", "http://127.0.0.1:1", ""]
) | st.text(max_size=12)


@st.composite
def discover_strings(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(st.text(max_size=60))
    parts = []
    for key in draw(st.lists(st.sampled_from(_DISCOVER_KEYS), max_size=6)):
        value = draw(_discover_values)
        if draw(st.booleans()):
            value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + draw(st.sampled_from(['"', ""]))
        parts.append(f"{key}={value}")
    return draw(st.sampled_from([" ", "  ", "\t"])).join(parts)


@fuzz(300)
@given(discover_strings())
def test_discover_strings(text: str) -> None:
    try:
        spec = parse_discover(text)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(spec, DiscoverSpec)
    # What the command does next with it: settings, which check what EC2 and botocore would refuse.
    try:
        aws_from_env({}, region=spec.region, endpoint_url=spec.endpoint)
        scope_from_env({}, tag_key=spec.tag_key)
    except ConfigError as exc:
        assert "\n" not in str(exc)


# -- durations --------------------------------------------------------------------------------

_duration_texts = (
    st.text(max_size=20)
    | st.from_regex(r"\A-?[0-9]{0,6}(\.[0-9]{0,4})?([eE][-+]?[0-9]{1,4})?(ns|us|µs|ms|s|m|h|d)?\Z")
    | st.sampled_from(["nan", "inf", "-inf", "1e300", "1e-9", "1m30s", "1h1m", "0", "0s", "1_000", "\uff11s"])
)


@fuzz(300)
@given(_duration_texts)
def test_durations(text: str) -> None:
    for parse, low, high in (
        (duration, 0.0, MAX_DURATION_S),
        (duration_between(*INTERVAL_RANGE), *INTERVAL_RANGE),
        (duration_between(*ANTI_ENTROPY_RANGE), *ANTI_ENTROPY_RANGE),
    ):
        try:
            value = parse(text)
        except argparse.ArgumentTypeError as exc:
            assert "\n" not in str(exc)
            continue
        assert math.isfinite(value) and low <= value <= high and value > 0


# -- consul watch payloads and CONSUL_INDEX ---------------------------------------------------

_watch_items = st.fixed_dictionaries(
    {},
    optional={
        "Node": st.text(max_size=8) | json_values,
        "Address": st.text(max_size=8),
        "CheckID": st.sampled_from(["serfHealth", "x"]) | json_values,
        "Status": st.sampled_from(["critical", "passing"]) | json_values,
    },
)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


_payloads = (
    st.lists(_watch_items, max_size=5).map(json.dumps)
    | json_values.map(json.dumps)
    | st.binary(max_size=64)
    | st.text(max_size=64)
    | st.integers(MAX_DEPTH - 2, 100_000).map(_nested)
    | st.integers(MAX_DEPTH - 2, 100_000).map(lambda d: "[" * d)
)


@fuzz(300)
@given(_payloads)
def test_watch_payloads(raw: str | bytes) -> None:
    try:
        payload = parse_payload(raw)
    except PayloadError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(payload, WatchPayload) and payload.count >= 0


@fuzz(200)
@given(st.none() | st.text(max_size=30) | st.integers(-(2**70), 2**70).map(str) | st.just("9" * 5000))
def test_consul_index(raw: str | None) -> None:
    index = parse_index(raw)
    assert index is None or 0 <= index < 2**64


# -- settings from the environment ------------------------------------------------------------

_env_text = st.text(max_size=140) | st.sampled_from(["", " ", "aws:x", "consul-leader", "consul-cluster", "c1"])


@fuzz(300)
@given(
    tag_key=st.none() | _env_text,
    cluster=st.none() | _env_text,
    env=st.dictionaries(
        st.sampled_from(
            [
                "TAGJOIN_TAG_KEY",
                "TAGJOIN_CLUSTER",
                "TAGJOIN_CLUSTER_TAG_KEY",
                "AWS_REGION",
                "AWS_ENDPOINT_URL",
                "TAGJOIN_INSTANCE_ID",
                "TAGJOIN_EC2_MAX_ATTEMPTS",
            ]
        ),
        _env_text | st.sampled_from(["eu-west-1", "http://127.0.0.1:5000", "i-0123456789abcdef0", "4", "0", "99"]),
    ),
)
def test_project_and_aws_settings(tag_key: str | None, cluster: str | None, env: dict[str, str]) -> None:
    try:
        scope = scope_from_env(env, tag_key=tag_key, cluster=cluster)
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(scope, Scope) and 1 <= len(scope.tag_key) <= 128
        assert all(ch.isprintable() for ch in scope.tag_key)
    try:
        aws = aws_from_env(env)
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(aws, AwsSettings)


@fuzz(300)
@given(
    env=st.dictionaries(
        st.sampled_from(["CONSUL_HTTP_ADDR", "CONSUL_HTTP_SSL", "CONSUL_HTTP_SSL_VERIFY", "CONSUL_TLS_SERVER_NAME"]),
        st.text(max_size=40) | st.sampled_from(["127.0.0.1:8500", "https://[::1]:8501/p", "unix:///x", "true"]),
    ),
    token=st.none() | st.text(max_size=30).map(lambda t: "s3cr3t-" + t),
)
def test_consul_settings_and_the_first_request(env: dict[str, str], token: str | None) -> None:
    if token is not None:
        env["CONSUL_HTTP_TOKEN"] = token
    try:
        settings_ = consul_settings_from_env(env)
    except ConfigError as exc:
        assert "\n" not in str(exc) and "s3cr3t-" not in str(exc)
        return
    # A setting we accepted must also be one httpx can put on the wire: no refusal at the first call.
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json="10.0.1.10:8300"))
    with build_http_client(settings_, transport) as client:
        client.build_request("GET", "/v1/status/leader")


# -- Consul's answers of any shape ------------------------------------------------------------


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*prefix, i))


@st.composite
def mutated(draw: st.DrawFn, doc: Any) -> Any:
    """`doc` with a few values replaced by JSON of another shape, or removed."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(doc))))
        if not path:
            return draw(json_values)
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return doc


_ENDPOINTS: dict[str, tuple[Any, Callable[[ConsulClient], object]]] = {
    "leader": ("10.0.1.10:8300", lambda c: c.leader()),
    "peers": (["10.0.1.10:8300"], lambda c: c.peers()),
    "agent_self": (SELF_SERVER, lambda c: c.agent_self()),
    "members": (MEMBERS, lambda c: c.members()),
    "catalog_nodes": (CATALOG_NODES, lambda c: c.catalog_nodes(index=5, wait=1)),
    "health_state": (CHECKS, lambda c: c.health_state("critical", index=5, wait=1)),
    "health_node": (CHECKS, lambda c: c.health_node("ip-10-0-1-10")),
    "raft": (RAFT_CONFIGURATION, lambda c: c.raft_configuration()),
    "node_services": (
        {"Services": {"a": {"ID": "a", "Service": "web", "Port": 80, "Tags": []}}},
        lambda c: c.node_services("n"),
    ),
    "autopilot_state": ({"Healthy": True, "FailureTolerance": 1, "Servers": {}}, lambda c: c.autopilot_state()),
    "autopilot_health": ({"Healthy": True, "FailureTolerance": 1, "Servers": []}, lambda c: c.autopilot_health()),
}


@st.composite
def consul_answers(draw: st.DrawFn) -> tuple[str, int, bytes, dict[str, str]]:
    name = draw(st.sampled_from(sorted(_ENDPOINTS)))
    valid = _ENDPOINTS[name][0]
    kind = draw(st.sampled_from(["mutated", "any-json", "bytes", "deep"]))
    if kind == "mutated":
        body = json.dumps(draw(mutated(valid))).encode()
    elif kind == "any-json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=80))
    else:
        body = _nested(draw(st.integers(900, 200_000))).encode()
    status = draw(st.sampled_from([200, 200, 200, 403, 404, 429, 500, 503]) | st.integers(100, 599))
    headers = {"X-Consul-Index": draw(st.sampled_from(["7", "0", "-1", "x", "99999999999999999999999", ""]))}
    if draw(st.booleans()):
        headers["X-Consul-LastContact"] = draw(st.text(max_size=6).filter(lambda t: t.isascii()))
    return name, status, body, headers


@fuzz(300)
@given(consul_answers())
def test_consul_answers_of_any_shape(answer: tuple[str, int, bytes, dict[str, str]]) -> None:
    name, status, body, headers = answer
    clean = {k: v for k, v in headers.items() if v.isprintable()}
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body, headers=clean))
    settings_ = ConsulSettings(address="10.0.1.10:8500", token="8c6f-canary-token", token_source="CONSUL_HTTP_TOKEN")
    with ConsulClient(settings_, transport) as client:
        try:
            _ENDPOINTS[name][1](client)
        except ConsulError as exc:
            assert "\n" not in str(exc) and "8c6f-canary-token" not in str(exc)


# -- EC2's answers of any status and body -----------------------------------------------------

_EC2_NAMES = [
    "DescribeInstancesResponse",
    "DescribeTagsResponse",
    "CreateTagsResponse",
    "requestId",
    "reservationSet",
    "instancesSet",
    "item",
    "instanceId",
    "instanceState",
    "name",
    "privateIpAddress",
    "ipAddress",
    "tagSet",
    "key",
    "value",
    "resourceId",
    "nextToken",
    "return",
    "Response",
    "Errors",
    "Error",
    "Code",
    "Message",
    "RequestID",
]
_xml_text = st.sampled_from(
    ["i-0123456789abcdef0", "running", "10.0.1.10", "consul-leader", "3", "true", ""]
) | st.text(st.characters(blacklist_categories=["Cs"]), max_size=10)


def _render(node: Any) -> str:
    if isinstance(node, str):
        return escape(node)
    name, children = node
    return f"<{name}>" + "".join(_render(c) for c in children) + f"</{name}>"


_xml_trees = st.recursive(
    _xml_text,
    lambda inner: st.tuples(st.sampled_from(_EC2_NAMES), st.lists(inner, max_size=3)),
    max_leaves=16,
)
_INSTANCES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r1</requestId>'
    "<reservationSet><item><reservationId>r-1</reservationId><instancesSet>{items}</instancesSet></item>"
    "</reservationSet>{next}</DescribeInstancesResponse>"
)


@st.composite
def ec2_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["tree", "instances", "bytes", "html"]))
    if kind == "bytes":
        return draw(st.binary(max_size=120))
    if kind == "html":
        return b"<html><body><h1>502 Bad Gateway</h1><p>" + draw(st.binary(max_size=20)) + b"</body></html>"
    if kind == "tree":
        root = draw(st.sampled_from(_EC2_NAMES))
        return f'<?xml version="1.0"?><{root}>{_render(draw(_xml_trees))}</{root}>'.encode()
    items = "".join(f"<item>{_render(draw(_xml_trees))}</item>" for _ in range(draw(st.integers(0, 3))))
    token = draw(st.sampled_from(["", "<nextToken>t</nextToken>", "<nextToken></nextToken>"]))
    return _INSTANCES.format(items=items, next=token).encode()


class _Raw:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._data


@pytest.fixture(scope="module")
def ec2_client() -> Any:
    session = botocore.session.get_session()
    return session.create_client(
        "ec2",
        region_name="eu-west-1",
        endpoint_url="http://127.0.0.1:9",  # never reached: the before-send hook answers
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )


@fuzz(300)
@given(
    status=st.sampled_from([200, 200, 200, 400, 403, 429, 500, 502, 503]) | st.integers(100, 599),
    body=ec2_bodies(),
    action=st.sampled_from(["describe_instances", "describe_tags", "create_tags"]),
)
def test_ec2_answers_of_any_status_and_body(ec2_client: Any, status: int, body: bytes, action: str) -> None:
    def answer(request: Any, **_kwargs: Any) -> AWSResponse:
        headers = HTTPHeaders()
        headers["Content-Type"] = "text/xml;charset=UTF-8"
        return AWSResponse(request.url, status, headers, _Raw(body))

    ec2_client.meta.events.register("before-send.ec2", answer)
    try:
        api = BotoEc2(ec2_client)
        try:
            if action == "describe_instances":
                assert isinstance(api.describe_instances([]), InstancePage)
            elif action == "describe_tags":
                assert isinstance(api.describe_tags([]), TagPage)
            else:
                api.create_tags(["i-0123456789abcdef0"], "k", "v")
        except (ApiFault, TransportFault, Ec2Error) as exc:
            assert "\n" not in str(exc) or isinstance(exc, ApiFault)  # ApiFault's text is made one line by the store
        # And through the store, as every command uses it: our own error or a value.
        store = TagStore(api, Scope(cluster="c1"), clock=FakeClock(), rng=random.Random(0), max_attempts=2)
        try:
            store.tagged_instances()
        except TagjoinError as exc:
            assert "\n" not in str(exc)
    finally:
        ec2_client.meta.events.unregister("before-send.ec2", answer)


# -- masking of secrets -----------------------------------------------------------------------

_secrets = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=8, max_size=40).filter(
    lambda s: s.strip() and s not in REDACTED and "<" not in s
)


@st.composite
def carrying(draw: st.DrawFn) -> tuple[str, str]:
    secret = draw(_secrets)
    if draw(st.booleans()):
        secret = secret[:4] + " " * draw(st.integers(2, 5)) + secret[4:]  # a run of spaces inside
    forms = [
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        " ".join(secret.split()),
        repr(secret.encode())[2:-1],
    ]
    around = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from(["\n", "\t"]), max_size=30)
    text = draw(around) + draw(st.sampled_from(forms)) + draw(around)
    return secret, text


@fuzz(300)
@given(carrying())
def test_a_secret_never_survives_one_line(case: tuple[str, str]) -> None:
    secret, text = case
    line = one_line(text, limit=10_000, secret=secret)
    assert secret not in line and " ".join(secret.split()) not in line
    assert "\n" not in line
