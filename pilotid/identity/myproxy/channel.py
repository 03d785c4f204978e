"""The TLS connection to a MyProxy server, and the checks that it is the right server.

``connect`` opens an authenticated ``Channel`` (pyOpenSSL): the client presents its
certificate and whole chain, verifies the server against the CA directory
(``default_ca_dir``: ``X509_CERT_DIR`` and Globus' fall-backs) and checks the server's
identity as MyProxy clients do (``check_server_identity``: the DN, ``MYPROXY_SERVER_DN``,
or a subjectAltName).  Connection-level failures are retried with backoff; a TLS trust
failure, a wrong identity or anything after the connection is up never is.  Every wait has
a deadline, and every failure is a ``CredentialServerError`` that says what to fix.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import select
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, List, Mapping, Optional, Sequence, Tuple

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

from pilotid.errors import CredentialError, CredentialServerError
from pilotid.identity.dn import normalise_dn, slash_dn
from pilotid.identity.myproxy.wire import ByteSource

if TYPE_CHECKING:
    from pilotid.identity.myproxy.credentials import ClientCredential

log = logging.getLogger(__name__)

DEFAULT_PORT = 7512

VerifyLog = List[Tuple[int, int, str, str]]


def default_ca_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    """The trusted CA directory Globus tools use: ``X509_CERT_DIR``, else
    ``~/.globus/certificates`` if it exists, else ``/etc/grid-security/certificates``."""
    env = os.environ if environ is None else environ
    if env.get("X509_CERT_DIR"):
        return Path(env["X509_CERT_DIR"])
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    if os.geteuid() != 0 and (home / ".globus/certificates").is_dir():
        return home / ".globus/certificates"
    return Path("/etc/grid-security/certificates")


_VERIFY_REASONS = {
    2: "unable to get the issuer certificate",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in the chain",
    20: "unable to get the local issuer certificate",
    21: "unable to verify the first certificate",
    24: "invalid CA certificate",
    26: "unsupported certificate purpose",
}


class _TransientFailure(Exception):
    """A connection-level failure worth another try (never a refusal, never TLS trust)."""


@dataclass(frozen=True)
class ServerAddress:
    """One MyProxy server: ``host`` and ``port``."""

    host: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_servers(spec: str, port: int = DEFAULT_PORT) -> List[ServerAddress]:
    """``host``, ``host:port`` or a comma-separated list of them, as ``MYPROXY_SERVER``."""
    servers = []
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        host, item_port = item, port
        if item.startswith("["):  # [IPv6]:port
            host, _, rest = item[1:].partition("]")
            if rest.startswith(":"):
                item_port = _port(rest[1:], item)
        elif item.count(":") == 1:
            host, _, text = item.partition(":")
            item_port = _port(text, item)
        servers.append(ServerAddress(host, item_port))
    if not servers:
        raise CredentialError(f"no MyProxy server in {spec!r}: give host or host:port")
    return servers


def _port(text: str, item: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise CredentialError(f"bad port in MyProxy server {item!r}")
    return int(text)


def expected_server_names(host: str) -> Tuple[str, ...]:
    """The last-CN values a server's certificate may carry for ``host``."""
    host = host.lower().rstrip(".")
    return (host, f"host/{host}", f"myproxy/{host}")


def _dns_match(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern == host:
        return True
    if pattern.startswith("*.") and "." in host:
        return host.split(".", 1)[1] == pattern[2:] and pattern.count(".") >= 2
    return False


def check_server_identity(certificate: x509.Certificate, host: str,
                          server_dn: Optional[str] = None) -> None:
    """Accept the server's certificate for ``host`` as MyProxy clients do, or raise.

    With ``server_dn`` (``MYPROXY_SERVER_DN``) the subject must be exactly that DN.
    Otherwise the last CN must be ``<host>``, ``host/<host>`` or ``myproxy/<host>``, or a
    subjectAltName DNS entry (or IP address) must match ``host``.
    """
    subject = slash_dn(certificate.subject)
    if server_dn:
        if subject == normalise_dn(server_dn.strip()):
            return
        raise CredentialServerError(
            f"MyProxy server {host} presents {subject}, not the expected "
            f"MYPROXY_SERVER_DN {server_dn}; if that identity is acceptable, set "
            f"MYPROXY_SERVER_DN=\"{subject}\"")
    cns = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns and str(cns[-1].value).lower() in expected_server_names(host):
        return
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        if any(_dns_match(name, host) for name in san.get_values_for_type(x509.DNSName)):
            return
        try:
            address = ipaddress.ip_address(host.strip("[]"))
            if address in san.get_values_for_type(x509.IPAddress):
                return
        except ValueError:
            pass
    raise CredentialServerError(
        f"MyProxy server {host} presents {subject}, which is not /CN={host}, "
        f"/CN=host/{host} or /CN=myproxy/{host} and has no subjectAltName for {host}; "
        f"if that identity is acceptable, set MYPROXY_SERVER_DN=\"{subject}\"")


class Channel(ByteSource):
    """One authenticated TLS connection to a MyProxy server, with timeouts on every wait."""

    def __init__(self, address: ServerAddress, context: SSL.Context, read_timeout: float,
                 verify_log: List[Tuple[int, int, str, str]], ca_dir: Path) -> None:
        self.address = address
        self.ca_dir = ca_dir
        self.read_timeout = read_timeout
        self._buffer = bytearray()
        self._verify_log = verify_log
        self._sock: Optional[socket.socket] = None
        self._conn: Optional[SSL.Connection] = None
        self._context = context

    # -- set-up
    def open(self, connect_timeout: float) -> None:
        """Connect and do the TLS handshake; raises ``_TransientFailure`` or a pilotid error."""
        try:
            sock = socket.create_connection((self.address.host, self.address.port),
                                            timeout=connect_timeout)
        except socket.gaierror as error:
            raise _TransientFailure(f"cannot resolve MyProxy server {self.address.host}: "
                                    f"{error.strerror}") from None
        except socket.timeout:
            raise _TransientFailure(f"MyProxy server {self.address} did not accept a "
                                    f"connection within {connect_timeout:g} s") from None
        except OSError as error:
            raise _TransientFailure(f"cannot connect to MyProxy server {self.address}: "
                                    f"{error.strerror or error}") from None
        sock.setblocking(False)
        self._sock = sock
        conn = SSL.Connection(self._context, sock)
        conn.set_connect_state()
        if not _is_ip(self.address.host):
            conn.set_tlsext_host_name(self.address.host.encode("idna"))
        self._conn = conn
        self._io(conn.do_handshake, "the TLS handshake", handshake=True)

    def close(self) -> None:
        """Close the connection (no close_notify wait: the server does not send one)."""
        if self._conn is not None:
            try:
                self._conn.shutdown()
            except SSL.Error:
                pass
        if self._sock is not None:
            self._sock.close()
        self._conn = self._sock = None

    def peer_certificate(self) -> x509.Certificate:
        """The server's certificate (after the handshake)."""
        assert self._conn is not None
        cert = self._conn.get_peer_certificate(as_cryptography=True)
        if cert is None:  # pragma: no cover - VERIFY_PEER makes this impossible
            raise CredentialServerError(f"MyProxy server {self.address} sent no certificate")
        return cert

    # -- I/O with deadlines
    def _io(self, operation: Callable, what: str, handshake: bool = False):
        assert self._sock is not None
        while True:
            try:
                return operation()
            except SSL.WantReadError:
                self._wait(readable=True, what=what, handshake=handshake)
            except SSL.WantWriteError:
                self._wait(readable=False, what=what, handshake=handshake)
            except SSL.ZeroReturnError:
                raise self._closed(what, handshake) from None
            except SSL.SysCallError as error:
                code = error.args[0] if error.args else -1
                if code in (-1, 0, errno.ECONNRESET, errno.EPIPE):
                    raise self._closed(what, handshake) from None
                raise CredentialServerError(
                    f"connection to MyProxy server {self.address} failed during {what}: "
                    f"{os.strerror(code) if code > 0 else error}") from None
            except SSL.Error as error:
                raise self._tls_error(error, what, handshake) from None
            except OSError as error:
                if handshake:
                    raise _TransientFailure(f"connection to MyProxy server {self.address} "
                                            f"failed during {what}: {error.strerror}") from None
                raise CredentialServerError(f"connection to MyProxy server {self.address} "
                                            f"failed during {what}: {error.strerror}") from None

    def _wait(self, readable: bool, what: str, handshake: bool) -> None:
        assert self._sock is not None
        rlist, wlist = ([self._sock], []) if readable else ([], [self._sock])
        ready = select.select(rlist, wlist, [], self.read_timeout)
        if not any(ready):
            message = (f"MyProxy server {self.address} did not answer within "
                       f"{self.read_timeout:g} s during {what}")
            raise CredentialServerError(message)

    def _closed(self, what: str, handshake: bool) -> Exception:
        message = f"MyProxy server {self.address} closed the connection during {what}"
        if handshake:
            return _TransientFailure(message)
        return CredentialServerError(message + " (truncated reply; see the server's log)")

    def _tls_error(self, error: SSL.Error, what: str, handshake: bool) -> Exception:
        reasons = _ssl_reasons(error)
        if "certificate verify failed" in reasons:
            return CredentialServerError(self._verify_message())
        if "alert" in reasons:
            return CredentialServerError(
                f"MyProxy server {self.address} rejected the TLS connection during {what} "
                f"({reasons}): check that it trusts the CA of your certificate and that "
                "your proxy is valid")
        return CredentialServerError(
            f"TLS error with MyProxy server {self.address} during {what}: {reasons}")

    def _verify_message(self) -> str:
        detail = ""
        if self._verify_log:
            code, depth, subject, issuer = self._verify_log[0]
            reason = _VERIFY_REASONS.get(code, f"verify error {code}")
            detail = f" ({reason}: {subject}, issued by {issuer})"
        return (f"cannot verify the certificate of MyProxy server {self.address}{detail} "
                f"against the CA directory {self.ca_dir}: install the CA that issued it there "
                "(<hash>.0 and .signing_policy), or set X509_CERT_DIR to a directory "
                "that has it")

    def send(self, data: bytes, what: str = "the request") -> None:
        """Send all of ``data``."""
        assert self._conn is not None
        view = memoryview(data)
        conn = self._conn
        while view:
            chunk = view[:16384]
            sent = self._io(lambda chunk=chunk: conn.send(chunk), what)
            view = view[sent:]

    def _fill(self, what: str) -> None:
        assert self._conn is not None
        chunk = self._io(lambda: self._conn.recv(65536), what)  # type: ignore[union-attr]
        if not chunk:
            raise self._closed(what, False)
        self._buffer.extend(chunk)

    def read_exact(self, count: int, what: str = "the reply") -> bytes:
        """Return exactly ``count`` bytes from the server."""
        while len(self._buffer) < count:
            self._fill(what)
        chunk = bytes(self._buffer[:count])
        del self._buffer[:count]
        return chunk

    def read_until_nul(self, limit: int, what: str = "the reply") -> bytes:
        """Return the server's bytes up to and including the next NUL."""
        start = 0
        while True:
            end = self._buffer.find(b"\0", start)
            if end >= 0:
                chunk = bytes(self._buffer[:end + 1])
                del self._buffer[:end + 1]
                return chunk
            if len(self._buffer) > limit:
                raise CredentialServerError(f"MyProxy server {self.address} sent a reply "
                                            f"longer than {limit} bytes")
            start = len(self._buffer)
            self._fill(what)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def _ssl_reasons(error: SSL.Error) -> str:
    parts = []
    for item in (error.args[0] if error.args and isinstance(error.args[0], list) else []):
        if isinstance(item, tuple) and item:
            parts.append(str(item[-1]))
    return "; ".join(parts) or str(error)


def client_context(ca_dir: Path, credential: Optional["ClientCredential"],
                   verify_log: VerifyLog) -> SSL.Context:
    """The TLS context of one connection: the client's certificate, key and chain (none for
    an anonymous client), the CA directory to verify the server against, proxies allowed.
    Verification failures are recorded in ``verify_log`` for the error message."""
    if not ca_dir.is_dir():
        raise CredentialServerError(
            f"the CA directory {ca_dir} does not exist: set X509_CERT_DIR to the "
            "directory with the grid CAs (or install them there)")
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION)
    if credential is not None:
        try:
            context.use_certificate(credential.certificate)
            context.use_privatekey(credential.key)
            for certificate in credential.chain:
                context.add_extra_chain_cert(certificate)
        except SSL.Error as error:  # OpenSSL's own policy, e.g. a key it finds too small
            raise CredentialError(
                f"OpenSSL refuses the credential to authenticate with "
                f"({credential.origin}) for TLS: {_ssl_reasons(error)}; use a proxy that "
                "meets this node's OpenSSL security level (2048-bit keys)") from None
    context.load_verify_locations(None, str(ca_dir))
    store = context.get_cert_store()
    if store is not None:
        store.set_flags(crypto.X509StoreFlags.ALLOW_PROXY_CERTS)

    def record(conn, cert, code, depth, ok):
        if not ok:
            try:
                c = cert.to_cryptography()
                verify_log.append((code, depth, slash_dn(c.subject), slash_dn(c.issuer)))
            except Exception:  # noqa: BLE001 - diagnostics only
                verify_log.append((code, depth, "?", "?"))
        return bool(ok)

    context.set_verify(SSL.VERIFY_PEER, record)
    return context


def connect(servers: Sequence[ServerAddress], credential: Optional["ClientCredential"],
            ca_dir: Path, server_dn: Optional[str] = None, connect_timeout: float = 10.0,
            read_timeout: float = 60.0, retries: int = 2, backoff: float = 0.5) -> Channel:
    """Open a checked channel to the first of ``servers`` that answers, ready for a request
    (the delegation flag ``0`` already sent).

    Each round tries every server in order; connection-level failures (refused, reset,
    unresolvable, no answer to connect) start another round after ``backoff * 2**n``
    seconds, ``retries`` times.  Raises ``CredentialServerError`` when all fail, or at
    once for a TLS trust failure or a server of the wrong identity.
    """
    failures: List[str] = []
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff * (2 ** (attempt - 1))
            log.warning("MyProxy: %s; trying again in %.1f s (%d of %d)",
                        failures[-1], delay, attempt, retries)
            time.sleep(delay)
        for address in servers:
            verify_log: VerifyLog = []
            channel = Channel(address, client_context(ca_dir, credential, verify_log),
                              read_timeout, verify_log, ca_dir)
            try:
                log.debug("MyProxy: connecting to %s", address)
                channel.open(connect_timeout)
                check_server_identity(channel.peer_certificate(), address.host, server_dn)
                channel.send(b"0", "the delegation flag")
                return channel
            except _TransientFailure as failure:
                channel.close()
                failures.append(str(failure))
            except BaseException:
                channel.close()
                raise
    tries = retries + 1
    raise CredentialServerError(
        f"{failures[-1]} (gave up after {tries} attempt{'s' if tries > 1 else ''}); "
        "check the server name and port, and that the server is up")
