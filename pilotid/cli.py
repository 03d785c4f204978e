"""The ``pilotid`` command: ``run | probe | cleanup | proxy-info | token-info | policy |
myproxy ... | testca | testissuer | agent``.

Each subcommand lives in its own module under ``pilotid.commands``.  Every failure pilotid
foresees ends in one line on stderr and the error's pilot error code as exit status;
``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Dict, List, Optional

from pilotid import __version__
from pilotid.commands import helptext
from pilotid.errors import PilotidError, exit_status

log = logging.getLogger(__name__)

#: The subcommands' modules, in the order ``--help`` lists their commands.
COMMANDS = ("pilotid.commands.run", "pilotid.commands.cleanup", "pilotid.commands.proxy_info",
            "pilotid.commands.policy", "pilotid.commands.myproxy", "pilotid.commands.testca",
            "pilotid.commands.token_info", "pilotid.commands.agent",
            "pilotid.commands.testissuer")
#: The module that adds each subcommand: a command line imports and builds only its own
#: command's (a pilot starts ``pilotid run`` once per job: the others are wasted work).
COMMAND_MODULES = {"run": COMMANDS[0], "probe": COMMANDS[0], "cleanup": COMMANDS[1],
                   "proxy-info": COMMANDS[2], "policy": COMMANDS[3], "myproxy": COMMANDS[4],
                   "testca": COMMANDS[5], "token-info": COMMANDS[6], "agent": COMMANDS[7],
                   "testissuer": COMMANDS[8]}

#: The first lines of ``pilotid --help`` (plain text: argparse shows it as it is).
DESCRIPTION = ("Run a grid pilot's payload under the end user's own Unix identity (gLExec, "
               "sudo or no switch), check a worker node for a queue, and handle the users' "
               "proxies and MyProxy. 'pilotid COMMAND --help' describes each command.")

EXAMPLES = (
    "pilotid probe --queues queues.json --queue ANALY_SUDO --user-dn \"$DN\"",
    "pilotid run --queues queues.json --queue ANALY_SUDO --job job.json --workdir /scratch/job",
    "pilotid proxy-info /tmp/x509up_u$(id -u)",
)


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand, or only with ``command``'s module's
    where ``command`` is one of ``COMMAND_MODULES``."""
    parser = argparse.ArgumentParser(
        prog="pilotid", description=helptext.paragraphs(DESCRIPTION),
        epilog=helptext.epilog(EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pilotid {__version__}")
    parser.add_argument("--debug", action="store_true", help="log debug lines and show tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    module = COMMAND_MODULES.get(command or "")
    for name in (module,) if module is not None else COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def _command_word(argv: List[str]) -> Optional[str]:
    """The subcommand named on ``argv``: its first word that is not an option (the
    top-level options take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Optional[List[str]] = None,
         parsers: Optional[Dict[str, argparse.ArgumentParser]] = None) -> int:
    """Run the command line ``argv``; return the exit status.  ``parsers``: parsers built
    ahead by ``build_parser``, by command word (``pilotid agent`` builds ``run``'s once,
    for all the jobs its children run)."""
    words = sys.argv[1:] if argv is None else list(argv)
    command = _command_word(words)
    parser = (parsers or {}).get(command or "") or build_parser(command)
    # ``command_line`` and ``build_parser``: for ``pilotid agent``, whose children run
    # command lines (the agent stands below the command line and cannot import it)
    args = parser.parse_args(words, argparse.Namespace(command_line=main,
                                                       build_parser=build_parser))
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
