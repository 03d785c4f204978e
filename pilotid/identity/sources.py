"""Credential sources: where the end user's proxy comes from for one job.

``LocalFileSource`` takes a proxy file already on the node (the queue's ``proxy_file`` or
``X509_USER_PROXY``), checks it with the proxy model and copies it for the job.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from pathlib import Path
from typing import Mapping, Optional

from zope.interface import implementer

from pilotid.errors import CredentialError
from pilotid.identity.credential import Credential, CredentialRequest
from pilotid.identity.credfile import write_private
from pilotid.identity.proxy import (
    ProxyInfo,
    format_time_left,
    load_proxy,
    normalise_dn,
    slash_dn,
)
from pilotid.interfaces import ICredentialSource
from pilotid.queue import QueueSettings

log = logging.getLogger(__name__)

_PROXY_SUFFIXES = ("/CN=proxy", "/CN=limited proxy")


def _copy_name() -> str:
    """A new, unguessable file name for a job's copy of the proxy."""
    return f"user-proxy-{secrets.token_hex(16)}.pem"


def _owner_matches(owner_dn: str, proxy: ProxyInfo) -> bool:
    """True where ``owner_dn`` names the user of ``proxy``.

    The dispatcher may send the identity itself or the subject of one of the user's proxies
    (PanDA's ``prodUserID`` sometimes ends in ``/CN=proxy``): accept the identity, the
    identity with legacy proxy suffixes, or the subject of a proxy in this chain.
    """
    identity = normalise_dn(proxy.identity)
    wanted = normalise_dn(owner_dn.strip())
    trimmed = wanted
    while trimmed.endswith(_PROXY_SUFFIXES):
        trimmed = trimmed.rsplit("/CN=", 1)[0]
    if trimmed == identity:
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

    def __init__(self, settings: QueueSettings,
                 environ: Optional[Mapping[str, str]] = None) -> None:
        self.settings = settings
        self._environ = os.environ if environ is None else environ

    def proxy_path(self) -> Path:
        """The proxy file this source reads; ``CredentialError`` saying what to set if none."""
        if self.settings.proxy_file:
            return Path(self.settings.proxy_file)
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
        source = self.proxy_path()
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
