"""``MyProxyClient``: the MyProxy commands a pilot and a user need, over MYPROXYv2.

GET (trusted retrieval, or with a passphrase), INFO, PUT (delegation, as ``myproxy-init``),
STORE (as ``myproxy-store``), DESTROY and GET_TRUSTROOTS.  The client composes the other
modules of its package: the wire format (``wire``), the credentials and proxies
(``credentials``), the checked TLS connection with its retries (``channel``) and the CA
directory on disk (``trustroots``); the package re-exports their public names.

Errors: a refusal by the server (policy, passphrase, unknown credential) is a
``CredentialRefusedError`` carrying the server's own words; a server that cannot be
reached, does not answer in time, fails TLS or answers nonsense is a
``CredentialServerError``.
"""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

from cryptography import x509

from pilotid.errors import (
    CredentialError,
    CredentialRefusedError,
    CredentialServerError,
    ProxyExpiredError,
)
from pilotid.identity.myproxy.channel import (
    DEFAULT_PORT,
    Channel,
    connect,
    default_ca_dir,
    parse_servers,
)
from pilotid.identity.myproxy.credentials import (
    DEFAULT_KEY_BITS,
    ClientCredential,
    PrivateKey,
    RetrievedProxy,
    certificate_request,
    new_key,
    sign_proxy,
)
from pilotid.identity.myproxy.wire import (
    Command,
    Passphrase,
    Reply,
    ResponseType,
    StoredCredential,
    build_request,
    encode_chain,
    parse_info,
    parse_trustroots,
    read_chain,
    read_der,
    read_reply,
    redact_request,
)

log = logging.getLogger(__name__)

DEFAULT_LIFETIME = 12 * 3600           # what myproxy-logon asks for without -t
DEFAULT_STORED_LIFETIME = 7 * 24 * 3600  # myproxy-init -c default (one week)


class MyProxyClient:
    """A MyProxy client for one server (or a comma-separated list tried in order).

    ``credential`` authenticates the client (a ``ClientCredential``; by default the one
    Globus tools would use, see ``ClientCredential.from_environment``).  ``ca_dir`` is
    the trusted CA directory (default ``X509_CERT_DIR`` and Globus' fall-backs);
    ``server_dn`` pins the server's DN (default ``MYPROXY_SERVER_DN``).  Failures to
    connect are retried ``retries`` times with exponential ``backoff`` (seconds); a
    refusal, a TLS trust failure or a timeout after the request was sent never is.
    ``anonymous`` connects without a client certificate (GET_TRUSTROOTS only).
    """

    def __init__(self, server: str, port: Optional[int] = None,
                 credential: Optional[ClientCredential] = None,
                 ca_dir: Optional[Union[str, Path]] = None, server_dn: Optional[str] = None,
                 connect_timeout: float = 10.0, read_timeout: float = 60.0,
                 retries: int = 2, backoff: float = 0.5,
                 environ: Optional[Mapping[str, str]] = None, anonymous: bool = False) -> None:
        env = os.environ if environ is None else environ
        if port is None:
            port = int(env.get("MYPROXY_SERVER_PORT") or DEFAULT_PORT)
        self.servers = parse_servers(server, port)
        self._credential = credential
        self.anonymous = anonymous
        self._environ = env
        self.ca_dir = Path(ca_dir) if ca_dir else default_ca_dir(env)
        self.server_dn = server_dn if server_dn is not None else env.get("MYPROXY_SERVER_DN")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff

    def __repr__(self) -> str:
        return (f"MyProxyClient({','.join(map(str, self.servers))!r}, "
                f"ca_dir={str(self.ca_dir)!r})")

    # -- credential and exchange
    def credential(self, required: bool = True) -> Optional[ClientCredential]:
        """The client credential (loaded from the environment on first use); None for an
        ``anonymous`` client, which presents no certificate (enough for trust roots)."""
        if self.anonymous:
            if required:
                raise CredentialError("this MyProxy request needs a credential; an anonymous "
                                      "client can only fetch trust roots")
            return None
        if self._credential is None:
            self._credential = ClientCredential.from_environment(self._environ)
        if self._credential is None and required:
            raise CredentialError(
                "no credential to authenticate to the MyProxy server: set X509_USER_PROXY "
                "(or X509_USER_CERT and X509_USER_KEY), or run grid-proxy-init")
        if self._credential is not None and self._credential.not_after <= _utcnow():
            raise ProxyExpiredError(
                f"the credential to authenticate with ({self._credential.origin}) expired at "
                f"{self._credential.not_after:%Y-%m-%d %H:%M} UTC: renew it")
        return self._credential

    def _exchange(self, command: Command, request: bytes, body: Callable[[Channel], object],
                  credential_required: bool = True, what: str = "") -> object:
        credential = self.credential(required=credential_required)
        channel = connect(self.servers, credential, self.ca_dir, self.server_dn,
                          self.connect_timeout, self.read_timeout, self.retries, self.backoff)
        try:
            log.debug("MyProxy %s request to %s:\n%s", command.name, channel.address,
                      redact_request(request))
            channel.send(request)
            return body(channel)
        finally:
            channel.close()

    def _authorize(self, channel: Channel, reply: Reply, passphrase: Optional[Passphrase],
                   what: str) -> Reply:
        """Answer ``RESPONSE=2`` challenges with the passphrase (method ``password``)."""
        for _ in range(4):
            if reply.response is not ResponseType.AUTHORIZATION:
                return reply
            methods = [v.split(":", 1)[0] for v in reply.values("AUTHORIZATION_DATA")]
            if "password" not in methods or not passphrase:
                return reply  # _expect_ok turns it into a clear refusal
            answer = (b"\x01\x00\x00\x00" + passphrase.reveal().encode("utf-8") + b"\0")
            channel.send(answer, "the passphrase")
            reply = read_reply(channel)
        return reply

    def _first_reply(self, channel: Channel, passphrase: Optional[Passphrase],
                     what: str) -> Reply:
        reply = read_reply(channel)
        reply = self._authorize(channel, reply, passphrase, what)
        return self._check(channel, reply, what)

    def _check(self, channel: Channel, reply: Reply, what: str) -> Reply:
        if reply.ok:
            return reply
        if reply.response is ResponseType.ERROR:
            words = "; ".join(line.strip() for line in reply.error.splitlines() if line.strip())
            raise CredentialRefusedError(
                f"MyProxy server {channel.address} refused {what}: "
                f"{words or 'no reason given'}")
        raise CredentialRefusedError(
            f"MyProxy server {channel.address} asks for further authorization "
            f"({', '.join(reply.values('AUTHORIZATION_DATA')) or 'unknown method'}) for {what}, "
            "which this request did not give")

    # -- commands
    def get(self, username: str, credname: Optional[str] = None,
            passphrase: Optional[Passphrase] = None, lifetime: int = DEFAULT_LIFETIME,
            key: Optional[PrivateKey] = None, key_bits: int = DEFAULT_KEY_BITS) -> RetrievedProxy:
        """Retrieve a new proxy of ``username``'s credential ``credname``.

        Without ``passphrase`` this is trusted retrieval: the server lets the client's own
        certificate retrieve it when the credential's ``RETRIEVER_TRUSTED`` policy names it.
        ``key`` may be prepared ahead (``new_key()``); otherwise one of ``key_bits`` is made.
        Raises ``CredentialRefusedError`` with the server's words, or ``CredentialServerError``.
        """
        _require_username(username)
        if lifetime <= 0:
            raise CredentialError(f"a proxy lifetime must be positive, not {lifetime} s")
        what = _describe("the retrieval of", username, credname)
        fields = [("CRED_NAME", credname)] if credname else []
        request = build_request(Command.GET, username, passphrase, lifetime, fields)
        key = key or new_key(key_bits)
        csr = certificate_request(key)

        def body(channel: Channel) -> RetrievedProxy:
            self._first_reply(channel, passphrase, what)
            channel.send(csr, "the certificate request")
            chain = read_chain(channel)
            self._check(channel, read_reply(channel), what)
            return RetrievedProxy.from_chain(chain, key, channel.address)

        proxy = self._exchange(Command.GET, request, body, what=what)
        assert isinstance(proxy, RetrievedProxy)
        log.info("MyProxy: retrieved a proxy of %s from %s (%s left)", proxy.identity,
                 ",".join(map(str, self.servers)), _hours(proxy.time_left()))
        return proxy

    def info(self, username: str, credname: Optional[str] = None) -> List[StoredCredential]:
        """Describe the credentials the client owns under ``username`` (all of them, or
        only ``credname``)."""
        _require_username(username)
        fields = [("CRED_NAME", credname)] if credname else []
        request = build_request(Command.INFO, username, None, 0, fields)
        what = _describe("information on", username, credname)

        def body(channel: Channel) -> List[StoredCredential]:
            return parse_info(self._first_reply(channel, None, what))

        found = self._exchange(Command.INFO, request, body, what=what)
        assert isinstance(found, list)
        if credname:
            found = [c for c in found if c.name == credname]
        return found

    def store(self, username: str, credential: ClientCredential,
              credname: Optional[str] = None, description: Optional[str] = None,
              retriever_trusted: Optional[str] = None, retrievers: Optional[str] = None,
              renewers: Optional[str] = None, lifetime: int = DEFAULT_LIFETIME,
              passphrase: Optional[Passphrase] = None) -> None:
        """STORE ``credential`` (a proxy or a certificate and key) as it is, as
        ``myproxy-store`` does.

        ``lifetime`` is the longest proxy the server will hand out from it;
        ``retriever_trusted`` the policy (regex) of who may retrieve it without a
        passphrase.  With ``passphrase`` the key is stored encrypted with it.
        """
        _require_username(username)
        fields = _policy_fields(credname, description, retrievers, renewers, retriever_trusted)
        request = build_request(Command.STORE, username, passphrase, lifetime, fields)
        what = _describe("storing", username, credname)
        payload = credential.pem(passphrase) + b"\0"

        def body(channel: Channel) -> None:
            self._first_reply(channel, passphrase, what)
            channel.send(payload, "the credential")
            self._check(channel, read_reply(channel), what)

        self._exchange(Command.STORE, request, body, what=what)
        log.info("MyProxy: stored %s for %s (%s)", credential.identity, username,
                 credname or "default credential")

    def put(self, username: str, credname: Optional[str] = None,
            description: Optional[str] = None, retriever_trusted: Optional[str] = None,
            retrievers: Optional[str] = None, renewers: Optional[str] = None,
            lifetime: int = DEFAULT_LIFETIME, stored_lifetime: int = DEFAULT_STORED_LIFETIME,
            passphrase: Optional[Passphrase] = None, limited: bool = False) -> None:
        """PUT a new proxy delegated from the client credential, as ``myproxy-init`` does:
        the server sends a certificate request and the client signs a proxy valid
        ``stored_lifetime`` seconds.  ``lifetime`` is the longest proxy the server will
        hand out from it."""
        _require_username(username)
        fields = _policy_fields(credname, description, retrievers, renewers, retriever_trusted)
        request = build_request(Command.PUT, username, passphrase, lifetime, fields)
        what = _describe("delegation of", username, credname)

        def body(channel: Channel) -> None:
            self._first_reply(channel, passphrase, what)
            csr_der = read_der(channel)
            try:
                csr = x509.load_der_x509_csr(csr_der)
            except ValueError as error:
                raise CredentialServerError(
                    f"MyProxy server {channel.address} sent a certificate request that "
                    f"does not parse: {error}") from None
            if not csr.is_signature_valid:
                raise CredentialServerError(f"MyProxy server {channel.address} sent a "
                                            "certificate request with a bad signature")
            issuer = self.credential()
            assert issuer is not None
            proxy = sign_proxy(issuer, csr.public_key(), stored_lifetime, limited)
            channel.send(encode_chain([proxy, issuer.certificate, *issuer.chain]),
                         "the delegated proxy")
            self._check(channel, read_reply(channel), what)

        self._exchange(Command.PUT, request, body, what=what)
        log.info("MyProxy: delegated a proxy for %s (%s)", username,
                 credname or "default credential")

    def destroy(self, username: str, credname: Optional[str] = None) -> None:
        """DESTROY the client's credential ``credname`` (or the default one) of ``username``."""
        _require_username(username)
        fields = [("CRED_NAME", credname)] if credname else []
        request = build_request(Command.DESTROY, username, None, 0, fields)
        what = _describe("removing", username, credname)
        self._exchange(Command.DESTROY, request,
                       lambda channel: self._first_reply(channel, None, what), what=what)

    def trustroots(self) -> Dict[str, bytes]:
        """GET_TRUSTROOTS: the server's CA directory (``<hash>.0``, ``.signing_policy``,
        CRLs) as ``{file name: contents}``.  Authenticates with the client credential when
        there is one, anonymously otherwise."""
        request = build_request(Command.GET_TRUSTROOTS, "", None, 0, [("TRUSTED_CERTS", "1")])
        what = "the trust roots"

        def body(channel: Channel) -> Dict[str, bytes]:
            return parse_trustroots(self._first_reply(channel, None, what))

        files = self._exchange(Command.GET_TRUSTROOTS, request, body,
                               credential_required=False, what=what)
        assert isinstance(files, dict)
        if not files:
            raise CredentialServerError(
                f"MyProxy server {','.join(map(str, self.servers))} sent no trust roots "
                "(its configuration may lack cert_dir)")
        return files


def _require_username(username: str) -> None:
    if not username:
        raise CredentialError("a MyProxy username is needed (-l, or the owner's DN)")


def _describe(action: str, username: str, credname: Optional[str]) -> str:
    name = f"credential {credname!r}" if credname else "the default credential"
    return f"{action} {name} of {username!r}"


def _policy_fields(credname, description, retrievers, renewers, retriever_trusted
                   ) -> List[Tuple[str, str]]:
    fields = []
    if retrievers:
        fields.append(("RETRIEVER", retrievers))
    if renewers:
        fields.append(("RENEWER", renewers))
    if credname:
        fields.append(("CRED_NAME", credname))
    if description:
        fields.append(("CRED_DESC", description))
    if retriever_trusted:
        fields.append(("RETRIEVER_TRUSTED", retriever_trusted))
    return fields


def _hours(delta: datetime.timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}"


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)

