"""``pilotid policy``: build the MyProxy retrieval policy that lets the pilots fetch a proxy."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from pilotid.commands.helptext import command_parser

# The option of `pilotid myproxy store` that sends a policy unchanged as RETRIEVER_TRUSTED.
STORE_POLICY_OPTION = "-Z"


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Add ``policy --pilot-dn DN... [--fqan F] [--max-length N] [--json]`` to ``sub``."""
    policy = command_parser(
        sub, "policy", "build the MyProxy retrieval policy (-Z) that lets the pilots fetch a proxy",
        "Build the trusted-retrieval policy (myproxy-init -x -Z) naming the pilots, by their "
        "DNs (escaped for MyProxy's matching) or by a VOMS FQAN, and check it against a "
        "server's -Z length limit. The policy goes to standard output, how to store with it "
        "to standard error (lines starting with #).", (
            "pilotid policy --pilot-dn \"$PILOT_DN\"",
            "pilotid policy --pilot-dn \"$PILOT_DN\" --fqan /atlas/Role=pilot --max-length 255",
        ))
    policy.add_argument("--pilot-dn", action="append", default=[], metavar="DN",
                        help="a pilot's identity DN in slash form (repeat for several pilots)")
    policy.add_argument("--fqan", metavar="FQAN",
                        help="a VOMS FQAN the pilots' proxies carry, e.g. /atlas/Role=pilot")
    policy.add_argument("--max-length", type=int, metavar="N",
                        help="the server cuts -Z at N characters (255 for old servers); "
                             "default: no limit")
    policy.add_argument("--json", action="store_true", help="print one JSON object")
    policy.set_defaults(handler=policy_command)


def policy_command(args: argparse.Namespace) -> int:
    """Print the chosen policy (stdout) and how to store with it (stderr)."""
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
