"""What a switcher gives its switch program and reads back from it.

The user's proxy on the wrapper's standard input (``proxy_input``, ``send_proxy``: sudo's
handover, and any switch whose pilot cannot give the target a file of its own), and the
switch program's own words on stderr when the wrapper left no marker (``log_position`` at
launch, ``switch_program_said`` in ``explain_without_marker``).  Re-exported by
``pilotid.strategies.base`` as building blocks for switchers.
"""

from __future__ import annotations

import logging
import os
import subprocess
from typing import Any, Optional

log = logging.getLogger(__name__)


def switch_program_said(stderr_path: Optional[str], offset: int,
                        prefix: Optional[str] = None) -> Optional[str]:
    """The switch program's last message in its stderr log after ``offset``, or None.

    For a switcher's ``explain_without_marker`` when the wrapper left no marker: what the
    switch program wrote is the only account of why.  With ``prefix`` (``'sudo:'``), only
    lines starting with it count, without it; else the last non-empty line.  Reads at most
    64 KiB; a log that cannot be read gives None.
    """
    if stderr_path is None:
        return None
    try:
        with open(stderr_path, "rb") as log_file:
            log_file.seek(offset)
            text = log_file.read(65536).decode("utf-8", "replace")
    except OSError:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if prefix is not None:
        lines = [line[len(prefix):].strip() for line in lines if line.startswith(prefix)]
    return lines[-1] if lines else None


def log_position(stream: Any) -> "tuple[Optional[str], int]":
    """The path of an open log file and where it ends now, or (None, 0) for other streams:
    where a launch's own messages start, for ``switch_program_said``."""
    name = getattr(stream, "name", None)
    if isinstance(name, int):  # opened from a descriptor (os.fdopen): the kernel has its path
        try:
            name = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            return None, 0
    if not isinstance(name, str) or not os.path.isabs(name):
        return None, 0
    try:
        stream.flush()
        return name, os.fstat(stream.fileno()).st_size
    except (OSError, ValueError, AttributeError):
        return name, 0


def proxy_input(proxy: bytes) -> int:
    """The wrapper's standard input: a descriptor of an anonymous memory file (``memfd``)
    holding ``proxy`` at offset 0, or ``subprocess.PIPE`` where the kernel makes none.

    bash's ``read`` takes a pipe one byte at a time (it must not read past its delimiter),
    about 5,000 system calls for a proxy, but a seekable file in blocks.  The memory file has
    no name anybody could open; only the processes that inherit the descriptor have it.
    """
    try:
        fd = os.memfd_create("pilotid-proxy", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        return subprocess.PIPE
    try:
        view = memoryview(proxy)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        return subprocess.PIPE
    return fd


def send_proxy(process: Any, data: bytes) -> None:
    """Write the proxy to the wrapper's stdin pipe and close it (where no memory file could
    be made, ``proxy_input``); a dead reader is not an error.

    A proxy is a few kilobytes, well under a pipe's buffer, so this does not wait for the
    wrapper.  If the wrapper (or the switch program) is already gone, ``explain`` reports
    why.
    """
    stdin = process.stdin
    if stdin is None:
        return
    try:
        stdin.write(data)
        stdin.flush()
    except BrokenPipeError:
        log.warning("the wrapper (pid %d) closed its standard input before it got the "
                    "proxy; it has probably ended, see its stderr log", process.pid)
    finally:
        try:
            stdin.close()
        except OSError:
            pass
