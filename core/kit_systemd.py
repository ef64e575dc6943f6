"""The deploy kit's systemd unit for `tagjoin keep`: credentials through systemd, the rest locked down.

The keeper needs outbound TCP (the local agent, EC2's endpoint), its token and nothing else: no
capabilities, no writable file system, no devices. `DynamicUser=` gives it a fresh user id, so
the token cannot be a file this user owns; `LoadCredential=` has systemd read it as root and
hand a private copy to this service alone.
"""

from __future__ import annotations

from tagjoin.core.errors import ConfigError
from tagjoin.core.settings import Scope, describe_bad_text

TOKEN_SOURCE = "/etc/tagjoin/consul-token"
CREDENTIAL = "consul-token"
# `%d` is systemd's specifier for this service's credentials directory.
TOKEN_IN_SERVICE = f"%d/{CREDENTIAL}"

HARDENING = (
    "DynamicUser=yes",
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "PrivateUsers=yes",
    "PrivateIPC=yes",
    "DevicePolicy=closed",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectProc=invisible",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "RemoveIPC=yes",
    "KeyringMode=private",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged @resources",
    "SystemCallErrorNumber=EPERM",
    "UMask=0077",
)


def check_bin(path: str) -> str:
    """systemd wants an absolute ExecStart path; whitespace would split it into arguments."""
    bad = describe_bad_text(path)
    if bad is not None or any(ch.isspace() for ch in path) or not path.startswith("/"):
        what = bad or ("whitespace" if any(ch.isspace() for ch in path) else "a relative path")
        raise ConfigError(f"the tagjoin executable {path!r} has {what}; pass an absolute path with --bin")
    return path


def systemd_unit(scope: Scope, region: str, bin_path: str) -> str:
    env = [f"Environment=TAGJOIN_TAG_KEY={scope.tag_key}"]
    if scope.cluster is not None:
        env.append(f"Environment=TAGJOIN_CLUSTER={scope.cluster}")
    env.append(f"Environment=AWS_REGION={region}")
    lines = [
        "[Unit]",
        "Description=consul-tagjoin keeper: moves the leader tag with Raft leadership",
        "After=consul.service network-online.target",
        "Wants=network-online.target",
        # A unit that cannot start (a missing token file) gives up after a few tries instead of looping.
        "StartLimitIntervalSec=600",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=exec",
        *env,
        f"LoadCredential={CREDENTIAL}:{TOKEN_SOURCE}",
        f"ExecStart={check_bin(bin_path)} keep --interval 1s --anti-entropy 60s --token-file {TOKEN_IN_SERVICE}",
        "Restart=on-failure",
        "RestartSec=5",
        # Exit 2 is a configuration error: restarting cannot fix it.
        "RestartPreventExitStatus=2",
        *HARDENING,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"
