"""Canary secrets: a Consul token and AWS keys that must never reach any output.

The token is made to be echoed back: the stub agent repeats it in its error bodies as is, JSON-
and repr-escaped, with its run of spaces folded. Every output is searched for every spelling of
every canary: the commands' stderr and stdout with `--verbose` text logs and `--log-format json`
logs (`keep` included), the simulator's reports, `sim serve`'s banner, and the console's
exported event log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.fake_agent import Reply
from tests.test_cli import ROOT, Rig, moto_url, rig  # noqa: F401 -- fixtures used by name

# Visible ASCII as a header may carry it, with the characters escaping changes: a quote, a
# backslash and a run of spaces.
TOKEN = 'c4n4ry-"tok\\en"   9f3e7d1c'
AWS_SECRET = "c4n4ry-aws-secret-key-7b21"
AWS_SESSION = "c4n4ry-aws-session-token-55e0"
CANARIES = (TOKEN, AWS_SECRET, AWS_SESSION)


def spellings(secret: str) -> set[str]:
    return {
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        " ".join(secret.split()),
        repr(secret.encode())[2:-1],
    }


def leaks(text: str) -> list[str]:
    return sorted(form for secret in CANARIES for form in spellings(secret) if form in text)


def echo(status: int = 500) -> Reply:
    body = (
        f"rpc error: ACL token {TOKEN} not found; as JSON {json.dumps(TOKEN)}; as repr {TOKEN!r}; "
        f"folded {' '.join(TOKEN.split())}"
    )
    return Reply(status, body)


@pytest.fixture
def canary_env(rig: Rig, tmp_path: Path) -> dict[str, str]:  # noqa: F811 -- the fixture imported above
    token_file = tmp_path / "consul.token"
    token_file.write_text(TOKEN + "\n")
    return {
        "CONSUL_HTTP_TOKEN_FILE": str(token_file),
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_SESSION_TOKEN": AWS_SESSION,
        "TAGJOIN_LOCK_FILE": str(tmp_path / "handoff.lock"),
    }


@pytest.mark.parametrize("log_flags", [["-v"], ["-v", "--log-format", "json"]], ids=["verbose text", "json"])
@pytest.mark.parametrize(
    ("command", "stdin"),
    [(["reconcile"], ""), (["watch-handler"], "[]"), (["status"], "")],
    ids=["reconcile", "watch-handler", "status"],
)
def test_one_shot_commands_never_print_a_canary(
    rig: Rig,  # noqa: F811
    canary_env: dict[str, str],
    command: list[str],
    stdin: str,
    log_flags: list[str],
) -> None:
    rig.agent.overrides["GET", "/v1/agent/self"] = echo()
    rig.agent.overrides["GET", "/v1/status/leader"] = echo(403)
    out = rig.run(*log_flags, *command, stdin=stdin, env=canary_env)
    assert out.returncode in (0, 1), out.stderr
    assert "<redacted>" in out.stderr
    assert leaks(out.stdout + out.stderr) == []


@pytest.mark.parametrize("log_flags", [["-v"], ["-v", "--log-format", "json"]], ids=["verbose text", "json"])
def test_keep_logs_never_carry_a_canary(
    rig: Rig,  # noqa: F811
    canary_env: dict[str, str],
    log_flags: list[str],
) -> None:
    """The keeper's every log line: a health query the agent fails with the token in its answer
    (a debug line), a pass that goes through, then one the agent refuses, echoing the token."""
    rig.world.launch("10.0.1.10", cluster="c1")
    rig.agent.overrides["GET", "/v1/health/state/critical"] = echo()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tagjoin.core.cli", *log_flags, "keep", "--interval", "100ms"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**rig.env, **canary_env},
        cwd=ROOT,
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        for _ in range(200):  # bounded: the first pass is a few lines in
            lines.append(proc.stderr.readline())
            if "handoff" in lines[-1] or not lines[-1]:
                break
        rig.agent.overrides["GET", "/v1/agent/self"] = echo()
        for _ in range(200):  # and the agent's refusal, echoing the token, comes next
            lines.append(proc.stderr.readline())
            if "cannot" in lines[-1] or ("failed" in lines[-1] and "agent/self" in lines[-1]) or not lines[-1]:
                break
        proc.send_signal(signal.SIGTERM)
        out, rest = proc.communicate(timeout=20)
    finally:
        proc.kill()
    err = "".join(lines) + rest
    assert proc.returncode == 0, err
    assert "health query failed" in err and "agent/self" in err and "<redacted>" in err
    if "json" in log_flags:
        assert all(json.loads(line)["logger"].startswith("tagjoin") for line in err.splitlines())
    assert leaks(out + err) == []


SIM_ENV = {
    "PATH": os.environ.get("PATH", ""),
    "PYTHONPATH": str(ROOT),
    "CONSUL_HTTP_TOKEN": TOKEN,
    "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    "AWS_SESSION_TOKEN": AWS_SESSION,
}


def test_simulator_reports_never_carry_a_canary(tmp_path: Path) -> None:
    env = SIM_ENV
    svg = tmp_path / "timeline.svg"
    for args in (["--seed", "3", "--duration", "40", "--json"], ["--seed", "4", "--duration", "40", "--svg", str(svg)]):
        done = subprocess.run(
            [sys.executable, "-m", "tagjoin", "sim", "run", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert leaks(done.stdout + done.stderr) == []
    assert leaks(svg.read_text()) == []


def test_sim_serve_banner_never_carries_a_canary() -> None:
    """What `sim serve` prints to export is its own endpoints and dummy keys, not the caller's."""
    env = SIM_ENV
    proc = subprocess.Popen(
        [sys.executable, "-m", "tagjoin", "sim", "serve", "--servers", "3", "--clients", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(12)]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert any(line.startswith("export CONSUL_HTTP_ADDR=") for line in banner)
    assert leaks("".join(banner) + out + err) == []


async def test_the_consoles_exported_event_log_never_carries_a_canary(
    rig: Rig,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tagjoin.core.consul.settings import consul_settings_from_env
    from tagjoin.core.settings import aws_from_env, scope_from_env
    from tagjoin.tui.widgets.event_log import EventLog
    from tagjoin.tui.wiring import ConsoleOptions, build_console

    for name in ("AWS_ACCESS_KEY_ID", "AWS_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(name, rig.env[name])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", AWS_SESSION)
    consul = consul_settings_from_env({"CONSUL_HTTP_ADDR": rig.env["CONSUL_HTTP_ADDR"], "CONSUL_HTTP_TOKEN": TOKEN})
    console = build_console(
        consul,
        aws_from_env(os.environ),
        scope_from_env({}, cluster="c1"),
        ConsoleOptions(interval=0.3, export_dir=tmp_path),
    )
    app = console.app
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            for _ in range(100):  # bounded: the first refresh comes within a second or two
                await pilot.pause(0.1)
                if app.view is not None:
                    break
            # From now on every read is refused, with the token in the answer.
            for path in ("/v1/status/leader", "/v1/agent/members", "/v1/agent/self"):
                rig.agent.overrides["GET", path] = echo()
            for _ in range(100):  # bounded: the next refresh fails within a second or two
                await pilot.pause(0.1)
                entries = app.query_one(EventLog).entries
                if any("redacted" in e.message for e in entries):
                    break
            await pilot.press("w")
            for _ in range(50):  # bounded: the export is written on the UI thread
                await pilot.pause(0.1)
                if list(tmp_path.glob("tagjoin-console-*.json")):
                    break
    finally:
        for close in reversed(console.closers):
            close()
    (exported,) = tmp_path.glob("tagjoin-console-*.json")
    text = exported.read_text()
    assert "<redacted>" in text
    assert leaks(text) == []
