"""Credential sources: where the end user's proxy comes from for one job.

``LocalFileSource`` takes a proxy file already on the node (the queue's ``proxy_file`` or
``X509_USER_PROXY``), checks it with the proxy model and copies it for the job.
``MyProxySource`` retrieves it from a MyProxy server with the pilot's own credential
(trusted retrieval), through a node-local ``CredentialCache`` so that a pilot running many
jobs of one user asks the server once.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Optional

from zope.interface import implementer

from pilotid.errors import (
    ConfigurationError,
    CredentialError,
    CredentialRefusedError,
    ProxyExpiredError,
)
from pilotid.identity.credential import Credential, CredentialRequest
from pilotid.identity.credfile import write_private
from pilotid.identity.dn import normalise_dn, slash_dn, without_proxy_cns
from pilotid.identity.proxy import (
    ProxyInfo,
    check_lifetime,
    format_time_left,
    load_proxy,
    parse_proxy,
)
from pilotid.interfaces import ICredentialSource
from pilotid.queue import QueueSettings
from pilotid.settings import Setting, absolute_path, integer, optional, string

if TYPE_CHECKING:  # the MyProxy client brings TLS (pyOpenSSL): imported when a queue uses it
    from pilotid.identity.myproxy import MyProxyClient

log = logging.getLogger(__name__)


#: The file source's own queue setting (``LocalFileSource.own_settings``).
PROXY_FILE = Setting(
    "proxy_file", optional(absolute_path), None,
    "The user's proxy for the ``file`` source; null means ``X509_USER_PROXY``.")
#: The MyProxy source's own queue settings (``MyProxySource.own_settings``).
MYPROXY_SERVER = Setting(
    "myproxy_server", optional(string), None,
    "The MyProxy server's host name (a job may name its own in PanDA's ``myproxy`` field).")
MYPROXY_PORT = Setting(
    "myproxy_port", integer(1, 65535), 7512,
    "The MyProxy server's port.")


def _copy_name() -> str:
    """A new, unguessable file name for a job's copy of the proxy."""
    return f"user-proxy-{secrets.token_hex(16)}.pem"


def _owner_matches(owner_dn: str, proxy: ProxyInfo) -> bool:
    """True where ``owner_dn`` names the user of ``proxy``.

    The dispatcher may send the identity itself or the subject of one of the user's proxies
    (PanDA's ``prodUserID`` may end in ``/CN=proxy``, ``/CN=limited proxy`` or the number
    of an RFC 3820 proxy): accept the identity with such proxy CNs (``without_proxy_cns``),
    or the subject of a proxy in this chain.
    """
    identity = normalise_dn(proxy.identity)
    wanted = normalise_dn(owner_dn.strip())
    if identity in without_proxy_cns(wanted):
        return True
    return wanted.startswith(identity + "/") and any(
        normalise_dn(slash_dn(cert.subject)) == wanted for cert in proxy.certificates)


@implementer(ICredentialSource)
class LocalFileSource:
    """The user's proxy from a file on this node: the queue's ``proxy_file``, else
    ``$X509_USER_PROXY``.

    Each ``fetch`` reads and checks the file, then writes the very bytes it checked to a
    new file in the job's directory (``user-proxy-<random>.pem``, 0600 from creation,
    never through a symlink), so that the job keeps a proxy nobody can swap under it.
    """

    name = "file"
    own_settings = (PROXY_FILE,)

    def __init__(self, settings: QueueSettings,
                 environ: Optional[Mapping[str, str]] = None) -> None:
        self.settings = settings
        self._environ = os.environ if environ is None else environ

    def proxy_path(self, request: CredentialRequest) -> Path:
        """The proxy file to read for ``request``; ``CredentialError`` saying what to set if
        none.

        The same file for every job: the queue's ``proxy_file``, else ``X509_USER_PROXY``
        (never the pilot's default ``/tmp/x509up_u<uid>``: that is the pilot's own proxy).
        A subclass may choose a file per job instead, by ``request.owner_dn`` or
        ``request.credname`` (a per-user directory of delegated proxies, say); ``fetch``
        checks whatever it names exactly as it checks the queue's file.
        """
        configured = self.settings.option(PROXY_FILE)
        if configured:
            return Path(configured)
        from_env = self._environ.get("X509_USER_PROXY", "").strip()
        if from_env:
            return Path(from_env)
        raise CredentialError(
            f"queue {self.settings.name}: no proxy file to read: set proxy_file in the "
            "queue settings or X509_USER_PROXY in the pilot's environment")

    def fetch(self, request: CredentialRequest) -> Credential:
        """Return a ``Credential`` for a checked copy of the proxy in ``request.directory``.

        Raises ``ProxyFileError``, ``ProxyKeyError`` or ``ProxyExpiredError`` for a bad or
        short-lived proxy, and ``CredentialError`` when no file is configured, when the
        proxy is not the requested owner's, or when the copy cannot be written.
        """
        source = self.proxy_path(request)
        info = load_proxy(source, min_lifetime=request.lifetime)
        if request.owner_dn and not _owner_matches(request.owner_dn, info):
            raise CredentialError(
                f"proxy file {source} belongs to {info.identity}, but the job is for "
                f"{request.owner_dn}: refusing to run one user's job with another's proxy")
        copy = write_private(Path(request.directory) / _copy_name(), info.pem)
        log.info("proxy of %s (%s left, %s) copied from %s to %s", info.identity,
                 format_time_left(info.time_left()), info.proxy_type, source, copy)
        return Credential(path=copy, proxy=dataclasses.replace(info, path=copy),
                          source=self.name)


#: An entry with less than this many seconds left beyond what the job needs is refetched.
DEFAULT_REFETCH_MARGIN = 15 * 60


def default_cache_dir() -> Path:
    """``$PILOTID_CREDENTIAL_CACHE``, else ``/tmp/pilotid-credentials-<uid>`` (node-local,
    shared by the pilots of one account, never by two accounts)."""
    configured = os.environ.get("PILOTID_CREDENTIAL_CACHE")
    if configured:
        return Path(configured)
    return Path(f"/tmp/pilotid-credentials-{os.geteuid()}")  # noqa: S108 - checked 0700 below


class CredentialCache:
    """Retrieved proxies kept on the node, one file per (server, owner, credential name).

    Safe when several pilots of the same account fetch at once: each entry has a lock file
    (``flock``), the fetcher holds it while it asks the server, and the entry is replaced
    by an atomic rename, so nobody reads a half-written proxy and one server request serves
    everyone waiting.  The directory must be the pilot's own and mode 0700; otherwise the
    cache is not used (and the log says why).
    """

    def __init__(self, directory: Optional[Path] = None,
                 margin: int = DEFAULT_REFETCH_MARGIN) -> None:
        self.directory = Path(directory) if directory else default_cache_dir()
        self.margin = margin

    def __repr__(self) -> str:
        return f"CredentialCache({str(self.directory)!r}, margin={self.margin})"

    @staticmethod
    def key(server: str, username: str, owner: Optional[str], credname: Optional[str]) -> str:
        """The entry name for one credential (a hash: DNs make poor file names)."""
        text = "\0".join([server, username, owner or "", credname or ""])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def usable(self) -> bool:
        """Create the directory (0700) if needed; True when it is safe to use."""
        try:
            self.directory.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as error:
            log.warning("credential cache %s cannot be created (%s): not caching",
                        self.directory, error.strerror)
            return False
        info = os.lstat(self.directory)
        if not stat.S_ISDIR(info.st_mode):
            log.warning("credential cache %s is not a directory: not caching", self.directory)
            return False
        if info.st_uid != os.geteuid() or info.st_mode & 0o077:
            log.warning("credential cache %s is not a 0700 directory of uid %d (owner %d, "
                        "mode %04o): not caching; remove it", self.directory, os.geteuid(),
                        info.st_uid, stat.S_IMODE(info.st_mode))
            return False
        return True

    def get(self, key: str, min_lifetime: int, retrieve: Callable[[], bytes]) -> bytes:
        """The cached proxy for ``key`` valid ``min_lifetime`` + margin seconds more, or a
        new one from ``retrieve()`` (stored for the next job).  Returns the PEM bytes."""
        if not self.usable():
            return retrieve()
        entry = self.directory / f"{key}.pem"
        lock_path = self.directory / f"{key}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            cached = self._read_fresh(entry, min_lifetime + self.margin)
            if cached is not None:
                log.info("credential cache: reusing %s", entry.name)
                return cached
            data = retrieve()
            staging = self.directory / f".{key}.{secrets.token_hex(6)}.tmp"
            write_private(staging, data)
            os.replace(staging, entry)
            return data
        finally:
            os.close(fd)  # releases the lock

    def _read_fresh(self, entry: Path, needed: int) -> Optional[bytes]:
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning("credential cache entry %s unreadable (%s): refetching",
                        entry, error.strerror)
            return None
        with os.fdopen(fd, "rb") as handle:
            status = os.fstat(handle.fileno())
            if status.st_uid != os.geteuid() or status.st_mode & 0o077:
                log.warning("credential cache entry %s has wrong owner or mode: refetching",
                            entry)
                return None
            data = handle.read()
        try:
            info = parse_proxy(data, entry)
        except CredentialError as error:
            log.warning("credential cache entry %s is unusable (%s): refetching", entry, error)
            return None
        left = info.time_left()
        if left.total_seconds() < needed:
            log.info("credential cache: %s has %d s left, %d needed: refetching",
                     entry.name, int(left.total_seconds()), needed)
            return None
        return data

    def purge_expired(self) -> int:
        """Remove entries that have expired; return how many were removed."""
        removed = 0
        if not self.usable():
            return 0
        for entry in self.directory.glob("*.pem"):
            if self._read_fresh(entry, 0) is None:
                entry.unlink(missing_ok=True)
                removed += 1
        return removed


ClientFactory = Callable[[str, int], "MyProxyClient"]


@implementer(ICredentialSource)
class MyProxySource:
    """The user's proxy from a MyProxy server, retrieved with the pilot's own credential.

    The server is the job's (``request.server``, PanDA's ``myproxy``) or the queue's
    ``myproxy_server``; the username is ``request.username`` or the owner's DN
    (``prodUserID``); the credential name is ``request.credname``.  The pilot
    authenticates with ``X509_USER_PROXY`` (or ``X509_USER_CERT``/``X509_USER_KEY``).
    Retrieved proxies go through a node-local ``CredentialCache`` (``use_cache=False`` asks
    the server every time); ``client_factory(server, port)`` builds the ``MyProxyClient``
    (tests and pilots with special needs replace it).
    """

    name = "myproxy"
    own_settings = (MYPROXY_SERVER, MYPROXY_PORT)

    def __init__(self, settings: QueueSettings, cache: Optional[CredentialCache] = None,
                 use_cache: bool = True, client_factory: Optional[ClientFactory] = None,
                 environ: Optional[Mapping[str, str]] = None) -> None:
        self.settings = settings
        self.cache = (cache or CredentialCache()) if use_cache else None
        self._environ = environ
        self._client_factory = client_factory or self._default_client

    def __repr__(self) -> str:
        return (f"MyProxySource(queue={self.settings.name!r}, "
                f"server={self.settings.option(MYPROXY_SERVER)!r}, cache={self.cache!r})")

    def _default_client(self, server: str, port: int) -> "MyProxyClient":
        from pilotid.identity.myproxy import MyProxyClient

        return MyProxyClient(server, port, environ=self._environ)

    def fetch(self, request: CredentialRequest) -> Credential:
        """Retrieve (or reuse) the user's proxy and write it to a new 0600 file in
        ``request.directory``; return the checked ``Credential``."""
        from pilotid.identity.myproxy import DEFAULT_LIFETIME, parse_servers

        spec = request.server or self.settings.option(MYPROXY_SERVER)
        if not spec:
            raise ConfigurationError(
                f"queue {self.settings.name}: credential_source is 'myproxy' but neither the "
                "queue (myproxy_server) nor the job (myproxy) names a MyProxy server")
        servers = parse_servers(spec, self.settings.option(MYPROXY_PORT))
        server_key = ",".join(str(s) for s in servers)
        username = request.username or request.owner_dn
        if not username:
            raise CredentialError("the job gives neither a MyProxy username nor its owner's "
                                  "DN (prodUserID): cannot tell whose proxy to retrieve")
        lifetime = max(DEFAULT_LIFETIME, int(request.lifetime) + 2 * DEFAULT_REFETCH_MARGIN)

        def retrieve() -> bytes:
            client = self._client_factory(spec, self.settings.option(MYPROXY_PORT))
            proxy = client.get(username, request.credname, lifetime=lifetime)
            return proxy.pem()

        if self.cache is not None:
            key = CredentialCache.key(server_key, username, request.owner_dn, request.credname)
            data = self.cache.get(key, int(request.lifetime), retrieve)
        else:
            data = retrieve()
        info = parse_proxy(data)
        try:
            check_lifetime(info, int(request.lifetime))
        except ProxyExpiredError as error:
            raise ProxyExpiredError(f"{error} (the credential stored in MyProxy ends too soon: "
                                    "its owner has to store a new one)") from None
        if request.owner_dn and not _owner_matches(request.owner_dn, info):
            raise CredentialRefusedError(
                f"MyProxy credential {request.credname or '(default)'} of {username} on "
                f"{server_key} belongs to {info.identity}, not to the job's owner "
                f"{request.owner_dn}: refusing to run one user's job with another's proxy")
        copy = write_private(Path(request.directory) / _copy_name(), info.pem)
        log.info("proxy of %s (%s left) from MyProxy %s written to %s", info.identity,
                 format_time_left(info.time_left()), server_key, copy)
        return Credential(path=copy, proxy=dataclasses.replace(info, path=copy),
                          source=self.name)
