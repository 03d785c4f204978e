"""Where gLExec is, and how it is called.

The binary is located (``GLEXEC_LOCATION``, ``OSG_GLEXEC_LOCATION``, the queue's
``glexec_path``, ``/usr/sbin/glexec``) with symlinks resolved, since gLExec refuses them;
it is called with an explicit environment without ``LD_PRELOAD``, stderr kept apart.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

from pilotid.errors import SwitchSystemError, SwitchUnavailableError

log = logging.getLogger(__name__)

DEFAULT_GLEXEC = Path("/usr/sbin/glexec")
LOCATION_VARIABLES = ("GLEXEC_LOCATION", "OSG_GLEXEC_LOCATION")
#: Removed from the environment gLExec is called with: a broken LD_PRELOAD makes the loader
#: print to stderr in every process, which crashed the seed's pilot.
NOT_FOR_GLEXEC = ("LD_PRELOAD",)


def _binary_in(location: str) -> Path:
    path = Path(location)
    return path / "sbin" / "glexec" if path.is_dir() else path


def locate_glexec(configured: Optional[Path] = None,
                  environ: Optional[Mapping[str, str]] = None) -> Path:
    """Return the gLExec binary to call, symlinks resolved.

    Looked for, in this order: ``$GLEXEC_LOCATION/sbin/glexec``,
    ``$OSG_GLEXEC_LOCATION`` (a directory as above, or the binary itself, as OSG sets it),
    ``configured`` (the queue's ``glexec_path``), ``/usr/sbin/glexec``.  The first that
    exists is used; if the pilot may not execute it, that is an error rather than a reason
    to try another.  Raises ``SwitchUnavailableError`` naming every place tried.
    """
    environ = os.environ if environ is None else environ
    candidates = []
    for variable in LOCATION_VARIABLES:
        if environ.get(variable):
            candidates.append((variable, _binary_in(environ[variable])))
    if configured:
        candidates.append(("glexec_path", Path(os.path.abspath(configured))))
    candidates.append(("default", DEFAULT_GLEXEC))
    tried = []
    for origin, path in candidates:
        resolved = Path(os.path.realpath(path))
        if resolved.is_file():
            if not os.access(resolved, os.X_OK):
                raise SwitchUnavailableError(
                    f"gLExec {resolved} (from {origin}) is not executable by the pilot "
                    f"(uid {os.geteuid()}): ask the site to allow the pilot account to run it")
            if resolved != path:
                log.debug("gLExec %s resolves to %s", path, resolved)
            return resolved
        if origin != "default":
            log.warning("gLExec not found at %s (from %s); trying the next place", path, origin)
        tried.append(f"{path} ({origin})")
    raise SwitchUnavailableError(
        "gLExec not found (tried " + ", ".join(tried) + "): set glexec_path in the queue "
        "settings or GLEXEC_LOCATION, or use another switcher for this queue")


def glexec_environment(base: Mapping[str, str], client_cert: Path,
                       source_proxy: Optional[Path] = None,
                       target_proxy: Optional[Path] = None) -> Dict[str, str]:
    """The environment to call gLExec with: ``base`` without ``LD_PRELOAD`` nor any
    inherited ``GLEXEC_*``, plus ``GLEXEC_CLIENT_CERT`` and, to have the proxy copied,
    ``GLEXEC_SOURCE_PROXY`` and ``GLEXEC_TARGET_PROXY``."""
    env = {name: value for name, value in base.items()
           if name not in NOT_FOR_GLEXEC and not name.startswith("GLEXEC_")}
    env["GLEXEC_CLIENT_CERT"] = str(client_cert)
    if source_proxy is not None:
        env["GLEXEC_SOURCE_PROXY"] = str(source_proxy)
        if target_proxy is not None:
            env["GLEXEC_TARGET_PROXY"] = str(target_proxy)
    return env


def call_glexec(binary: Path, argv: Sequence[str], env: Mapping[str, str], what: str,
                timeout: float) -> Tuple[int, str, str]:
    """Run ``binary <argv>`` from ``/`` with ``env``, in a new session; return (status,
    stdout, stderr).  ``what`` (``"probing the target account"``) names the call in logs and
    errors.  Raises ``SwitchUnavailableError`` if it cannot start, ``SwitchSystemError`` if
    it does not answer within ``timeout`` seconds."""
    try:
        process = subprocess.Popen(
            [str(binary), *argv], env=dict(env), cwd="/", stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    except OSError as error:
        raise SwitchUnavailableError(
            f"cannot start gLExec {binary}: {error.strerror}") from None
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            process.kill()
        except PermissionError:
            pass  # a lingering gLExec is root's: it is left to finish on its own
        raise SwitchSystemError(
            f"gLExec did not answer within {timeout:g} s while {what}: "
            "its authorisation service (LCMAPS, Argus) may hang") from None
    stdout = out.decode("utf-8", "replace")
    stderr = err.decode("utf-8", "replace")
    if stderr.strip():
        log.debug("gLExec stderr while %s: %s", what, stderr.strip())
    return process.returncode, stdout, stderr

