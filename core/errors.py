"""Expected failures, each with the exit status the CLI maps it to (docs/design.md §3)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOTHING_TO_JOIN = 3


class TagjoinError(Exception):
    """An expected failure: the CLI prints its message on one line, never a traceback."""

    exit_code = EXIT_FAILED


class ConfigError(TagjoinError):
    """Bad flags, env vars or discover strings."""

    exit_code = EXIT_USAGE


class ConsulError(TagjoinError):
    """Any failure talking to a Consul agent."""


class ConsulUnreachable(ConsulError):
    """The agent could not be reached (connection refused, timeout, TLS failure)."""


class NoLeader(ConsulError):
    """The cluster has no leader right now (`""` from status/leader or 500 `No cluster leader`)."""


class AclDenied(ConsulError):
    """403 from Consul: the token lacks a permission."""


class ConsulRateLimited(ConsulError):
    """429 from Consul."""


class BadResponse(ConsulError):
    """Consul answered with something we cannot use (unexpected status or shape)."""


class Ec2Error(TagjoinError):
    """Any failure talking to EC2."""


class Ec2Throttled(Ec2Error):
    """EC2 throttled us beyond the retry budget."""


class Ec2Denied(Ec2Error):
    """EC2 refused the request: the credentials lack a permission or are not valid."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code  # EC2's error code, e.g. UnauthorizedOperation


class InstanceNotFound(Ec2Error):
    """No running instance of this cluster has the address or id we looked for."""


class NothingToJoin(TagjoinError):
    """`targets` found no address to join."""

    exit_code = EXIT_NOTHING_TO_JOIN
