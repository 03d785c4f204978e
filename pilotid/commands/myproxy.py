"""``pilotid myproxy get|info|store|destroy|trustroots``: a MyProxy client command line.

Options follow ``myproxy-logon``/``myproxy-info``/``myproxy-init``/``myproxy-store``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import stat
import sys
from pathlib import Path

from pilotid.commands.helptext import command_parser


def add_parser(sub) -> None:
    """``pilotid myproxy get|info|store|destroy|trustroots``, with myproxy-logon's options."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-s", "--server", "--pshost", default=os.environ.get("MYPROXY_SERVER"),
                        help="MyProxy server, host[:port][,host...] (default $MYPROXY_SERVER)")
    common.add_argument("-p", "--port", "--psport", type=int, default=None,
                        help="port (default $MYPROXY_SERVER_PORT or 7512)")
    common.add_argument("--server-dn", default=None,
                        help="the server's DN, if not /CN=<host> (default $MYPROXY_SERVER_DN)")
    common.add_argument("--ca-dir", type=Path, default=None,
                        help="trusted CA directory (default $X509_CERT_DIR, then Globus' default)")
    common.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for each answer (default 60)")
    common.add_argument("--retries", type=int, default=2,
                        help="extra connection attempts when the server cannot be reached")
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    owner = argparse.ArgumentParser(add_help=False)
    owner.add_argument("-l", "--username", default=None,
                       help="MyProxy username (default $LOGNAME)")
    owner.add_argument("-d", "--dn_as_username", action="store_true",
                       help="use the DN of the credential in use as the username")
    owner.add_argument("-k", "--credname", default=None, help="credential name")

    myproxy = command_parser(
        sub, "myproxy", "talk to a MyProxy server (get, info, store, ...)",
        "A MyProxy client with the options of the myproxy-* commands: retrieve a proxy "
        "(get), delegate or store one (store), describe (info) or remove (destroy) what is "
        "stored, fetch the server's CA certificates (trustroots). 'pilotid myproxy VERB "
        "--help' describes each.", (
            "pilotid myproxy get -s myproxy.example.org -l \"$DN\" -k CREDNAME -o proxy.pem",
            "pilotid myproxy store -s myproxy.example.org -d -x -Z \"$(pilotid policy "
            "--pilot-dn \"$PILOT_DN\")\"",
        ))
    verbs = myproxy.add_subparsers(dest="myproxy_command", metavar="VERB")
    verbs.required = True

    get = command_parser(
        verbs, "get", "retrieve a proxy (as myproxy-logon)",
        "Retrieve a new proxy of a stored credential, as myproxy-logon does: with your own "
        "proxy (a pilot's trusted retrieval, no passphrase) or a passphrase on standard "
        "input (-S). The proxy is written as a new 0600 file.", (
            "pilotid myproxy get -s myproxy.example.org -l \"$DN\" -k CREDNAME -o proxy.pem",
            "echo \"$PASS\" | pilotid myproxy get -s myproxy.example.org -l alice -S -t 2",
        ), parents=[common, owner])
    get.add_argument("-t", "--proxy_lifetime", "--lifetime", type=float, default=12.0,
                     metavar="HOURS", help="lifetime of the proxy in hours (default 12)")
    get.add_argument("-o", "--out", default=None,
                     help="where to write it (default $X509_USER_PROXY or /tmp/x509up_u<uid>;"
                          " - for stdout)")
    get.add_argument("-S", "--stdin_pass", action="store_true",
                     help="read the credential's passphrase from stdin")
    get.add_argument("-n", "--no_passphrase", action="store_true",
                     help="trusted retrieval, no passphrase (the default)")
    get.add_argument("--bits", type=int, default=2048, help="key size of the new proxy")
    get.set_defaults(handler=_myproxy_get)

    info = command_parser(
        verbs, "info", "describe your stored credentials (as myproxy-info)",
        "List the credentials stored under a username with their names, owners, lifetimes "
        "and retrieval policies, as myproxy-info does.", (
            "pilotid myproxy info -s myproxy.example.org -d",
        ), parents=[common, owner])
    info.set_defaults(handler=_myproxy_info)

    store = command_parser(
        verbs, "store", "delegate (as myproxy-init) or store (as myproxy-store)",
        "Delegate a new proxy of your credential to the server (myproxy-init), or store the "
        "credential itself (--as-is, myproxy-store), with a retrieval policy (-Z, made by "
        "'pilotid policy') naming the pilots that may fetch it without a passphrase.", (
            "pilotid myproxy store -s myproxy.example.org -d -x -Z \"$(pilotid policy "
            "--pilot-dn \"$PILOT_DN\")\"",
            "pilotid myproxy store -s myproxy.example.org -l alice -k analysis -c 72 -t 12",
        ), parents=[common, owner])
    store.add_argument("-t", "--proxy_lifetime", "--lifetime", type=float, default=12.0,
                       metavar="HOURS",
                       help="longest proxy the server may hand out from it (default 12)")
    store.add_argument("-c", "--cred_lifetime", type=float, default=168.0, metavar="HOURS",
                       help="lifetime of the delegated credential (default 168)")
    store.add_argument("-C", "--certfile", type=Path, default=None,
                       help="certificate (or proxy) file to use instead of the default")
    store.add_argument("-y", "--keyfile", type=Path, default=None,
                       help="its key file (when not in the certificate file)")
    store.add_argument("--as-is", action="store_true",
                       help="store the credential itself (myproxy-store) instead of "
                            "delegating a new proxy of it (myproxy-init)")
    store.add_argument("-Z", "--retrievable_by_cert", default=None, metavar="POLICY",
                       help="who may retrieve it without a passphrase (regex of DNs, or "
                            "FQAN:<fqan>)")
    store.add_argument("-x", "--regex_dn_match", action="store_true",
                       help="-Z is a full DN regular expression (the default)")
    store.add_argument("-X", "--match_cn_only", action="store_true",
                       help="-Z gives a CN only (sent as */CN=<value>)")
    store.add_argument("-K", "--creddesc", default=None, help="credential description")
    store.add_argument("-S", "--stdin_pass", action="store_true",
                       help="read a passphrase protecting the stored credential from stdin")
    store.set_defaults(handler=_myproxy_store)

    destroy = command_parser(
        verbs, "destroy", "remove a stored credential (as myproxy-destroy)",
        "Remove a stored credential from the server, as myproxy-destroy does.", (
            "pilotid myproxy destroy -s myproxy.example.org -d -k analysis",
        ), parents=[common, owner])
    destroy.set_defaults(handler=_myproxy_destroy)

    roots = command_parser(
        verbs, "trustroots", "fetch the server's CA directory (as myproxy-get-trustroots)",
        "Fetch the CA certificates and CRLs the server trusts into a directory, replaced "
        "atomically, as myproxy-get-trustroots does.", (
            "pilotid myproxy trustroots -s myproxy.example.org -o ~/.globus/certificates",
        ), parents=[common])
    roots.add_argument("-o", "--out", type=Path, required=True, metavar="DIR",
                       help="directory to write (replaced atomically)")
    roots.add_argument("--force", action="store_true",
                       help="replace DIR even if pilotid did not write it")
    roots.add_argument("--anonymous", action="store_true",
                       help="do not present a certificate")
    roots.set_defaults(handler=_myproxy_trustroots)


def _myproxy_client(args: argparse.Namespace, credential=None, anonymous: bool = False):
    from pilotid.errors import CredentialError
    from pilotid.identity.myproxy import MyProxyClient

    if not args.server:
        raise CredentialError("no MyProxy server: give -s HOST or set MYPROXY_SERVER")
    return MyProxyClient(args.server, args.port, credential=credential,
                         ca_dir=args.ca_dir, server_dn=args.server_dn,
                         read_timeout=args.timeout, retries=args.retries, anonymous=anonymous)


def _username(args: argparse.Namespace, client) -> str:
    from pilotid.errors import CredentialError

    if args.dn_as_username:
        return client.credential().identity
    name = args.username or os.environ.get("LOGNAME") or os.environ.get("USER")
    if not name:
        raise CredentialError("no MyProxy username: give -l NAME (or -d for your DN)")
    return name


def _passphrase(args: argparse.Namespace):
    from pilotid.errors import CredentialError
    from pilotid.identity.myproxy import Passphrase

    if not getattr(args, "stdin_pass", False):
        return None
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise CredentialError("-S given but no passphrase on stdin")
    return Passphrase(line)


def _hours(value: float) -> int:
    from pilotid.errors import CredentialError

    if value <= 0:
        raise CredentialError(f"a lifetime must be positive, not {value} hours")
    return int(value * 3600)


def _emit(args: argparse.Namespace, data: dict, text: str) -> None:
    if args.json:
        print(json.dumps(data, sort_keys=True))
    elif text:
        print(text)


def _myproxy_get(args: argparse.Namespace) -> int:
    from pilotid.errors import CredentialError
    from pilotid.identity.default_proxy import proxy_path_from_environment
    from pilotid.identity.proxy import format_time_left

    client = _myproxy_client(args)
    username = _username(args, client)
    out = args.out or str(proxy_path_from_environment())
    own = client.credential()
    if out != "-":
        _check_proxy_target(Path(out))
        if own is not None and own.path is not None and os.path.exists(out) \
                and os.path.samefile(out, own.path):
            raise CredentialError(f"refusing to write the retrieved proxy over {out}: that is "
                                  "the credential this request authenticates with (give -o)")
    proxy = client.get(username, args.credname, passphrase=_passphrase(args),
                       lifetime=_hours(args.proxy_lifetime), key_bits=args.bits)
    if out == "-":
        sys.stdout.buffer.write(proxy.pem())
        sys.stdout.flush()
        return 0
    path = _write_proxy(Path(out), proxy)
    data = {"path": str(path), "identity": proxy.identity, "subject": proxy.subject,
            "not_after": proxy.not_after.isoformat(),
            "time_left": int(proxy.time_left().total_seconds()),
            "server": args.server, "username": username, "credname": args.credname}
    _emit(args, data, f"A credential has been received for user {username} in {path} "
                      f"({proxy.identity}, {format_time_left(proxy.time_left())} left).")
    return 0


def _check_proxy_target(path: Path) -> bool:
    """True when ``path`` exists and may be replaced (a regular file of ours); False when it
    does not exist; ``CredentialError`` for anything else there: a device such as
    /dev/null, a link, a directory, someone else's file."""
    from pilotid.errors import CredentialError

    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        raise CredentialError(f"refusing to replace {path}: it is not a regular file of "
                              f"uid {os.geteuid()} (choose another -o)")
    return True


def _write_proxy(path: Path, proxy) -> Path:
    """Write the proxy 0600 at ``path``, a new file or by rename over a file of ours."""
    from pilotid.errors import CredentialError
    from pilotid.identity.credfile import write_private

    if not _check_proxy_target(path):
        return write_private(path, proxy.pem())
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    write_private(staging, proxy.pem())
    try:
        os.replace(staging, path)
    except OSError as error:
        staging.unlink(missing_ok=True)
        raise CredentialError(f"cannot replace {path}: {error.strerror}") from None
    return path


def _myproxy_info(args: argparse.Namespace) -> int:
    from pilotid.identity.proxy import format_time_left

    client = _myproxy_client(args)
    username = _username(args, client)
    found = client.info(username, args.credname)
    if args.json:
        print(json.dumps({"username": username, "server": args.server,
                          "credentials": [c.as_dict() for c in found]}, sort_keys=True))
        return 0
    print(f"username: {username}")
    for cred in found:
        print(f"name: {cred.name}" if cred.name else "default credential")
        print(f"  owner: {cred.owner}")
        if cred.description:
            print(f"  description: {cred.description}")
        if cred.retriever_trusted:
            print(f"  trusted retrieval policy: {cred.retriever_trusted}")
        if cred.retrievers:
            print(f"  retrieval policy: {cred.retrievers}")
        if cred.renewers:
            print(f"  renewal policy: {cred.renewers}")
        print(f"  timeleft: {format_time_left(cred.time_left())}"
              f"  (until {cred.end:%Y-%m-%d %H:%M} UTC)")
    return 0


def _myproxy_store(args: argparse.Namespace) -> int:
    from pilotid.identity.myproxy import ClientCredential

    credential = ClientCredential.load(args.certfile, args.keyfile) if args.certfile else None
    client = _myproxy_client(args, credential=credential)
    username = _username(args, client)
    policy = args.retrievable_by_cert
    if policy and args.match_cn_only and not policy.startswith("FQAN:"):
        policy = f"*/CN={policy}"
    passphrase = _passphrase(args)
    options = dict(credname=args.credname, description=args.creddesc,
                   retriever_trusted=policy, lifetime=_hours(args.proxy_lifetime),
                   passphrase=passphrase)
    if args.as_is:
        client.store(username, client.credential(), **options)
        action = "stored"
    else:
        client.put(username, stored_lifetime=_hours(args.cred_lifetime), **options)
        action = "delegated"
    own = client.credential()
    _emit(args, {"action": action, "username": username, "credname": args.credname,
                 "identity": own.identity, "retriever_trusted": policy, "server": args.server},
          f"A proxy of {own.identity} was {action} to {args.server} for user {username}"
          + (f" as {args.credname!r}" if args.credname else "") + ".")
    return 0


def _myproxy_destroy(args: argparse.Namespace) -> int:
    client = _myproxy_client(args)
    username = _username(args, client)
    client.destroy(username, args.credname)
    _emit(args, {"destroyed": True, "username": username, "credname": args.credname},
          f"MyProxy credential {args.credname or '(default)'} of {username} was destroyed.")
    return 0


def _myproxy_trustroots(args: argparse.Namespace) -> int:
    from pilotid.identity.myproxy import write_trustroots

    client = _myproxy_client(args, anonymous=args.anonymous)
    files = client.trustroots()
    target = write_trustroots(files, args.out, force=args.force)
    _emit(args, {"directory": str(target), "files": sorted(files)},
          f"{len(files)} trust root files written to {target}.")
    return 0
