"""The ``pilotid`` command: ``run | probe | proxy-info | policy | myproxy ... | testca``.

Each subcommand lives in its own module under ``pilotid.commands``.  Every failure pilotid
foresees ends in one line on stderr and the error's pilot error code as exit status;
``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from pilotid import __version__
from pilotid.commands import helptext, myproxy, policy, proxy_info, run, testca
from pilotid.errors import PilotidError, exit_status

log = logging.getLogger(__name__)

COMMANDS = (run, proxy_info, policy, myproxy, testca)

#: The first lines of ``pilotid --help`` (plain text: argparse shows it as it is).
DESCRIPTION = ("Run a grid pilot's payload under the end user's own Unix identity (gLExec, "
               "sudo or no switch), check a worker node for a queue, and handle the users' "
               "proxies and MyProxy. 'pilotid COMMAND --help' describes each command.")

EXAMPLES = (
    "pilotid probe --queues queues.json --queue ANALY_SUDO --user-dn \"$DN\"",
    "pilotid run --queues queues.json --queue ANALY_SUDO --job job.json --workdir /scratch/job",
    "pilotid proxy-info /tmp/x509up_u$(id -u)",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="pilotid", description=helptext.paragraphs(DESCRIPTION),
        epilog=helptext.epilog(EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pilotid {__version__}")
    parser.add_argument("--debug", action="store_true", help="log debug lines and show tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


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
