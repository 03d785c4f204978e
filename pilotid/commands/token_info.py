"""``pilotid token-info``: show a WLCG bearer token, as ``proxy-info`` shows a proxy."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pilotid.commands.helptext import command_parser


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Add ``token-info [FILE] [--json] [--verify --queues F --queue Q]`` to ``sub``."""
    cmd = command_parser(
        sub, "token-info", "show a bearer token: who it is for, issuer, groups, time left",
        "Show a WLCG bearer token's subject, issuer, groups, scopes and time left; with "
        "--verify, check it against a queue's trusted issuers, keys and audiences as a job's "
        "token is checked.  Without FILE the token is found by the WLCG discovery order "
        "(BEARER_TOKEN, BEARER_TOKEN_FILE, $XDG_RUNTIME_DIR/bt_u<uid>, /tmp/bt_u<uid>).  "
        "Exits with the token's error code if it is unusable.", (
            "pilotid token-info",
            "pilotid token-info /tmp/bt_u1000 --json",
            "pilotid token-info --verify --queues queues.json --queue ANALY_TOKENS",
        ))
    cmd.add_argument("file", metavar="FILE", nargs="?",
                     help="the token file (default: found by the discovery order)")
    cmd.add_argument("--json", action="store_true", help="print one JSON object")
    cmd.add_argument("--verify", action="store_true",
                     help="verify the token against --queue's token_issuers and "
                          "token_audiences (offline)")
    cmd.add_argument("--queues", type=Path, help="queue settings file (JSON), for --verify")
    cmd.add_argument("--queue", help="the queue whose trusted issuers --verify uses")
    cmd.set_defaults(handler=token_info_command)


def token_info_command(args: argparse.Namespace) -> int:
    """Print a token (or JSON); 0 if it is still valid (and, with ``--verify``, verifies)."""
    from pilotid.errors import ConfigurationError, TokenError, TokenExpiredError
    from pilotid.identity.proxy import format_time_left
    from pilotid.identity.tokens import discover_token, read_token_file
    from pilotid.identity.tokens.verify import check_required, read_unverified, token_from_claims

    if args.file:
        raw, origin = read_token_file(Path(args.file)) or "", args.file
    else:
        found = discover_token(os.environ, os.geteuid())
        raw, origin = (found.value, found.origin) if found else ("", "discovery")
    if not raw:
        raise TokenError(f"no bearer token in {origin}")
    if args.verify:
        if not (args.queues and args.queue):
            raise ConfigurationError("token-info --verify needs --queues and --queue")
        from pilotid.identity.tokens.settings import build_verifier
        from pilotid.queuefile import load_queue

        token = build_verifier(load_queue(args.queues, args.queue)).verify(raw)
    else:
        header, claims = read_unverified(raw)
        check_required(claims)
        token = token_from_claims(raw.strip(), header, claims)
    left = token.time_left()
    if args.json:
        print(json.dumps({
            "subject": token.subject, "issuer": token.issuer, "groups": list(token.groups),
            "scopes": list(token.scopes), "expires": token.expires.isoformat(),
            "timeleft": int(left.total_seconds()), "algorithm": token.algorithm,
            "key_id": token.key_id, "wlcg_ver": token.version, "path": origin,
            "verified": bool(args.verify)}, indent=2))
    else:
        timeleft = format_time_left(left) + ("  (expired)" if left.total_seconds() <= 0 else "")
        for label, value in (("subject", token.subject), ("issuer", token.issuer),
                             ("groups", " ".join(token.groups) or "-"),
                             ("scopes", " ".join(token.scopes) or "-"),
                             ("algorithm", f"{token.algorithm} (kid {token.key_id or '-'})"),
                             ("verified", "yes" if args.verify else "no (use --verify)"),
                             ("path", origin), ("timeleft", timeleft)):
            print(f"{label:<9}: {value}")
    if left.total_seconds() <= 0:
        raise TokenExpiredError(f"bearer token of {token.identity} has expired")
    return 0
