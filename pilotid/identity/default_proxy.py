"""Where a grid tool looks for a proxy when it is told nothing: ``/tmp/x509up_u<uid>``.

The name is Globus' (``DEFAULT_SECURE_TMP_DIR`` + ``X509_USER_PROXY_FILE`` + a user id
string); ``grid-proxy-init``, ``voms-proxy-init``, ``myproxy-logon`` and ``grid-proxy-info``
all find the file through it.  Which uid: the *effective* one.  The Grid Community Toolkit
that sites install (the Debian/EPEL ``globus-gsi-sysconfig``) names it by the effective uid:
``grid-proxy-info -path`` run with real uid 0 and effective uid 1001 looks for
``/tmp/x509up_u1001`` (tests/system/test_proxy_tools.py checks this on the node).  Old
Globus Toolkit releases took ``getuid()``, the real uid, instead; the two agree in a pilot,
which never runs with different real and effective uids, and the effective uid is the one
that owns the files the process writes and may read, so pilotid follows today's tools.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Mapping, Optional

#: The directory and prefix of the default proxy: Globus' ``DEFAULT_SECURE_TMP_DIR`` and
#: ``X509_USER_PROXY_FILE``.
DEFAULT_PROXY_PREFIX = "/tmp/x509up_u"  # noqa: S108 - the well-known name, never trusted blindly


def default_proxy_path(uid: Optional[int] = None) -> Path:
    """``/tmp/x509up_u<uid>``: the proxy Globus tools use by default, for ``uid`` (default:
    this process's effective uid, as the installed Globus tools take it)."""
    return Path(f"{DEFAULT_PROXY_PREFIX}{os.geteuid() if uid is None else uid}")


def proxy_path_from_environment(environ: Optional[Mapping[str, str]] = None) -> Path:
    """The proxy a Globus tool would use: ``X509_USER_PROXY`` in ``environ`` (default
    ``os.environ``) when set and not empty, else ``default_proxy_path()``."""
    environ = os.environ if environ is None else environ
    named = environ.get("X509_USER_PROXY", "")
    return Path(named) if named else default_proxy_path()


#: Where the pilot's own credentials are named: they never become readable by the target.
PILOT_CREDENTIAL_VARIABLES = ("X509_USER_PROXY", "X509_USER_CERT", "X509_USER_KEY")


def pilot_credentials(environ: Optional[Mapping[str, str]] = None) -> List[Path]:
    """The pilot's own credential files: what ``PILOT_CREDENTIAL_VARIABLES`` name in
    ``environ`` (default ``os.environ``), and the default proxy ``/tmp/x509up_u<uid>``."""
    environ = os.environ if environ is None else environ
    found = [Path(environ[name]) for name in PILOT_CREDENTIAL_VARIABLES if environ.get(name)]
    found.append(default_proxy_path())
    return found
