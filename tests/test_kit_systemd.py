"""The kit's systemd unit, judged by systemd's own tools where this machine has them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tagjoin.core.errors import ConfigError
from tagjoin.core.kit_systemd import systemd_unit
from tagjoin.core.settings import Scope

ANALYZE = shutil.which("systemd-analyze")
# An executable that exists here, so `verify` judges the unit rather than this machine's layout.
BIN = str(Path(sys.executable).absolute())
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")


def write_unit(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tagjoin-keep.service"
    path.write_text(text)
    return path


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=120)


def test_unit_takes_the_token_as_a_credential_and_does_not_loop_on_bad_config() -> None:
    unit = systemd_unit(Scope(cluster="prod"), "eu-west-1", "/opt/tagjoin/bin/tagjoin")
    assert "LoadCredential=consul-token:/etc/tagjoin/consul-token" in unit
    assert "ExecStart=/opt/tagjoin/bin/tagjoin keep " in unit and "--token-file %d/consul-token" in unit
    assert "CONSUL_HTTP_TOKEN_FILE" not in unit  # a path the dynamic user could not read
    assert "RestartPreventExitStatus=2" in unit
    assert "Environment=AWS_REGION=eu-west-1" in unit
    assert "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" in unit
    assert "UMask=0077" in unit


@pytest.mark.parametrize("path", ["tagjoin", "/opt/my tools/tagjoin", "/opt/t\nagjoin"])
def test_exec_start_must_be_one_absolute_path(path: str) -> None:
    with pytest.raises(ConfigError, match="--bin"):
        systemd_unit(Scope(), "eu-west-1", path)


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    path = write_unit(tmp_path, systemd_unit(Scope(cluster="prod"), "eu-west-1", BIN))
    done = analyze("verify", str(path))
    assert (done.returncode, done.stderr.strip()) == (0, "")

    # The control: the same call on a unit with a directive systemd does not know must complain.
    write_unit(tmp_path, systemd_unit(Scope(cluster="prod"), "eu-west-1", BIN).replace("UMask=", "UMsk="))
    assert "Unknown key" in analyze("verify", str(path)).stderr


@needs_analyze
def test_systemd_analyze_security_scores_at_most_3(tmp_path: Path) -> None:
    path = write_unit(tmp_path, systemd_unit(Scope(cluster="prod"), "eu-west-1", BIN))
    done = analyze("security", "--offline=true", str(path))
    if "--offline" in done.stderr and done.returncode != 0:
        pytest.skip(f"this systemd-analyze has no --offline: {done.stderr.strip()}")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert found is not None, done.stdout + done.stderr
    assert float(found.group(1)) <= 3.0, done.stdout
