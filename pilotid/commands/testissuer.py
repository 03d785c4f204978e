"""``pilotid testissuer``: test bearer tokens for a tutorial or a test node, from a
throwaway token issuer (``pilotid.identity.testissuer``).

It writes, into one directory, the issuer's public keys (``issuer.jwks``, for the queue's
``token_issuers``) and for each user a signed WLCG token (``token_<name>``, 0600), and
prints where each is.  The issuer's private key is never written: it is gone when the
command ends.  Real tokens come from the VO's issuer (``htgettoken``, ``oidc-token``);
these are trusted by nothing but a queue that names this ``issuer.jwks``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List

from pilotid.commands.helptext import command_parser

#: The issuer of docs/tutorial.rst, when none is named.
DEFAULT_ISSUER = "https://tokens.example.org/"
#: The WLCG profile's longest access token lifetime, in hours.
MAX_HOURS = 6.0

DESCRIPTION = """\
Make test bearer tokens from a throwaway issuer, for the tutorial or a test node: the
issuer's public keys (DIR/issuer.jwks, for a queue's token_issuers) and for each user
(--user NAME, default alice; NAME is the token's sub) a WLCG token (DIR/token_NAME, mode
0600) with the given groups, audience and lifetime. The issuer's private key is never
written: run the command again, into another directory, for more tokens. Every file is
new: an existing one stops the command before it writes anything. Print where each is.

Real tokens come from your VO's issuer (htgettoken, oidc-token); these are trusted by
nothing but a queue that names DIR/issuer.jwks."""


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Add ``testissuer DIR [--issuer URL] [--user NAME]... [--group G]... [--audience A]
    [--hours H]`` to ``sub``."""
    cmd = command_parser(sub, "testissuer", "make test bearer tokens from a throwaway issuer",
                         DESCRIPTION, (
        "pilotid testissuer ~/tokens",
        "pilotid testissuer ~/tokens --user alice --user bob --group /atlas --hours 2",
    ))
    cmd.add_argument("directory", metavar="DIR", type=Path,
                     help="where to write them (made 0700 if it does not exist)")
    cmd.add_argument("--issuer", metavar="URL", default=DEFAULT_ISSUER,
                     help=f"the issuer's URL, the tokens' iss (default {DEFAULT_ISSUER})")
    cmd.add_argument("--user", action="append", metavar="NAME", default=None,
                     help="a user: the token's sub and file name (repeat for several; "
                          "default alice)")
    cmd.add_argument("--group", action="append", metavar="GROUP", default=[],
                     help="a wlcg.groups entry of every token, in order (repeat for several)")
    cmd.add_argument("--audience", metavar="AUD", default=None,
                     help="the tokens' aud (default the WLCG any-service value)")
    cmd.add_argument("--hours", type=float, default=1.0,
                     help=f"lifetime of the tokens in hours (default 1, at most {MAX_HOURS:g})")
    cmd.set_defaults(handler=testissuer_command)


def testissuer_command(args: argparse.Namespace) -> int:
    """Write the issuer's keys and the users' tokens; print their paths."""
    from pilotid.errors import ConfigurationError, CredentialError
    from pilotid.identity.credfile import write_private
    from pilotid.identity.testissuer import TestIssuer
    from pilotid.identity.tokens import ANY_AUDIENCE

    users: List[str] = args.user or ["alice"]
    if len(set(users)) != len(users) or any(not u or "/" in u or u.startswith(".")
                                            for u in users):
        raise ConfigurationError(f"user names must be distinct plain file names: "
                                 f"{', '.join(users)}")
    if not 0 < args.hours <= MAX_HOURS:
        raise ConfigurationError(f"--hours {args.hours:g}: WLCG access tokens live at most "
                                 f"{MAX_HOURS:g} hours")
    directory = args.directory.absolute()
    planned = [directory / "issuer.jwks"] + [directory / f"token_{u}" for u in users]
    existing = [p for p in planned if p.exists() or p.is_symlink()]
    if existing:
        raise CredentialError(f"{existing[0]} exists already: testissuer writes new files "
                              "only (remove them, or give another directory)")
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise CredentialError(f"cannot make {directory}: {error.strerror}") from error
    issuer = TestIssuer(args.issuer, "ES256")
    audience = args.audience or ANY_AUDIENCE
    keys = issuer.write_jwks(planned[0])
    print(f"issuer: {issuer.url} {keys}  (its public keys, for token_issuers)")
    for user, path in zip(users, planned[1:]):
        raw = issuer.token(user, lifetime=args.hours * 3600, groups=args.group, aud=audience)
        write_private(path, raw.encode("ascii") + b"\n")
        print(f"{user}: {path}  (token of sub {user}, aud {audience}, {args.hours:g} h)")
    return 0
