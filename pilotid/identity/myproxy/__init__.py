"""MyProxy, as a pilot and a user need it: the client and the modules it composes.

``client`` holds ``MyProxyClient`` (the commands); ``wire`` the MYPROXYv2 wire format;
``channel`` the checked TLS connection and its retries; ``credentials`` the keys, requests
and proxies; ``trustroots`` the CA directory written on disk.  Their public names are
importable from this package, as they were from the single module before it.
"""

from __future__ import annotations

from pilotid.identity.dn import slash_dn
from pilotid.identity.myproxy.channel import (
    DEFAULT_PORT,
    ServerAddress,
    check_server_identity,
    default_ca_dir,
    expected_server_names,
    parse_servers,
)
from pilotid.identity.myproxy.client import DEFAULT_LIFETIME, MyProxyClient
from pilotid.identity.myproxy.credentials import (
    ClientCredential,
    RetrievedProxy,
    certificate_request,
    identity_of,
    is_proxy,
    new_key,
    sign_proxy,
)
from pilotid.identity.myproxy.trustroots import TRUSTROOTS_MARKER, write_trustroots
from pilotid.identity.myproxy.wire import (
    BufferSource,
    ByteSource,
    Command,
    Passphrase,
    Reply,
    ResponseType,
    StoredCredential,
    build_request,
    encode_chain,
    parse_chain,
    parse_info,
    parse_reply,
    parse_trustroots,
    read_chain,
    read_reply,
    redact_request,
)

__all__ = [
    "Command", "ResponseType", "Passphrase", "Reply", "ByteSource", "BufferSource",
    "build_request", "redact_request", "parse_reply", "read_reply", "read_chain",
    "parse_chain", "encode_chain", "parse_info", "parse_trustroots", "ClientCredential",
    "RetrievedProxy", "StoredCredential", "ServerAddress", "parse_servers",
    "check_server_identity", "expected_server_names", "default_ca_dir", "slash_dn",
    "is_proxy", "identity_of", "sign_proxy", "new_key", "certificate_request",
    "MyProxyClient", "write_trustroots", "TRUSTROOTS_MARKER", "DEFAULT_PORT",
    "DEFAULT_LIFETIME",
]
