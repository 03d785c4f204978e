"""The ``pilotid`` command: ``run | probe | proxy-info | policy | myproxy ...``.

Every failure pilotid foresees ends in one line on stderr and the error's pilot error code
as exit status; ``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
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
    _add_policy_command(sub)
    return parser


# The option of `pilotid myproxy store` that sends a policy unchanged as RETRIEVER_TRUSTED.
STORE_POLICY_OPTION = "-Z"


def _add_policy_command(sub: "argparse._SubParsersAction") -> None:
    policy = sub.add_parser(
        "policy", help="build the MyProxy retrieval policy (-Z) that lets the pilots fetch a proxy",
        description="Build the trusted-retrieval policy (myproxy-init -x -Z) naming the pilots, "
                    "by their DNs (escaped for MyProxy's matching) or by a VOMS FQAN, and check it "
                    "against a server's -Z length limit.")
    policy.add_argument("--pilot-dn", action="append", default=[], metavar="DN",
                        help="a pilot's identity DN in slash form (repeat for several pilots)")
    policy.add_argument("--fqan", metavar="FQAN",
                        help="a VOMS FQAN the pilots' proxies carry, e.g. /atlas/Role=pilot")
    policy.add_argument("--max-length", type=int, metavar="N",
                        help="the server cuts -Z at N characters (255 for old servers); "
                             "default: no limit")
    policy.add_argument("--json", action="store_true", help="print one JSON object")
    policy.set_defaults(handler=_policy_command)


def _policy_command(args: argparse.Namespace) -> int:
    from pilotid.identity import policy as policies

    chosen = policies.choose_policy(args.pilot_dn, args.fqan, args.max_length)
    candidates = policies.policy_candidates(args.pilot_dn, args.fqan)
    store = ["pilotid", "myproxy", "store", STORE_POLICY_OPTION, chosen.text]
    if args.json:
        print(json.dumps({
            **chosen.as_dict(),
            "max_length": args.max_length,
            "candidates": [{**c.as_dict(), "fits": c.fits(args.max_length)} for c in candidates],
            "myproxy_init_args": chosen.myproxy_init_args(),
            "myproxy_init": policies.shell_command(chosen),
            "pilotid_store": " ".join(shlex.quote(p) for p in store),
        }, indent=2))
        return 0
    print(chosen.text)
    limit = f"limit {args.max_length}" if args.max_length else "no length limit"
    print(f"# {chosen.form.upper()} form, {chosen.length} characters ({limit})", file=sys.stderr)
    for other in candidates:
        if other is not chosen and other.form != chosen.form:
            state = "fits too" if other.fits(args.max_length) else "does not fit"
            print(f"# the {other.form.upper()} form is {other.length} characters: {state}",
                  file=sys.stderr)
    print(f"# store with: {policies.shell_command(chosen)} ...", file=sys.stderr)
    print(f"#         or: {' '.join(shlex.quote(p) for p in store)} ...",
          file=sys.stderr)
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
