"""``pilotid proxy-info``: show a proxy file in the spirit of ``grid-proxy-info``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pilotid.commands.helptext import command_parser


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Add ``proxy-info FILE [--json]`` to ``sub``."""
    cmd = command_parser(
        sub, "proxy-info", "show a proxy file as grid-proxy-info does",
        "Show who a proxy file is for, its type, key size, time left and VOMS attributes "
        "(FQANs); exit with the proxy's error code if it is unusable (expired, no key, "
        "not a proxy).", (
            "pilotid proxy-info                      # $X509_USER_PROXY or /tmp/x509up_u<uid>",
            "pilotid proxy-info /home/pilot/proxies/alice.pem --json",
        ))
    cmd.add_argument("file", metavar="FILE", nargs="?",
                     help="the proxy file (default: $X509_USER_PROXY, else /tmp/x509up_u<uid>)")
    cmd.add_argument("--json", action="store_true", help="print one JSON object")
    cmd.set_defaults(handler=proxy_info_command)


def proxy_info_command(args: argparse.Namespace) -> int:
    """Print a proxy in the layout of ``grid-proxy-info -all`` (or JSON); 0 if still valid."""
    from pilotid.identity.default_proxy import proxy_path_from_environment
    from pilotid.identity.proxy import (
        check_lifetime,
        format_time_left,
        parse_proxy,
        read_proxy_file,
    )
    from pilotid.identity.voms import voms_attributes

    # the default proxy is read here, never written
    path = args.file or str(proxy_path_from_environment())
    info = parse_proxy(read_proxy_file(path), Path(path))
    attributes = voms_attributes(info.certificates)
    if args.json:
        print(json.dumps(dict(info.as_dict(), voms=[a.as_dict() for a in attributes]), indent=2))
    else:
        left = info.time_left()
        timeleft = format_time_left(left) + ("  (expired)" if left.total_seconds() <= 0 else "")
        for label, value in (("subject", info.subject), ("issuer", info.issuer),
                             ("identity", info.identity), ("type", info.proxy_type),
                             ("strength", f"{info.key_bits} bits"), ("path", path),
                             ("timeleft", timeleft)):
            print(f"{label:<9}: {value}")
        for ac in attributes:
            print(f"=== VO {ac.vo} extension information ===")
            for fqan in ac.fqans:
                print(f"{'attribute':<9}: {fqan}")
            print(f"{'issuer':<9}: {ac.issuer}")
            print(f"{'timeleft':<9}: {format_time_left(ac.time_left())}")
    check_lifetime(info)
    return 0
