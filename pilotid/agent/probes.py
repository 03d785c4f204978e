"""Probe answers learnt in the agent's children, kept by the agent for its later children.

A child that probes (``sudo -n -u alice -- /bin/true`` allowed) or forgets an answer (a
launch refused after all) reports it to the agent over a pipe the agent made before it
listened; the agent keeps it in its own probe cache, and every child forked later starts
with that cache, so it switches once per job instead of twice.  What travels is a fact
about the node's sudo rule (this pilot may switch to uid N), with the time it was learnt
(``time.monotonic``: one clock for the whole system), so that ``probe_cache_lifetime`` is
counted from the probe itself.  Only answers ``True`` (sudo's) travel: a gLExec mapping is
about one user's credential and stays in its job.  Failures are never put in the cache, so
never reported.  The pipe's ends are not inherited across ``exec``: no payload, sudo or
wrapper ever holds it.  Docs: docs/agent.rst.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import select
from typing import Hashable, Optional, Tuple

from pilotid.strategies.probecache import ProbeCache

log = logging.getLogger(__name__)

#: A report longer than this is not sent: shorter writes to a pipe are never interleaved.
MAX_REPORT = select.PIPE_BUF


class ProbeReports:
    """The pipe from the agent's children to the agent, and the agent's cache it feeds."""

    def __init__(self, cache: "ProbeCache[object]") -> None:
        self.cache = cache
        self.read_fd, self.write_fd = os.pipe()
        # a child never waits on a full pipe: a report dropped is a probe made again
        flags = fcntl.fcntl(self.write_fd, fcntl.F_GETFL)
        fcntl.fcntl(self.write_fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        os.set_blocking(self.read_fd, False)
        self._pending = b""

    def in_child(self) -> None:
        """Called in a freshly forked child: report its cache's changes to the agent."""
        os.close(self.read_fd)
        self.cache.observer = self.report

    def close(self) -> None:
        """In the agent, when it stops: close both ends."""
        os.close(self.read_fd)
        os.close(self.write_fd)

    def report(self, key: Hashable, kept: "Optional[Tuple[float, object]]") -> None:
        """A ``ProbeCache`` observer: send one change to the agent (dropped if the pipe is
        full or the answer does not travel)."""
        if not _plain_key(key):
            return
        if kept is None:
            report = {"key": list(key), "forget": True}  # type: ignore[call-overload]
        elif kept[1] is True:
            report = {"key": list(key), "learnt": kept[0]}  # type: ignore[call-overload]
        else:
            return
        line = json.dumps(report).encode() + b"\n"
        if len(line) > MAX_REPORT:
            return
        try:
            os.write(self.write_fd, line)
        except OSError as error:
            log.debug("probe answer not reported to the agent: %s", error)

    def receive(self) -> None:
        """In the agent: apply every complete report waiting in the pipe to the cache."""
        try:
            while True:
                chunk = os.read(self.read_fd, 65536)
                if not chunk:
                    break
                self._pending += chunk
        except BlockingIOError:
            pass
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            self._apply(line)

    def _apply(self, line: bytes) -> None:
        try:
            report = json.loads(line)
            key = tuple(report["key"])
        except (ValueError, KeyError, TypeError):
            log.warning("agent: an unreadable probe report was ignored")
            return
        if not _plain_key(key):
            return
        learnt = report.get("learnt")
        if report.get("forget") is True:
            self.cache.forget(key)
        elif isinstance(learnt, float):
            self.cache.keep(key, True, learnt)


def _plain_key(key: Hashable) -> bool:
    """A key of strings and integers only (sudo's): one that JSON carries unchanged."""
    return isinstance(key, tuple) and all(
        isinstance(part, (str, int)) and not isinstance(part, bool) for part in key)
