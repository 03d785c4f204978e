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
    add_proxy_info_parser(sub)
    return parser


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
