"""Bad inputs, as a new user would make them, against the command line run as a process.

Each case runs `tagjoin` against a live simulated cluster (`tagjoin sim serve`'s machinery, with
no keepers running, so only the case under test could move a tag) or against a stub agent or a
stub EC2 endpoint on loopback. Every case asserts the exit status, that stderr is one line with
no traceback, and that every tag of every instance is exactly as it was before.

Set TAGJOIN_CORPUS_TABLE=path to get the table of cases (case, exit status, first line of stderr).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from tagjoin.sim.live.live_cluster import LiveSim, start_live
from tests.fake_agent import SELF_SERVER, FakeAgent, Reply, closed_port, serve_tcp

ROOT = Path(__file__).resolve().parents[1]
KEY = "consul-leader"
TOKEN = "5f1c9e0a-corpus-canary"

Tags = dict[str, dict[str, str]]
ROWS: list[tuple[str, int, str]] = []


@dataclass
class Case:
    name: str
    args: list[str]
    code: int
    says: str  # a part of the one stderr line ("" for a case that succeeds silently)
    env: dict[str, str | None] = field(default_factory=dict)
    stdin: bytes = b""
    agent: str = "leader"  # leader: the live leader's agent; stub: a FakeAgent set up by `stub`
    stub: dict[str, Reply] = field(default_factory=dict)
    ec2_fault: tuple[str, int, str, int] | None = None  # (action, count, code, status) on the live endpoint
    ec2_stub: tuple[int, bytes] | None = None  # (status, body) from a stub EC2 endpoint instead


# -- the world ----------------------------------------------------------------------------------


@dataclass
class Live:
    sim: LiveSim
    leader_url: str
    ec2: Any

    def tags(self) -> Tags:
        pages = self.ec2.get_paginator("describe_instances").paginate()
        return {
            inst["InstanceId"]: {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
            for page in pages
            for res in page["Reservations"]
            for inst in res["Instances"]
        }

    def fault(self, path: str, method: str) -> None:
        req = urllib.request.Request(f"{self.sim.ec2_endpoint}/_fault{path}", data=b"", method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    sim = start_live(servers=3, clients=1, raft_multiplier=1, speed=4.0, handlers=False)
    try:
        deadline = time.monotonic() + 30
        leader = None
        while leader is None and time.monotonic() < deadline:
            leader = sim.driver.call(sim.scenario.cluster.leader)
            time.sleep(0.05)
        assert leader is not None, "no leader within 30 s"
        env = sim.environment()
        ec2 = boto3.client(
            "ec2",
            region_name=env["AWS_REGION"],
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        world = Live(sim, sim.agent_urls[leader], ec2)
        # The leader carries the tag before any case runs, so a case that went through would
        # find nothing to change, and a case that changed anything would show.
        done = _run(world, ["reconcile"], {}, b"", world.leader_url, world.sim.ec2_endpoint)
        assert done.returncode == 0 and "handoff" in done.stdout, done.stdout + done.stderr
        assert any(KEY in tags for tags in world.tags().values())
        yield world
    finally:
        sim.stop()
        _write_table()


def _write_table() -> None:
    target = os.environ.get("TAGJOIN_CORPUS_TABLE")
    if not target or not ROWS:
        return
    lines = ["| case | exit | first line of stderr |", "|---|---|---|"]
    lines += [
        "| " + " | ".join([name, str(code), "`" + line.replace("|", "\\|") + "`"]) + " |" for name, code, line in ROWS
    ]
    Path(target).write_text("\n".join(lines) + "\n")


def _run(
    world: Live, args: list[str], env: dict[str, str | None], stdin: bytes, consul: str, ec2: str
) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "HOME": str(ROOT / "tests"),  # no ~/.aws of the machine running the tests
        **world.sim.environment(),
        "CONSUL_HTTP_ADDR": consul,
        "AWS_ENDPOINT_URL": ec2,
        "TAGJOIN_EC2_MAX_ATTEMPTS": "2",
        "TAGJOIN_LOCK_FILE": str(ROOT / "tests" / ".corpus-handoff.lock"),
    }
    for name, value in env.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    done = subprocess.run(
        [sys.executable, "-m", "tagjoin.core.cli", *args],
        input=stdin,
        capture_output=True,
        env=base,
        cwd=ROOT,
        timeout=120,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    )


# -- stubs --------------------------------------------------------------------------------------


class _Ec2Stub(ThreadingHTTPServer):
    daemon_threads = True
    answer: tuple[int, bytes] = (500, b"")


class _Ec2Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Ec2Stub

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, body = self.server.answer
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if body.startswith(b"<html") else "text/xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def ec2_stub() -> Iterator[_Ec2Stub]:
    server = _Ec2Stub(("127.0.0.1", 0), _Ec2Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _ec2_error(code: str, message: str) -> bytes:
    return (
        f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        "<RequestID>0a1b2c3d-corpus</RequestID></Response>"
    ).encode()


_PAGE_FOR_EVER = (
    b'<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-1</requestId>'
    b"<reservationSet/><nextToken>same-token</nextToken></DescribeInstancesResponse>"
)
_HTML_502 = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"
)
_PORTAL = b"<html><body><form action='/login'>Sign in to the network</form></body></html>"


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- the cases ----------------------------------------------------------------------------------

TOKEN_FILE = ROOT / "tests" / ".corpus-token-two-lines"

CASES = [
    # tokens: refused by name of their source, never echoed
    Case("token with non-ASCII", ["reconcile"], 2, "non-ASCII character", {"CONSUL_HTTP_TOKEN": "tökén-" + TOKEN}),
    Case("token with CR/LF", ["reconcile"], 2, "contains a line break", {"CONSUL_HTTP_TOKEN": TOKEN + "\r\nx"}),
    Case("token with a control char", ["status"], 2, "control character", {"CONSUL_HTTP_TOKEN": "\x07" + TOKEN}),
    Case("token file of two lines", ["reconcile", "--token-file", str(TOKEN_FILE)], 2, "contains a line break"),
    Case("token file missing", ["reconcile", "--token-file", "/nonexistent/token"], 2, "cannot read the Consul token"),
    Case("--token with a tab", ["reconcile", "--token", TOKEN + "\tx"], 2, "control character (0x09)"),
    # durations
    Case("keep --interval nan", ["keep", "--interval", "nan"], 2, "'nan' is not a duration"),
    Case("keep --interval inf", ["keep", "--interval", "inf"], 2, "'inf' is not a duration"),
    Case("keep --interval 1e-9", ["keep", "--interval", "1e-9"], 2, "outside 100ms to 1h"),
    Case("keep --interval 1e300", ["keep", "--interval", "1e300"], 2, "is longer than a day"),
    Case("keep --interval 0", ["keep", "--interval", "0"], 2, "must be positive"),
    Case("keep --interval 2h", ["keep", "--interval", "2h"], 2, "outside 100ms to 1h"),
    Case("keep --interval 5x", ["keep", "--interval", "5x"], 2, "is not a duration"),
    Case("keep --anti-entropy nan", ["keep", "--anti-entropy", "nan"], 2, "is not a duration"),
    Case("keep --anti-entropy inf", ["keep", "--anti-entropy", "inf"], 2, "is not a duration"),
    Case("keep --anti-entropy -5s", ["keep", "--anti-entropy=-5s"], 2, "is not a duration"),
    Case("keep --anti-entropy 500ms", ["keep", "--anti-entropy", "500ms"], 2, "outside 1s to 24h"),
    # watch payloads: a line, then the pass from live state; exit 0 so consul watch keeps going
    Case("payload nested 100,000 deep", ["watch-handler"], 0, "nests deeper than 32", stdin=_deep(100_000).encode()),
    Case("payload unclosed 100,000 deep", ["watch-handler"], 0, "nests deeper", stdin=b"[" * 100_000),
    Case("payload of 50 MB", ["watch-handler"], 0, "larger than 16 MiB", stdin=b"[" + b"0," * (25 << 20) + b"0]"),
    Case("payload not UTF-8", ["watch-handler"], 0, "not UTF-8", stdin=b"\xff\xfe[]"),
    Case("payload of NUL bytes", ["watch-handler"], 0, "not JSON", stdin=b"\x00" * 64),
    Case("payload a JSON string", ["watch-handler"], 0, "JSON str", stdin=b'"nodes"'),
    Case("CONSUL_INDEX garbled", ["watch-handler"], 0, "", {"CONSUL_INDEX": "²³"}, stdin=b"[]"),
    # tag keys and the cluster name
    Case("--tag-key ''", ["targets", "--tag-key", ""], 2, "leader tag key (TAGJOIN_TAG_KEY or --tag-key) is empty"),
    Case(
        "--tag-key of 129 chars", ["targets", "--tag-key", "k" * 129], 2, "has 129 characters; EC2 allows at most 128"
    ),
    Case("--tag-key with a control char", ["reconcile", "--tag-key", "lead\x1b[2Jer"], 2, "control character (U+001B)"),
    Case("--tag-key with a newline", ["reconcile", "--tag-key", "lead\ner"], 2, "contains a line break"),
    Case("--tag-key aws:leader", ["reconcile", "--tag-key", "aws:leader"], 2, "reserved aws: prefix"),
    Case("--tag-key with spaces around", ["reconcile", "--tag-key", " leader "], 2, "starts or ends with whitespace"),
    Case("--tag-key = the cluster tag key", ["reconcile", "--tag-key", "consul-cluster"], 2, "must differ"),
    Case(
        "TAGJOIN_TAG_KEY zero-width",
        ["reconcile"],
        2,
        "invisible character (U+200B)",
        {"TAGJOIN_TAG_KEY": "lead\u200ber"},
    ),
    Case("--cluster ''", ["targets", "--cluster", ""], 2, "cluster name (TAGJOIN_CLUSTER or --cluster) is empty"),
    Case("--cluster of 257 chars", ["targets", "--cluster", "c" * 257], 2, "at most 256 in a tag value"),
    Case("--cluster with a newline", ["status", "--cluster", "sim\nprod"], 2, "contains a line break"),
    Case("TAGJOIN_CLUSTER_TAG_KEY aws:", ["targets"], 2, "reserved aws: prefix", {"TAGJOIN_CLUSTER_TAG_KEY": "AWS:c"}),
    Case("--fallback-tag with no key", ["targets", "--tag-key", "nobody", "--fallback-tag", "=x"], 2, "is empty"),
    Case("--fallback-tag aws:", ["targets", "--fallback-tag", "aws:role=x"], 2, "reserved aws: prefix"),
    # AWS settings
    Case("AWS_REGION=garbage", ["targets"], 2, "'garbage' is not a valid region name", {"AWS_REGION": "garbage"}),
    Case("AWS_REGION unknown", ["targets"], 2, "'xx-nowhere-9' is unknown to botocore", {"AWS_REGION": "xx-nowhere-9"}),
    Case("--region with spaces", ["targets", "--region", "eu west 1"], 2, "not a valid region name"),
    Case("--region ''", ["targets", "--region", ""], 2, "--region is empty"),
    Case("AWS_ENDPOINT_URL ftp://", ["targets"], 2, "not an http or https URL", {"AWS_ENDPOINT_URL": "ftp://x"}),
    Case(
        "AWS_ENDPOINT_URL bad port", ["targets"], 2, "Port out of range", {"AWS_ENDPOINT_URL": "http://127.0.0.1:99999"}
    ),
    Case(
        "AWS_ENDPOINT_URL with CR/LF", ["targets"], 2, "contains a line break", {"AWS_ENDPOINT_URL": "http://a\r\nX: y"}
    ),
    Case("TAGJOIN_INSTANCE_ID bogus", ["reconcile"], 2, "is not an EC2 instance id", {"TAGJOIN_INSTANCE_ID": "web-1"}),
    Case("TAGJOIN_EC2_MAX_ATTEMPTS 0", ["targets"], 2, "must be 1 to 10, got 0", {"TAGJOIN_EC2_MAX_ATTEMPTS": "0"}),
    Case(
        "TAGJOIN_EC2_MAX_ATTEMPTS huge", ["targets"], 2, "is not a whole number", {"TAGJOIN_EC2_MAX_ATTEMPTS": "9" * 30}
    ),
    Case("TAGJOIN_EC2_MAX_ATTEMPTS ²", ["targets"], 2, "is not a whole number", {"TAGJOIN_EC2_MAX_ATTEMPTS": "²"}),
    Case("discover region=garbage", ["targets", "provider=aws region=garbage"], 2, "not a valid region name"),
    Case("discover with a quoted newline", ["targets", 'provider="aws\nx"'], 2, "provider='aws\\nx' is not supported"),
    Case("discover tag_value control", ["targets", 'provider=aws tag_value="a\x07b"'], 2, "control character"),
    Case("discover unterminated quote", ["targets", 'provider=aws tag_key="x'], 2, "unterminated quoted value"),
    Case("discover credentials", ["targets", "provider=aws secret_access_key=" + TOKEN], 2, "not supported"),
    Case("deploy-kit --region garbage", ["deploy-kit", "--region", "garbage"], 2, "not a valid region name"),
    # Consul settings
    Case("CONSUL_HTTP_ADDR ftp://", ["reconcile"], 2, "Unknown protocol scheme: ftp", {"CONSUL_HTTP_ADDR": "ftp://x"}),
    Case("CONSUL_HTTP_ADDR with a space", ["status"], 2, "whitespace in the host", {"CONSUL_HTTP_ADDR": "a b:8500"}),
    Case(
        "CONSUL_HTTP_ADDR port 99999",
        ["status"],
        2,
        "not a valid agent address",
        {"CONSUL_HTTP_ADDR": "127.0.0.1:99999"},
    ),
    Case("CONSUL_TLS_SERVER_NAME colons", ["status"], 2, "too many colons", {"CONSUL_TLS_SERVER_NAME": "a:b:c"}),
    Case("client cert without key", ["status"], 2, "both client cert and client key", {"CONSUL_CLIENT_CERT": "c.pem"}),
    # the command line itself
    Case("unknown command", ["tagjoinn"], 2, "invalid choice: 'tagjoinn'"),
    Case("unknown flag", ["targets", "--formt", "json"], 2, "unrecognized arguments: --formt"),
    Case("bad --format", ["targets", "--format", "yaml"], 2, "invalid choice: 'yaml'"),
    Case("sim serve --speed nan", ["sim", "serve", "--speed", "nan"], 2, "'nan' is not a number from 0.01 to 1000"),
    Case("sim serve --speed 0", ["sim", "serve", "--speed", "0"], 2, "'0' is not a number from 0.01 to 1000"),
    # EC2 refusing, each with its own remedy (faults on the live endpoint; the pass reaches EC2)
    Case(
        "EC2 RequestExpired",
        ["reconcile"],
        1,
        "fix the clock",
        ec2_fault=("DescribeInstances", 9, "RequestExpired", 400),
    ),
    Case(
        "EC2 AuthFailure",
        ["reconcile"],
        1,
        "credentials are not valid",
        ec2_fault=("DescribeInstances", 9, "AuthFailure", 401),
    ),
    Case(
        "EC2 UnauthorizedOperation",
        ["reconcile"],
        1,
        "grant ec2:DescribeInstances to this node's IAM role",
        ec2_fault=("DescribeInstances", 9, "UnauthorizedOperation", 403),
    ),
    Case(
        "EC2 OptInRequired",
        ["reconcile"],
        1,
        "not subscribed",
        ec2_fault=("DescribeInstances", 9, "OptInRequired", 401),
    ),
    Case("EC2 429 once", ["reconcile"], 0, "", ec2_fault=("DescribeInstances", 1, "TooManyRequestsException", 429)),
    Case(
        "EC2 429 throughout",
        ["reconcile"],
        1,
        "still throttled after 2 attempts (last: TooManyRequestsException (HTTP 429)",
        ec2_fault=("DescribeInstances", 9, "TooManyRequestsException", 429),
    ),
    Case(
        "EC2 signature expired (skew)",
        ["reconcile"],
        1,
        "fix the clock",
        ec2_stub=(
            400,
            _ec2_error(
                "SignatureDoesNotMatch", "Signature expired: 20250101T000000Z is now earlier than 20250101T000500Z"
            ),
        ),
    ),
    Case(
        "EC2 HTML 502",
        ["reconcile"],
        1,
        "still failing after 2 attempts (last: 502 (HTTP 502)",
        ec2_stub=(502, _HTML_502),
    ),
    Case("EC2 HTML 200 (portal)", ["reconcile"], 1, "is not from EC2 (no request id)", ec2_stub=(200, _PORTAL)),
    Case("EC2 NextToken for ever", ["reconcile"], 1, "a NextToken repeated", ec2_stub=(200, _PAGE_FOR_EVER)),
    Case("EC2 garbage bytes 503", ["targets"], 1, "still failing after 2 attempts", ec2_stub=(503, b"\xff\x00garbage")),
    # Consul answering badly (stub agents)
    Case(
        "Consul 403",
        ["reconcile"],
        1,
        "the token from CONSUL_HTTP_TOKEN needs agent:read",
        {"CONSUL_HTTP_TOKEN": TOKEN},
        agent="stub",
        stub={"/v1/agent/self": Reply(403, "ACL not found")},
    ),
    Case(
        "Consul 403, no token",
        ["status"],
        1,
        "the anonymous token (no token is set",
        agent="stub",
        stub={"/v1/status/leader": Reply(403, "Permission denied")},
    ),
    Case(
        "token with spaces echoed back",
        ["reconcile"],
        1,
        "<redacted>",
        {"CONSUL_HTTP_TOKEN": "ab12   " + TOKEN},
        agent="stub",
        stub={"/v1/agent/self": Reply(500, "rpc error: bad token ab12   " + TOKEN + " (repr 'ab12   " + TOKEN + "')")},
    ),
    Case(
        "Consul answers 100,000-deep JSON",
        ["reconcile"],
        1,
        "nested too deeply",
        agent="stub",
        stub={"/v1/agent/self": Reply(200, _deep(100_000), {"Content-Type": "application/json"})},
    ),
    Case(
        "Consul answers HTML", ["status"], 1, "not JSON", agent="stub", stub={"/v1/status/leader": Reply(200, "<html>")}
    ),
    Case("Consul agent down", ["reconcile"], 1, "connection refused", agent="down"),
    Case("Consul agent down, watch", ["watch-handler"], 0, "will retry on the next event", agent="down", stdin=b"[]"),
]


@pytest.fixture(scope="module", autouse=True)
def _token_file() -> Iterator[None]:
    TOKEN_FILE.write_text(TOKEN + "\nsecond-line\n")
    yield
    TOKEN_FILE.unlink(missing_ok=True)
    (ROOT / "tests" / ".corpus-handoff.lock").unlink(missing_ok=True)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, live: Live, ec2_stub: _Ec2Stub) -> None:
    before = live.tags()
    ec2 = live.sim.ec2_endpoint
    if case.ec2_stub is not None:
        ec2_stub.answer = case.ec2_stub
        ec2 = f"http://127.0.0.1:{ec2_stub.server_address[1]}"
    if case.ec2_fault is not None:
        action, count, code, status = case.ec2_fault
        live.fault(f"/{action}?count={count}&code={code}&status={status}", "POST")
    try:
        if case.agent == "stub":
            agent = FakeAgent(self_doc=SELF_SERVER)
            agent.overrides = {("GET", path): reply for path, reply in case.stub.items()}
            with serve_tcp(agent) as url:
                done = _run(live, case.args, case.env, case.stdin, url, ec2)
        elif case.agent == "down":
            done = _run(live, case.args, case.env, case.stdin, f"127.0.0.1:{closed_port()}", ec2)
        else:
            done = _run(live, case.args, case.env, case.stdin, live.leader_url, ec2)
    finally:
        if case.ec2_fault is not None:
            live.fault("", "DELETE")
    err_lines = done.stderr.splitlines()
    ROWS.append((case.name, done.returncode, err_lines[0] if err_lines else ""))
    assert done.returncode == case.code, done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout
    assert len(err_lines) == (1 if case.says else 0), done.stderr
    assert case.says in done.stderr
    # Nothing of the token, whatever form it took: as is, escaped, with its spaces folded.
    for form in (TOKEN, json.dumps(TOKEN)[1:-1], "ab12 " + TOKEN):
        assert form not in done.stderr + done.stdout
    assert live.tags() == before


def test_keep_lives_through_html_5xx_from_ec2_and_stops_on_sigterm(live: Live, ec2_stub: _Ec2Stub) -> None:
    """A proxy's HTML error page where EC2 should answer: `keep` says so, backs off, and lives on."""
    import signal

    before = live.tags()
    ec2_stub.answer = (502, _HTML_502)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "HOME": str(ROOT / "tests"),
        **live.sim.environment(),
        "CONSUL_HTTP_ADDR": live.leader_url,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ec2_stub.server_address[1]}",
        "TAGJOIN_EC2_MAX_ATTEMPTS": "2",
        "TAGJOIN_LOCK_FILE": str(ROOT / "tests" / ".corpus-handoff.lock"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tagjoin.core.cli", "keep", "--interval", "100ms"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(2)]  # "watching", then the failed pass
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=20)
    finally:
        proc.kill()
    err = "".join(lines) + rest
    ROWS.append(("keep with HTML 502 from EC2, then SIGTERM", proc.returncode, lines[1].rstrip("\n")))
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert lines[1].startswith("keeper: warning: pass failed: EC2 DescribeInstances still failing after 2 attempts")
    assert err.rstrip("\n").splitlines()[-1] == "keeper: stopping on SIGTERM"
    assert live.tags() == before
