"""The `tagjoin` command line.

Node-side commands import their dependencies lazily so `tagjoin targets` starts fast on a small
instance. `console` and `sim` are contributed by the tui and sim packages through the
`tagjoin.commands` entry-point group, which keeps core free of both.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from tagjoin.core.argtypes import ANTI_ENTROPY_RANGE, INTERVAL_RANGE, duration_between
from tagjoin.core.errors import EXIT_FAILED, EXIT_USAGE, TagjoinError

if TYPE_CHECKING:
    from tagjoin.core.aws.tag_store import TagStore
    from tagjoin.core.consul.client import ConsulClient
    from tagjoin.core.consul.settings import ConsulSettings
    from tagjoin.core.model import Instance
    from tagjoin.core.settings import AwsSettings, Scope

CORE_COMMANDS = ("targets", "boot-plan", "reconcile", "watch-handler", "keep", "status", "deploy-kit")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Run as the program (not called in process): a one-shot command builds ~1M long-lived objects
    # (imports, botocore's EC2 model) and exits soon. The cyclic GC would walk them several times
    # while they are built and once more at exit, about a quarter of `tagjoin targets`' CPU time.
    one_shot = argv is None and _one_shot(args_list)
    if one_shot:
        gc.disable()
    try:
        return _run(args_list)
    finally:
        if one_shot:
            gc.freeze()  # the command is done: the exit-time collection skips every frozen object
            gc.enable()


def _one_shot(argv: list[str]) -> bool:
    """Core commands other than `keep` return soon; `keep` and plugins (console, sim) run long."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first in CORE_COMMANDS and first != "keep"


def _run(args_list: list[str]) -> int:
    parser = build_parser(load_plugins=_wants_plugins(args_list))
    args = parser.parse_args(args_list)
    from tagjoin.core.log_setup import configure

    configure(verbose=getattr(args, "verbose", 0), fmt=getattr(args, "log_format", "text"))
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except TagjoinError as exc:
        # One line whatever the message quotes (a value with a line break in it): escaped, not folded.
        message = str(exc).replace("\r", "\\r").replace("\n", "\\n")
        print(f"tagjoin {args.command}: {message}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # A file or socket the command was pointed at (--out, a token file, a CA file): the
        # operator's to fix, so one line and the usage status, like any other bad input.
        from tagjoin.core.text import one_line

        print(f"tagjoin {args.command}: {one_line(_describe_os_error(exc), limit=300)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _describe_os_error(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _wants_plugins(argv: list[str]) -> bool:
    first = next((a for a in argv if not a.startswith("-")), None)
    return first is None or first not in CORE_COMMANDS


class CliParser(argparse.ArgumentParser):
    """argparse with the CLI contract's one-line errors; subcommands' parsers (plugins' too) inherit it."""

    def error(self, message: str) -> NoReturn:
        from tagjoin.core.text import one_line

        self.exit(EXIT_USAGE, f"{self.prog}: {one_line(message, limit=300)} (see {self.prog} --help)\n")


def build_parser(*, load_plugins: bool = True) -> argparse.ArgumentParser:
    parser = CliParser(
        prog="tagjoin",
        description="Keep Consul's join target in an EC2 tag that follows the Raft leader.",
    )
    parser.add_argument("--version", action=_PrintVersion)
    add_log_flags(parser, default=0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    consul, aws = consul_flags(), aws_flags()

    p = sub.add_parser(
        "targets",
        parents=[aws],
        help="print join addresses, best first (for boot scripts and -retry-join)",
        description="Join addresses from the leader tag, highest term first, never this node's own.",
    )
    p.add_argument(
        "discover",
        nargs="?",
        help='Consul cloud auto-join string, e.g. "provider=aws tag_key=consul-leader region=eu-west-1"',
    )
    p.add_argument("--format", choices=("lines", "flags", "json"), default="lines")
    p.add_argument("--fallback-tag", metavar="KEY[=VALUE]", help="instances to join when no leader tag exists")
    p.add_argument(
        "--self", dest="self_addrs", action="append", metavar="ADDR", help="this node's address (repeatable)"
    )
    p.set_defaults(handler=cmd_targets)

    p = sub.add_parser(
        "boot-plan",
        parents=[aws],
        help="the `consul agent` arguments a booting node starts with (never none: Consul always starts)",
        description=(
            "Join the leader tag's holder; else any other member of the cluster (--fallback-tag); else start "
            "with retry_join from the config dir and, on a server, bootstrap_expect."
        ),
    )
    p.add_argument("--format", choices=("flags", "json"), default="flags")
    p.add_argument("--json", action="store_const", const="json", dest="format", help="same as --format json")
    p.add_argument("--fallback-tag", metavar="KEY[=VALUE]", help="the cluster's members, e.g. consul-cluster=prod")
    p.add_argument("--server", action="store_true", help="this node is a Consul server")
    p.add_argument(
        "--bootstrap-expect", type=int, metavar="N", help="servers that form a new cluster (implies --server)"
    )
    p.add_argument(
        "--addr-type", choices=("private_v4", "public_v4"), default="private_v4", help="which address to join"
    )
    p.add_argument(
        "--self", dest="self_addrs", action="append", metavar="ADDR", help="this node's address (repeatable)"
    )
    p.set_defaults(handler=cmd_boot_plan)

    p = sub.add_parser("reconcile", parents=[consul, aws], help="one handoff pass on this node")
    p.add_argument("--dry-run", action="store_true", help="plan only; write nothing")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_reconcile)

    p = sub.add_parser(
        "watch-handler",
        parents=[consul, aws],
        help="handler for `consul watch -type=nodes|checks` (payload on stdin)",
        description=("Reconciles once per watch event. Transient faults exit 0: a non-zero exit stops consul watch."),
    )
    p.set_defaults(handler=cmd_watch_handler)

    p = sub.add_parser("keep", parents=[consul, aws], help="long-running keeper (systemd)")
    p.add_argument(
        "--interval",
        type=duration_between(*INTERVAL_RANGE),
        default=1.0,
        metavar="D",
        help="poll/blocking wait, 100ms to 1h (default 1s)",
    )
    p.add_argument(
        "--anti-entropy",
        type=duration_between(*ANTI_ENTROPY_RANGE),
        default=60.0,
        metavar="D",
        help="pass at least this often, 1s to 24h (default 60s)",
    )
    p.set_defaults(handler=cmd_keep)

    p = sub.add_parser("status", parents=[consul, aws], help="leader, members, tagged instances, drift")
    p.add_argument("--json", action="store_true")
    p.add_argument("--check", action="store_true", help="exit 1 when any drift is found")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser(
        "deploy-kit", help="IAM policies and roles, systemd unit, boot script, retry_join line (watch config opt-in)"
    )
    p.add_argument("--cluster", help="cluster name (the consul-cluster tag value); without it writes are account-wide")
    p.add_argument("--tag-key", default=None)
    p.add_argument("--region", default=None, help="AWS region (AWS_REGION / AWS_DEFAULT_REGION); required")
    p.add_argument("--account-id", metavar="ID", help="12-digit AWS account id for the policies' ARNs")
    p.add_argument("--bin", metavar="PATH", help="the tagjoin executable the unit runs (default: this one)")
    p.add_argument("--bootstrap-expect", type=int, metavar="N", help="servers forming a new cluster (boot-join.sh)")
    p.add_argument(
        "--with-watches",
        action="store_true",
        help="also write consul-watches.json (use it instead of the keep unit, never beside it)",
    )
    p.add_argument(
        "--auto-join-tag",
        metavar="KEY=VALUE",
        help="the tag retry-join.hcl's cloud auto-join matches (default: the cluster tag); "
        "with hundreds of clients, a tag only the servers carry",
    )
    p.add_argument("--out", metavar="DIR", help="write the files into DIR instead of printing them")
    p.set_defaults(handler=cmd_deploy_kit)

    if load_plugins:
        _load_plugins(sub)
    return parser


class _PrintVersion(argparse.Action):
    """`--version`, reading the installed version only when asked (importlib.metadata is slow to load)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **_kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        import tagjoin

        print(f"tagjoin {tagjoin.__version__}")
        parser.exit()


def _load_plugins(sub: Any) -> None:
    from tagjoin.core.plugins import load_plugins

    load_plugins(sub)


def add_log_flags(parser: argparse.ArgumentParser, *, default: object = argparse.SUPPRESS) -> None:
    """-v and --log-format, before the command or after it (a subcommand's copy must not reset them)."""
    from tagjoin.core.log_setup import FORMATS

    parser.add_argument("-v", "--verbose", action="count", default=default, help="more detail in the log (DEBUG)")
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text" if default == 0 else default,
        help="log lines as text (default) or one JSON object a line",
    )


def consul_flags() -> CliParser:
    p = CliParser(add_help=False)
    g = p.add_argument_group("Consul (flags win over CONSUL_* env vars)")
    g.add_argument("--http-addr", help="agent address (CONSUL_HTTP_ADDR, default 127.0.0.1:8500)")
    g.add_argument("--token", help="ACL token (CONSUL_HTTP_TOKEN); prefer --token-file")
    g.add_argument("--token-file", help="file holding the ACL token (CONSUL_HTTP_TOKEN_FILE)")
    g.add_argument("--ca-file", help="CA certificate (CONSUL_CACERT)")
    g.add_argument("--ca-path", help="directory of CA certificates (CONSUL_CAPATH)")
    g.add_argument("--client-cert", help="client certificate (CONSUL_CLIENT_CERT)")
    g.add_argument("--client-key", help="client key (CONSUL_CLIENT_KEY)")
    g.add_argument("--tls-server-name", help="server name to verify (CONSUL_TLS_SERVER_NAME)")
    return p


def aws_flags() -> CliParser:
    p = CliParser(add_help=False)
    add_log_flags(p)
    g = p.add_argument_group("EC2 (flags win over env vars)")
    g.add_argument("--region", help="AWS region (AWS_REGION / AWS_DEFAULT_REGION)")
    g.add_argument("--endpoint-url", help="EC2 endpoint (AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL)")
    g.add_argument("--tag-key", help="leader tag key (TAGJOIN_TAG_KEY, default consul-leader)")
    g.add_argument("--cluster", help="cluster name scoping every read and write (TAGJOIN_CLUSTER)")
    g.add_argument("--instance-id", help="this node's instance id, instead of a lookup by IP (TAGJOIN_INSTANCE_ID)")
    return p


# --- wiring -------------------------------------------------------------------------------------


def scope_settings(args: argparse.Namespace, tag_key: str | None = None) -> Scope:
    """The cluster scope from `aws_flags()` flags and the environment."""
    from tagjoin.core.settings import scope_from_env

    return scope_from_env(os.environ, tag_key=tag_key or args.tag_key, cluster=args.cluster)


def aws_settings(args: argparse.Namespace, *, region: str | None = None, endpoint: str | None = None) -> AwsSettings:
    """EC2 settings from `aws_flags()` flags and the environment."""
    from tagjoin.core.settings import aws_from_env

    return aws_from_env(
        os.environ,
        region=region or args.region,
        endpoint_url=endpoint or args.endpoint_url,
        instance_id=getattr(args, "instance_id", None),
    )


def _store(aws: AwsSettings, scope: Scope) -> TagStore:
    from tagjoin.core.aws.lazy_ec2 import LazyEc2
    from tagjoin.core.aws.tag_store import TagStore
    from tagjoin.core.clock import SystemClock, system_random

    # The command's one EC2 client, built on its first call: a pass that never reaches EC2 never loads botocore.
    return TagStore(LazyEc2(aws), scope, clock=SystemClock(), rng=system_random(), max_attempts=aws.max_attempts)


def consul_settings(args: argparse.Namespace) -> ConsulSettings:
    """Consul settings from `consul_flags()` flags and the CONSUL_* environment."""
    from tagjoin.core.consul.settings import consul_settings_from_env

    return consul_settings_from_env(
        os.environ,
        http_addr=args.http_addr,
        token=args.token,
        token_file=args.token_file,
        ca_file=args.ca_file,
        ca_path=args.ca_path,
        client_cert=args.client_cert,
        client_key=args.client_key,
        tls_server_name=args.tls_server_name,
    )


def _consul(args: argparse.Namespace) -> ConsulClient:
    from tagjoin.core.consul.client import ConsulClient

    return ConsulClient(consul_settings(args))


# --- commands -----------------------------------------------------------------------------------


def cmd_targets(args: argparse.Namespace) -> int:
    from tagjoin.core.discover import DiscoverSpec, local_addresses, parse_discover, select_targets, why_no_targets
    from tagjoin.core.errors import NothingToJoin
    from tagjoin.core.settings import check_tag_value

    spec = parse_discover(args.discover) if args.discover is not None else DiscoverSpec()
    scope = scope_settings(args, spec.tag_key)
    store = _store(aws_settings(args, region=spec.region, endpoint=spec.endpoint), scope)
    if spec.tag_value is not None:
        check_tag_value(spec.tag_value, "the discover string's tag_value=")
    fallback_key, fallback_value = _fallback_tag(args.fallback_tag)
    tagged = store.tagged_instances_by_tag_index(key=scope.tag_key, value=spec.tag_value)
    fallback = []
    if not tagged and fallback_key is not None:
        fallback = store.tagged_instances(key=fallback_key, value=fallback_value)
    own = set(args.self_addrs or ()) | local_addresses()
    targets = select_targets(
        tagged,
        tag_key=scope.tag_key,
        own_addresses=own,
        addr_type=spec.addr_type,
        tag_value=spec.tag_value,
        fallback=fallback,
    )
    if args.format == "json" or targets.addresses:
        sys.stdout.write(targets.render(args.format))
    if not targets.addresses:
        where = f" in cluster {scope.cluster}" if scope.cluster else ""
        why = why_no_targets(
            tagged, tag_key=scope.tag_key, own_addresses=own, addr_type=spec.addr_type, tag_value=spec.tag_value
        )
        if not tagged:
            why = f"no running instance{where} carries tag {scope.tag_key}"
        if fallback_key is not None:
            why += f"; no other running instance carries the fallback tag {args.fallback_tag}"
        raise NothingToJoin(why)
    return 0


def _fallback_tag(raw: str | None) -> tuple[str | None, str | None]:
    """`--fallback-tag KEY[=VALUE]` as (key, value); an empty value means any value."""
    from tagjoin.core.settings import check_tag_key, check_tag_value

    if raw is None:
        return None, None
    key, _, value = raw.partition("=")
    check_tag_key(key, "the --fallback-tag key")
    return key, check_tag_value(value, "the --fallback-tag value") or None


def cmd_boot_plan(args: argparse.Namespace) -> int:
    from tagjoin.core.boot import plan_boot
    from tagjoin.core.discover import local_addresses

    scope = scope_settings(args)
    fallback_key, fallback_value = _fallback_tag(args.fallback_tag)
    store = _store(aws_settings(args), scope)

    def members() -> list[Instance]:
        return store.tagged_instances(key=fallback_key, value=fallback_value)

    plan = plan_boot(
        lambda: store.tagged_instances_by_tag_index(key=scope.tag_key),
        members if fallback_key is not None else None,
        tag_key=scope.tag_key,
        own_addresses=set(args.self_addrs or ()) | local_addresses(),
        addr_type=args.addr_type,
        server=args.server,
        bootstrap_expect=args.bootstrap_expect,
    )
    for reason in plan.reasons:
        print(f"tagjoin boot-plan: {reason}", file=sys.stderr)
    sys.stdout.write(plan.render(args.format))
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    import json

    from tagjoin.core.clock import SystemClock
    from tagjoin.core.handoff import Decision, run_pass
    from tagjoin.core.pass_lock import lock_from_env

    aws = aws_settings(args)
    with _consul(args) as consul:
        report = run_pass(
            consul,
            _store(aws, scope_settings(args)),
            SystemClock(),
            instance_id=aws.instance_id,
            dry_run=args.dry_run,
            lock=None if args.dry_run else lock_from_env(os.environ),
        )
    print(json.dumps(report.to_json(), indent=2) if args.json else report.summary())
    return EXIT_FAILED if report.decision in (Decision.SELF_NOT_RUNNING, Decision.BUSY) else 0


def cmd_watch_handler(args: argparse.Namespace) -> int:
    from tagjoin.core.clock import SystemClock
    from tagjoin.core.handoff import drive
    from tagjoin.core.pass_lock import lock_from_env
    from tagjoin.core.watch_handler import handle_event
    from tagjoin.core.watch_payload import read_payload

    aws = aws_settings(args)
    with _consul(args) as consul:
        steps = handle_event(
            read_payload(sys.stdin.buffer),
            os.environ.get("CONSUL_INDEX"),
            consul,
            _store(aws, scope_settings(args)),
            SystemClock(),
            instance_id=aws.instance_id,
            lock=lock_from_env(os.environ),
        )
        run = drive(steps)
    for line in run.stderr:
        print(line, file=sys.stderr)
    for line in run.stdout:
        print(line)
    return run.exit_code


class Stop(BaseException):
    """A signal to stop; not an Exception, so no library's broad `except Exception` swallows it."""


# systemd waits TimeoutStopSec (90 s) before SIGKILL; an operator waits far less.
STOP_GRACE_S = 0.8


def stop_on_signals(grace: float = STOP_GRACE_S) -> None:
    """SIGTERM and SIGINT raise `Stop` in the main thread, which unwinds a call a socket holds.

    A call blocked in C code that retries on its own (a DNS lookup) never returns to Python, so
    the Python-level handler cannot run. A watchdog thread learns of the signal from the wakeup
    fd, which the C-level handler writes at once, and `grace` seconds later the process leaves
    without waiting for the call. The writes of a pass are single EC2 calls made before anything
    is removed, so leaving between two is safe.
    """
    import signal
    import threading

    wanted = {signal.SIGTERM, signal.SIGINT}
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def watchdog() -> None:
        while True:
            data = os.read(read_end, 64)
            caught = [signal.Signals(n) for n in data if n in wanted]
            if caught:
                threading.Event().wait(grace)
                _leave_now(caught[0].name)

    def stop(signum: int, _frame: object) -> None:
        for sig in wanted:
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not interrupt the unwinding
        raise Stop(signal.Signals(signum).name)

    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(target=watchdog, name="stop-watchdog", daemon=True).start()
    for sig in wanted:
        signal.signal(sig, stop)


def _leave_now(name: str) -> None:
    # Straight to the file descriptor: the blocked main thread may hold the logging handler's lock.
    os.write(2, f"keeper: stopping on {name} (a call was still running)\n".encode())
    os._exit(0)


def cmd_keep(args: argparse.Namespace) -> int:
    from tagjoin.core.clock import SystemClock
    from tagjoin.core.keeper import KeepConfig, Keeper
    from tagjoin.core.pass_lock import lock_from_env

    aws = aws_settings(args)
    config = KeepConfig(interval=args.interval, anti_entropy=args.anti_entropy)
    keep_log = logging.getLogger("tagjoin.core.keeper")
    stop_on_signals()
    try:
        with _consul(args) as consul:
            keeper = Keeper(
                consul,
                _store(aws, scope_settings(args)),
                SystemClock(),
                config,
                instance_id=aws.instance_id,
                lock=lock_from_env(os.environ),
            )
            keep_log.info("watching (interval %gs, anti-entropy %gs)", config.interval, config.anti_entropy)
            keeper.run(lambda: False)
    except Stop as sig:
        keep_log.info("stopping on %s", sig)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from tagjoin.core.raft_view import leader_term, read_raft
    from tagjoin.core.status_text import render_status, status_json
    from tagjoin.core.view import Severity, build_view

    scope = scope_settings(args)
    store = _store(aws_settings(args), scope)
    with _consul(args) as consul:
        leader = consul.leader()
        members = consul.members()
        view = build_view(leader, members, store.instances(states=None), scope.tag_key)
        raft = read_raft(consul, view.rows)
        term = leader_term(consul, raft)
    if args.json:
        print(json.dumps(status_json(view, raft, term), indent=2))
    else:
        sys.stdout.write(render_status(view, raft, term))
    drift = view.worst is not None and view.worst >= Severity.WARNING
    return EXIT_FAILED if args.check and drift else 0


def cmd_deploy_kit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tagjoin.core.deploy_kit import build_kit
    from tagjoin.core.errors import ConfigError
    from tagjoin.core.settings import check_region

    scope = scope_settings(args)
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        # The unit's keeper would exit 2 on every start: refuse here, where the fix is one flag away.
        raise ConfigError("no AWS region for the kit: pass --region (or set AWS_REGION)")
    if args.account_id is not None and not (len(args.account_id) == 12 and args.account_id.isdigit()):
        raise ConfigError(f"--account-id {args.account_id!r} is not a 12-digit AWS account id")
    notes = []
    if scope.cluster is None:
        notes.append(
            "WARNING: no --cluster: the servers' policy lets them tag EVERY instance "
            "of the account in this region; pass --cluster NAME"
        )
    if args.account_id is None:
        notes.append("note: no --account-id; the policies' ARNs match any account")
    kit = build_kit(
        scope,
        region=check_region(region),
        account=args.account_id,
        bin_path=args.bin or _installed_bin(),
        bootstrap_expect=args.bootstrap_expect,
        with_watches=args.with_watches,
        auto_join_tag=_auto_join_tag(args.auto_join_tag),
    )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in kit.items():
            path = out / name
            path.write_text(text)
            path.chmod(0o755 if name.endswith(".sh") else 0o644)
            print(path)
    else:
        for name, text in kit.items():
            print(f"# --- {name} ---")
            print(text.rstrip("\n"))
    # After the files: a failed write is then the only line, and a warning is the last thing shown.
    for note in notes:
        print(f"tagjoin deploy-kit: {note}", file=sys.stderr)
    return 0


def _auto_join_tag(raw: str | None) -> tuple[str, str] | None:
    """`--auto-join-tag KEY=VALUE`: go-discover's aws provider matches one exact value, and its
    parameters are separated by spaces, so the value is required; a space or quote, which would
    need quoting there, is refused rather than escaped."""
    from tagjoin.core.errors import ConfigError
    from tagjoin.core.settings import check_tag_key, check_tag_value

    if raw is None:
        return None
    key, sep, value = raw.partition("=")
    if not sep or not value:
        raise ConfigError(f"--auto-join-tag {raw!r} needs KEY=VALUE, e.g. consul-server=prod")
    check_tag_key(key, "the --auto-join-tag key")
    check_tag_value(value, "the --auto-join-tag value")
    if any(ch.isspace() or ch in '"\\' for ch in raw):
        raise ConfigError(f"--auto-join-tag {raw!r} holds a space or quote; use a tag without them")
    return key, value


def _installed_bin() -> str:
    """The `tagjoin` entry point of the installation running now, for the unit's ExecStart."""
    import shutil
    from pathlib import Path

    beside = Path(sys.executable).parent / "tagjoin"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside.absolute())
    found = shutil.which("tagjoin")
    if found is None:
        from tagjoin.core.errors import ConfigError

        raise ConfigError("cannot find the installed tagjoin executable; pass --bin PATH")
    return str(Path(found).absolute())


if __name__ == "__main__":
    sys.exit(main())
