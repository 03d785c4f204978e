"""``pilotid testca``: test credentials for a tutorial or a test node, from a throwaway CA.

It writes, into one directory, the CA in hashed form (``certificates/``, for
``X509_CERT_DIR``), then for each user and for the pilot a certificate and key
(``<name>.pem``, ``<name>.key``) and a proxy (``x509up_<name>``, 0600), optionally a host
certificate (``hostcert.pem``, ``hostkey.pem``) for a test server such as the MyProxy lab's
(``examples/myproxy-lab.sh``), and prints where each is.  The real way is a certificate
from your grid CA and ``grid-proxy-init``; these are for trying pilotid out, never for
anything else (``pilotid.identity.testca``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Sequence, Tuple

from pilotid.commands.helptext import command_parser

#: The users of docs/tutorial.rst, when none is named.
DEFAULT_USER = ("alice", "/DC=org/DC=example/OU=People/CN=Alice Analyst 1234")
DEFAULT_PILOT_DN = "/DC=org/DC=example/OU=Robots/CN=Pilot Robot 99"

DESCRIPTION = """\
Make test credentials from a throwaway CA, for the tutorial or a test node: the CA
(DIR/certificates, for X509_CERT_DIR), and for each user (--user NAME DN, default alice)
and for the pilot a certificate and key (NAME.pem, NAME.key) and a proxy (x509up_NAME,
mode 0600); with --host NAME also a host certificate for a test server
(hostcert.pem, hostkey.pem). Every file is new: an existing one stops the command before it writes
anything. Print where each is.

With a real grid certificate you would make the proxy with grid-proxy-init (or
voms-proxy-init) instead; these credentials are trusted by nothing but pilotid pointed at
DIR/certificates."""


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Add ``testca DIR [--user NAME DN]... [--pilot-dn DN] [--hours H]`` to ``sub``."""
    cmd = command_parser(sub, "testca", "make test credentials: a throwaway CA, proxies",
                         DESCRIPTION, (
        "pilotid testca ~/proxies",
        "pilotid testca ~/proxies --user alice \"$ALICE_DN\" --user bob \"$BOB_DN\" --hours 48",
    ))
    cmd.add_argument("directory", metavar="DIR", type=Path,
                     help="where to write them (made 0700 if it does not exist)")
    cmd.add_argument("--user", nargs=2, action="append", metavar=("NAME", "DN"), default=None,
                     help="a user: a file name and the DN in slash form (repeat for several; "
                          f"default: {DEFAULT_USER[0]} {DEFAULT_USER[1]})")
    cmd.add_argument("--pilot-dn", metavar="DN", default=DEFAULT_PILOT_DN,
                     help=f"the pilot's DN (default {DEFAULT_PILOT_DN})")
    cmd.add_argument("--host", metavar="NAME", default=None,
                     help="also a host certificate /CN=NAME for a server on host NAME")
    cmd.add_argument("--hours", type=float, default=12.0,
                     help="lifetime of the proxies in hours (default 12; certificates: 7 days)")
    cmd.set_defaults(handler=testca_command)


def planned_files(directory: Path, names: Sequence[str]) -> List[Path]:
    """Every file ``testca`` writes into ``directory`` for the identities ``names``."""
    return [directory / f"{stem}{suffix}" for name in names
            for stem, suffix in ((name, ".pem"), (name, ".key"), (f"x509up_{name}", ""))]


def testca_command(args: argparse.Namespace) -> int:
    """Write the CA, the users' and the pilot's credentials; print their paths."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    from pilotid.errors import ConfigurationError, CredentialError
    from pilotid.identity.credfile import write_private
    from pilotid.identity.testca import TestCA, make_proxy

    identities: List[Tuple[str, str]] = [tuple(u) for u in (args.user or [DEFAULT_USER])]
    identities.append(("pilot", args.pilot_dn))
    names = [name for name, _ in identities]
    if len(set(names)) != len(names) or any(not n or "/" in n or n.startswith(".")
                                            for n in names):
        raise ConfigurationError(f"user names must be distinct plain file names other than "
                                 f"'pilot': {', '.join(names)}")
    directory = args.directory.absolute()
    hosts = [directory / "hostcert.pem", directory / "hostkey.pem"] if args.host else []
    existing = [p for p in planned_files(directory, names) + hosts + [directory / "certificates"]
                if p.exists() or p.is_symlink()]
    if existing:
        raise CredentialError(f"{existing[0]} exists already: testca writes new files only "
                              "(remove them, or give another directory)")
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise CredentialError(f"cannot make {directory}: {error.strerror}") from error
    ca = TestCA()
    trust = ca.write_trust_dir(directory / "certificates")
    print(f"certificates: {trust}  (the test CA: export X509_CERT_DIR={trust})")
    for name, dn in identities:
        identity = ca.issue(dn)
        cert, key = identity.write(directory, name)
        proxy = write_private(directory / f"x509up_{name}",
                              make_proxy(identity, hours=args.hours))
        print(f"{name}: {proxy}  (proxy of {dn}, {args.hours:g} h)")
        print(f"{name}: {cert} {key}  (certificate and key, 7 days)")
    if args.host:
        host = ca.issue(f"/CN={args.host}", server_name=args.host)
        cert = directory / "hostcert.pem"
        cert.write_bytes(host.certificate.public_bytes(Encoding.PEM))
        key = write_private(directory / "hostkey.pem", host.key.private_bytes(
            Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption()))
        print(f"host: {cert} {key}  (host certificate of /CN={args.host} and its key, 7 days)")
    return 0
