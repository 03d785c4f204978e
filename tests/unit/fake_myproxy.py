"""A scripted stand-in for myproxy-server, for unit tests of the client's side of the wire.

It speaks TLS (pyOpenSSL) on 127.0.0.1 with a host certificate from the test CA, sends the
stray NUL a TLS 1.3 myproxy-server sends, records each request and the client's
certificate chain, and then runs a handler that plays the server's part.  The system tests
use the real myproxy-server; these only cover what a real server cannot be made to do
(truncate a chain, never answer, send garbage).
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from pilotid.identity.myproxy import ClientCredential, encode_chain, sign_proxy
from pilotid.identity.testca import Identity


@dataclass
class Session:
    """One client connection as the handler sees it."""

    conn: SSL.Connection
    request: Dict[str, str] = field(default_factory=dict)
    raw_request: bytes = b""
    client_chain: List[x509.Certificate] = field(default_factory=list)
    _buffer: bytearray = field(default_factory=bytearray)

    def _fill(self) -> None:
        chunk = self.conn.recv(65536)
        if not chunk:
            raise EOFError
        self._buffer.extend(chunk)

    def recv_exact(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._fill()
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def recv_until_nul(self) -> bytes:
        while b"\0" not in self._buffer:
            self._fill()
        end = self._buffer.index(b"\0") + 1
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    def recv_der(self) -> bytes:
        header = self.recv_exact(2)
        length = header[1]
        if length & 0x80:
            extra = self.recv_exact(length & 0x7F)
            header += extra
            length = int.from_bytes(extra, "big")
        return header + self.recv_exact(length)

    def send(self, data: bytes) -> None:
        self.conn.sendall(data)

    def reply(self, response: int = 0, lines: Optional[List[str]] = None) -> None:
        text = f"VERSION=MYPROXYv2\nRESPONSE={response}\n" + "".join(
            f"{line}\n" for line in (lines or []))
        self.send(text.encode() + b"\0")


Handler = Callable[[Session], None]


class _LoopbackListener:
    """A listener on a free port of 127.0.0.1 whose thread hands each connection it accepts
    to ``_accepted``.  A subclass sets what ``_accepted`` uses before calling
    ``__init__``, which starts the thread."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self._accepted(sock)

    def _accepted(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the accepting thread before the listener's descriptor is freed.

        ``close()`` alone does not wake a thread blocked in ``accept()``, and that thread
        would go on accepting on whatever socket reuses the descriptor number next: the next
        test's fake server.  ``shutdown()`` makes the pending ``accept()`` fail; the thread
        returns.
        """
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(timeout=15)
        self._listener.close()


class FakeMyProxyServer(_LoopbackListener):
    """Accepts connections in a thread and runs ``handler`` on each."""

    def __init__(self, host_identity: Identity, handler: Handler, stray_nul: bool = True):
        self.handler = handler
        self.stray_nul = stray_nul
        self.sessions: List[Session] = []
        self.errors: List[BaseException] = []
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.use_certificate(host_identity.certificate)
        context.use_privatekey(host_identity.key)
        context.set_verify(SSL.VERIFY_PEER, lambda *args: True)  # record, do not judge
        self._context = context
        super().__init__()

    def _accepted(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        # a blocking socket with kernel timeouts: OpenSSL cannot use Python's timeout
        timeval = struct.pack("ll", 10, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        conn = SSL.Connection(self._context, sock)
        conn.set_accept_state()
        session = Session(conn)
        try:
            conn.do_handshake()
            peer = conn.get_peer_certificate(as_cryptography=True)
            session.client_chain = ([peer] if peer else []) + list(
                conn.get_peer_cert_chain(as_cryptography=True) or [])
            if self.stray_nul:
                conn.sendall(b"\0")
            if session.recv_exact(1) != b"0":
                raise AssertionError("client did not send the delegation flag '0'")
            session.raw_request = session.recv_until_nul()
            text = session.raw_request.rstrip(b"\0").decode()
            session.request = dict(line.split("=", 1) for line in text.splitlines() if line)
            self.sessions.append(session)
            self.handler(session)
        except (SSL.Error, EOFError, OSError) as error:
            self.errors.append(error)
        except BaseException as error:  # a broken handler must show in the test
            self.errors.append(error)
        finally:
            try:
                conn.shutdown()
            except SSL.Error:
                pass
            sock.close()


def signing_handler(signer: ClientCredential, final: Optional[List[str]] = None) -> Handler:
    """A GET that succeeds: OK, read the DER request, send the signed chain, final reply."""

    def handle(session: Session) -> None:
        session.reply(0)
        csr = x509.load_der_x509_csr(session.recv_der())
        proxy = sign_proxy(signer, csr.public_key(), int(session.request["LIFETIME"]))
        session.send(encode_chain([proxy, signer.certificate, *signer.chain]))
        session.reply(0, final)

    return handle


def error_handler(*lines: str) -> Handler:
    """Refuse with the given ERROR lines."""

    def handle(session: Session) -> None:
        session.reply(1, [f"ERROR={line}" for line in lines])

    return handle


def truncating_handler(signer: ClientCredential) -> Handler:
    """OK, then announce a chain and drop the connection in the middle of it."""

    def handle(session: Session) -> None:
        session.reply(0)
        csr = x509.load_der_x509_csr(session.recv_der())
        proxy = sign_proxy(signer, csr.public_key(), 3600)
        der = proxy.public_bytes(serialization.Encoding.DER)
        session.send(bytes([3]) + der + der[: len(der) // 2])

    return handle


class SilentListener(_LoopbackListener):
    """A TCP listener that accepts connections and never says a word."""

    def __init__(self) -> None:
        self._held: List[socket.socket] = []
        super().__init__()

    def _accepted(self, sock: socket.socket) -> None:
        self._held.append(sock)

    def close(self) -> None:
        super().close()
        for sock in self._held:
            sock.close()
