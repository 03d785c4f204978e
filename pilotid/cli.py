"""The ``pilotid`` command: ``run | probe | proxy-info | policy | myproxy ...``.

Every failure pilotid foresees ends in one line on stderr and the error's pilot error code
as exit status; ``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

from pilotid import __version__
from pilotid.errors import PilotidError

log = logging.getLogger(__name__)


def exit_status(code: int) -> int:
    """Clip a pilot error code to a valid process exit status (1..255, 0 for success)."""
    return max(0, min(int(code), 255))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="pilotid", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pilotid {__version__}")
    parser.add_argument("--debug", action="store_true", help="log debug lines and show tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser("run", help="run one job as its user")
    _queue_options(run)
    run.add_argument("--job", required=True, type=Path, help="the job description (JSON)")
    run.add_argument("--workdir", type=Path, default=None,
                     help="work directory (default: the current directory)")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    run.set_defaults(handler=_run)

    probe = sub.add_parser("probe", help="check what this node offers a queue")
    _queue_options(probe)
    probe.add_argument("--workdir", type=Path, default=None,
                       help="work directory to check (default: the current directory)")
    probe.add_argument("--json", action="store_true", help="print the checks as JSON")
    probe.set_defaults(handler=_probe)
    add_proxy_info_parser(sub)
    return parser


def _queue_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queues", required=True, type=Path, help="queue settings file (JSON)")
    parser.add_argument("--queue", required=True, help="queue name in that file")


def _launcher(args: argparse.Namespace):
    from pilotid.factory import build_launcher
    from pilotid.queue import load_queue

    return build_launcher(load_queue(args.queues, args.queue))


def _run(args: argparse.Namespace) -> int:
    from pilotid.payloads.job import load_job

    launcher = _launcher(args)
    job = load_job(args.job)
    result = launcher.run(job, args.workdir or Path.cwd())
    if args.json:
        print(json.dumps(result.as_dict(), sort_keys=True))
    else:
        print(f"job {result.panda_id}: {result.outcome}, exit code {result.exit_code}, "
              f"error code {result.error_code}" + (f": {result.error}" if result.error else ""))
        print(f"work directory {result.workdir}; logs {result.stdout} {result.stderr}")
    return exit_status(result.error_code)


def _probe(args: argparse.Namespace) -> int:
    from pilotid.probe import FAIL, probe_node

    checks = probe_node(_launcher(args), args.workdir or Path.cwd())
    if args.json:
        print(json.dumps([c.as_dict() for c in checks], sort_keys=True))
    else:
        for check in checks:
            print(f"{check.status.upper():4}  {check.name}: {check.detail}")
    failed = [c for c in checks if c.status == FAIL]
    return exit_status(failed[0].error_code or 1) if failed else 0


def add_proxy_info_parser(sub) -> None:
    """``pilotid proxy-info FILE [--json]``."""
    cmd = sub.add_parser("proxy-info", help="show a proxy file as grid-proxy-info does",
                         description="Show who a proxy file is for, its type, key size and "
                         "time left; exit with the proxy's error code if it is unusable.")
    cmd.add_argument("file", metavar="FILE", nargs="?",
                     help="the proxy file (default: $X509_USER_PROXY, else /tmp/x509up_u<uid>)")
    cmd.add_argument("--json", action="store_true", help="print one JSON object")
    cmd.set_defaults(handler=proxy_info_command)


def proxy_info_command(args: argparse.Namespace) -> int:
    """Print a proxy in the layout of ``grid-proxy-info -all`` (or JSON); 0 if still valid."""
    from pilotid.identity.proxy import (
        check_lifetime,
        format_time_left,
        parse_proxy,
        read_proxy_file,
    )

    path = args.file or os.environ.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}"  # noqa: S108
    info = parse_proxy(read_proxy_file(path), Path(path))
    if args.json:
        print(json.dumps(info.as_dict(), indent=2))
    else:
        left = info.time_left()
        timeleft = format_time_left(left) + ("  (expired)" if left.total_seconds() <= 0 else "")
        for label, value in (("subject", info.subject), ("issuer", info.issuer),
                             ("identity", info.identity), ("type", info.proxy_type),
                             ("strength", f"{info.key_bits} bits"), ("path", path),
                             ("timeleft", timeleft)):
            print(f"{label:<9}: {value}")
    check_lifetime(info)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line ``argv``; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="pilotid: %(levelname)s %(message)s")
    try:
        return int(args.handler(args) or 0)
    except PilotidError as error:
        if args.debug:
            log.exception("%s", error)
        print(f"pilotid: error {error.code} ({error.fault}): {error}", file=sys.stderr)
        return exit_status(error.code)
    except KeyboardInterrupt:
        print("pilotid: interrupted", file=sys.stderr)
        return 130
