"""`tagjoin console`: registered into core's CLI through the `tagjoin.commands` entry point."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

from tagjoin.core.argtypes import count, duration, positive
from tagjoin.core.cli import aws_flags, aws_settings, consul_flags, consul_settings, scope_settings
from tagjoin.core.errors import EXIT_USAGE
from tagjoin.tui.agents import DEFAULT_AGENT_TEMPLATE


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "console",
        parents=[consul_flags(), aws_flags()],
        help="the operator console (Textual); --demo runs it on an embedded simulated cluster",
        description="Watch the leader, members, EC2 tags and drift; leave, rejoin, force-leave, reconcile.",
    )
    g = p.add_argument_group("console")
    g.add_argument("--demo", action="store_true", help="start an embedded simulated cluster on 127.0.0.1")
    g.add_argument("--servers", type=positive, default=3, metavar="N", help="demo servers (default 3)")
    g.add_argument("--clients", type=count, default=2, metavar="M", help="demo clients (default 2)")
    g.add_argument("--read-only", action="store_true", help="refuse every action that changes the cluster")
    g.add_argument("--interval", type=_interval, default=2.0, metavar="SECONDS", help="refresh every (default 2s)")
    g.add_argument(
        "--agent-template",
        default=DEFAULT_AGENT_TEMPLATE,
        metavar="TEMPLATE",
        help="each node's own agent, from {address} and {node} (default %(default)s)",
    )
    g.add_argument(
        "--agent-map",
        metavar="FILE",
        help='each node\'s own agent from a JSON file {"agents": {"node": "http://host:port"}}, re-read when it '
        "changes (`tagjoin sim serve --agent-map FILE` writes one); instead of --agent-template",
    )
    g.add_argument(
        "--control-url",
        metavar="URL",
        help="a `tagjoin sim serve` control API: enables the fault keys (crash, isolate, heal, pause, throttle) "
        "and rejoin, and lists each node's agent",
    )
    g.add_argument("--export-dir", type=Path, metavar="DIR", help="where `w` writes JSON exports (default: .)")
    g.add_argument(
        "--rejoin-command",
        metavar="TEMPLATE",
        help="command that starts a node's agent, e.g. 'ssh {address} sudo systemctl start consul' (no shell)",
    )
    p.set_defaults(handler=run_console)


def run_console(args: argparse.Namespace) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # Textual would write escape codes into a pipe or a log file and wait for keys that never come.
        print(
            "tagjoin console: needs a terminal (stdin and stdout must be a TTY); "
            "for a one-shot, scriptable view use `tagjoin status` (--json)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from tagjoin.tui.wiring import ConsoleOptions, build_console, demo_settings

    if args.demo and args.control_url:
        print("tagjoin console: --demo brings its own control API; drop --control-url", file=sys.stderr)
        return EXIT_USAGE
    options = ConsoleOptions(
        interval=args.interval,
        read_only=args.read_only,
        agent_template=args.agent_template,
        agent_map=args.agent_map,
        rejoin_command=args.rejoin_command,
        export_dir=args.export_dir,
    )
    if args.demo:
        from tagjoin.tui.demo import start_embedded

        endpoints = start_embedded(args.servers, args.clients)
        # Stopping the embedded cluster takes a tenth of a second: begin it as the operator quits,
        # while Textual restores the terminal, instead of after.
        stopper = threading.Thread(target=endpoints.stop, name="demo-stop")
        try:
            consul, aws, scope = demo_settings(endpoints)
            console = build_console(consul, aws, scope, options, control_url=endpoints.control_url)
            console.app.on_quit = stopper.start
            console.run()
        finally:
            if stopper.ident is None:
                endpoints.stop()
            else:
                stopper.join()
        return 0
    consul = consul_settings(args)
    aws = aws_settings(args)
    aws.require_region()  # fail before the screen opens, with the one-line message
    scope = scope_settings(args)
    build_console(consul, aws, scope, options, control_url=args.control_url).run()
    return 0


def _interval(text: str) -> float:
    value = duration(text)
    if value < 0.1:
        raise argparse.ArgumentTypeError(f"refresh interval {text!r} is below 100ms")
    return value
