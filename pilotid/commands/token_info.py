"""``pilotid token-info``: show a WLCG bearer token, as ``proxy-info`` shows a proxy."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Optional, Sequence

from pilotid.commands.helptext import command_parser
from pilotid.escaping import printable


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Add ``token-info [FILE] [--json] [--verify] [--queues F --queue Q]`` to ``sub``."""
    cmd = command_parser(
        sub, "token-info", "show a bearer token: who it is for, issuer, groups, time left",
        "Show a WLCG bearer token's subject, issuer, groups, scopes, audience and time left; "
        "with --queues and --queue, whether the queue's token_audiences accept its audience; "
        "with --verify, check it against the queue's trusted issuers, keys and audiences as a "
        "job's token is checked.  Without FILE the token is found by the WLCG discovery order "
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
    cmd.add_argument("--queues", type=Path, help="queue settings file (JSON), with --queue")
    cmd.add_argument("--queue", help="the queue whose token_audiences the token's aud is "
                                     "matched against (and whose issuers --verify uses)")
    cmd.set_defaults(handler=token_info_command)


def token_info_command(args: argparse.Namespace) -> int:
    """Print a token (or JSON); 0 if it is still valid (and, with ``--verify``, verifies;
    with ``--queue``, names an audience the queue accepts)."""
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
    if bool(args.queues) != bool(args.queue) or (args.verify and not args.queue):
        raise ConfigurationError("token-info: --queues and --queue go together "
                                 "(and --verify needs them)")
    verifier = None
    if args.queue:
        from pilotid.identity.tokens.settings import build_verifier
        from pilotid.queuefile import load_queue

        verifier = build_verifier(load_queue(args.queues, args.queue))
    if verifier is not None and args.verify:
        token = verifier.verify(raw)
    else:
        header, claims = read_unverified(raw)
        check_required(claims)
        token = token_from_claims(raw.strip(), header, claims)
    refusal = None
    if verifier is not None:
        try:
            verifier.check_audience(raw)
        except TokenError as error:
            refusal = error
    left = token.time_left()
    if args.json:
        print(json.dumps({
            "subject": token.subject, "issuer": token.issuer, "groups": list(token.groups),
            "scopes": list(token.scopes), "audience": list(token.audiences),
            "expires": token.expires.isoformat(),
            "timeleft": int(left.total_seconds()), "algorithm": token.algorithm,
            "key_id": token.key_id, "wlcg_ver": token.version, "path": origin,
            "verified": bool(args.verify), "queue": args.queue,
            "audience_accepted": None if verifier is None else refusal is None}, indent=2))
    else:
        timeleft = format_time_left(left) + ("  (expired)" if left.total_seconds() <= 0 else "")
        lines = [("subject", token.subject), ("issuer", token.issuer),
                 ("groups", _words(token.groups)), ("scopes", _words(token.scopes)),
                 ("audience", _words(token.audiences)),
                 ("algorithm", f"{token.algorithm} (kid {token.key_id or '-'})"),
                 ("verified", "yes" if args.verify else "no (use --verify)")]
        if verifier is not None:
            lines.append(("queue", _queue_line(args.queue, verifier.audiences, refusal)))
        lines += [("path", origin), ("timeleft", timeleft)]
        for label, value in lines:
            print(f"{label:<9}: {printable(value)}")
    if left.total_seconds() <= 0:
        raise TokenExpiredError(f"bearer token of {token.identity} has expired")
    if refusal is not None:
        raise refusal
    return 0


def _words(values: Sequence[str]) -> str:
    return " ".join(values) or "-"


def _queue_line(queue: str, audiences: Sequence[str], refusal: Optional[Exception]) -> str:
    if refusal is None:
        return f"{queue} accepts this audience ({', '.join(audiences)})"
    return f"{queue} does not accept this audience (it accepts {', '.join(audiences)})"
