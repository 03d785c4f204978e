"""``BubblewrapIsolation``: every payload in namespaces of its own, started by bubblewrap.

The switch (any switcher) runs ``bwrap`` as the target; bwrap makes a user namespace (the
target's own uid mapped to itself: no privilege gained), new PID, IPC and UTS namespaces
(and a network namespace where the queue turns the network off), and a mount view that
holds only the system read-only, the site's binds read-only, the work directory
read-write, a fresh ``/tmp``, ``/proc`` and ``/dev``.  The pilot's home, its proxy, other
jobs' directories and the host's processes are not in it.  ``--die-with-parent`` and the
PID namespace make the kernel end every process of the job when the wrapper ends: the
namespace's init (bwrap's) exits with the wrapper, and its exit kills the rest.

A *sentinel* proves that the runtime built the container: bwrap itself makes it (a
directory in the work directory, its last mount operation), then execs the wrapper.  A
launch that left neither the sentinel nor the wrapper's marker, with bwrap's own message
on stderr, is a runtime failure (``IsolationError`` and its subclasses), never the
payload's.
"""

from __future__ import annotations

import logging
import os
import secrets
import select
import subprocess
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence

from zope.interface import implementer

from pilotid import leftovers
from pilotid.errors import (
    ConfigurationError,
    IsolationBindError,
    IsolationError,
    IsolationNamespaceError,
    IsolationUnavailableError,
)
from pilotid.interfaces import IIsolation
from pilotid.probe import FAIL, OK, WARN, Check
from pilotid.settings import Setting, absolute_path, flag, list_of
from pilotid.strategies.base import Outcome, PayloadLogs, WrapperMarker, switch_failed
from pilotid.strategies.session import SessionDecorator
from pilotid.strategies.switch_program import log_position

log = logging.getLogger(__name__)

BWRAP_PATH = Setting("bwrap_path", absolute_path, "/usr/bin/bwrap",
                     "The bubblewrap program (``isolation: bwrap``).")
BWRAP_BINDS = Setting("bwrap_binds", list_of(absolute_path, "absolute paths"), [],
                      "Directories bound read-only into the container besides the system "
                      "(``/cvmfs``, the experiment's software area); each must exist.")
BWRAP_PID_NAMESPACE = Setting("bwrap_pid_namespace", flag, True,
                              "A PID namespace of the job's own: the payload sees only its "
                              "processes and none outlives the job. Off only where a PID "
                              "namespace fails (a pilot itself in a container).")
BWRAP_NETWORK = Setting("bwrap_network", flag, True,
                        "The payload keeps the node's network; false gives it a network "
                        "namespace with only a loopback.")

#: The system the container sees read-only (those that exist; a symlink stays a symlink).
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")

#: coreutils' env, which sets signal dispositions before it execs (``command``).
ENV = "/usr/bin/env"

#: The signals the wrapper forwards to the payload (TERM, INT, HUP).
FORWARDED_SIGNALS = "TERM,INT,HUP"

#: The stand-in transformations (``standin_transformations``), bound where a queue uses them.
#: Found from the package, not imported: strategies and payloads do not import each other.
STANDIN_DIR = Path(__file__).resolve().parents[1] / "payloads" / "transformations"

#: How long the namespace's init may take to go once the switch returned (seconds).
NAMESPACE_END_WAIT = 2.0

#: The fresh ``/tmp`` the container gets; the queue's egg cache base must be inside it.
CONTAINER_TMP = Path("/tmp")  # noqa: S108 - a tmpfs of the container's own


def mode_from_uid_map(uid_map: str) -> str:
    """The container's mode, as GlideinWMS tells it from ``/proc/self/uid_map`` inside:
    ``privileged`` (no user namespace), ``fakeroot`` (root inside mapped to another uid),
    or ``unprivileged`` (a uid mapped to itself)."""
    fields = uid_map.split()
    if len(fields) < 3:
        return "unknown"
    inside, outside, count = fields[:3]
    if count == "4294967295":
        return "privileged"
    if inside == "0" and outside != "0":
        return "fakeroot"
    return "unprivileged"


def runtime_error(said: str, program: str) -> IsolationError:
    """The ``IsolationError`` for what bwrap said on stderr when it failed to start."""
    message = " ".join(said.split())[-400:] or "no message"
    lower = said.lower()
    if "can't find source path" in lower:
        return IsolationBindError(f"{program} could not bind a directory into the container: "
                                  f"{message}; check bwrap_binds and the work directory")
    if "namespace" in lower or "uid map" in lower or "operation not permitted" in lower:
        return IsolationNamespaceError(
            f"{program} could not make the container's namespaces: {message}; the node "
            "must allow unprivileged user namespaces (user.max_user_namespaces > 0)")
    return IsolationError(f"{program} failed before it started the wrapper: {message}")


@implementer(IIsolation)
class BubblewrapIsolation:
    """Run each payload in a bubblewrap container (see the module's docstring).

    ``isolation_policy`` decides what a runtime that cannot run does: ``required`` fails the
    job with the runtime's error; ``preferred`` runs the job without isolation, with a
    WARNING, when the test container before the job fails; ``optional`` also when the
    runtime fails at launch (the job is launched again without it).
    """

    name = "bwrap"
    own_settings = (BWRAP_PATH, BWRAP_BINDS, BWRAP_PID_NAMESPACE, BWRAP_NETWORK)

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.program = str(settings.option(BWRAP_PATH))
        self.binds = tuple(settings.option(BWRAP_BINDS))
        self.pid_namespace = bool(settings.option(BWRAP_PID_NAMESPACE))
        self.network = bool(settings.option(BWRAP_NETWORK))
        self.policy = str(getattr(settings, "isolation_policy", "required"))
        base = Path(settings.egg_cache_base)
        if base != CONTAINER_TMP and CONTAINER_TMP not in base.parents:
            raise ConfigurationError(
                f"queue {settings.name}: egg_cache_base {base} is not inside the container's "
                f"fresh {CONTAINER_TMP}: with isolation bwrap set it to {CONTAINER_TMP} or "
                "below")
        self._tested = False

    # --- the container ------------------------------------------------------------------

    def options(self, workdir: Optional[Path],
                read_only_files: Sequence[Path] = ()) -> List[str]:
        """bwrap's options for a job in ``workdir`` (None: the test container's), with
        ``read_only_files`` bound read-only over whatever is there (in the work directory
        too: the payload can then neither rewrite nor rename them)."""
        options = ["--die-with-parent", "--unshare-user", "--unshare-ipc", "--unshare-uts"]
        if self.pid_namespace:
            options.append("--unshare-pid")
        if not self.network:
            options.append("--unshare-net")
        for path in SYSTEM_PATHS:
            if os.path.islink(path):
                options += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                options += ["--ro-bind", path, path]
        options += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", str(CONTAINER_TMP)]
        for bind in self.read_only_binds():
            options += ["--ro-bind", str(bind), str(bind)]
        if workdir is not None:
            options += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
        for file in read_only_files:
            options += ["--ro-bind", str(file), str(file)]
        return options

    def read_only_binds(self) -> List[Path]:
        """The site's binds, the queue's transformation directories, the stand-ins."""
        binds = [Path(p) for p in (*self.binds, *self.settings.transformation_dirs)]
        if self.settings.standin_transformations:
            binds.append(STANDIN_DIR)
        return binds

    def command(self, argv: Sequence[str], workdir: Path, sentinel: Path,
                read_only_files: Sequence[Path] = ()) -> List[str]:
        """The argv the switch runs: bwrap (ignoring the signals the wrapper forwards), its
        options (``read_only_files`` as there) and the sentinel, then in the container
        ``argv`` with those signals restored.

        bwrap's outer process dies of a SIGTERM and would take the container with it
        (``--die-with-parent``) before the wrapper could pass the signal on: the time
        limit's grace period would be lost.  Ignored by bwrap (and inherited by its init),
        restored for the wrapper, the signal reaches the payload as without isolation;
        SIGKILL still ends everything at once.  The sentinel is bwrap's last mount
        operation (``--dir``, inside the work directory's bind), so that no program runs
        only to make it.
        """
        return [ENV, f"--ignore-signal={FORWARDED_SIGNALS}", self.program,
                *self.options(workdir, read_only_files), "--dir", str(sentinel), "--",
                ENV, f"--default-signal={FORWARDED_SIGNALS}", *(os.fspath(a) for a in argv)]

    def check_program(self) -> None:
        """Raise ``IsolationUnavailableError`` unless ``bwrap_path`` is an executable file."""
        if not (os.path.isfile(self.program) and os.access(self.program, os.X_OK)):
            raise IsolationUnavailableError(
                f"the isolation runtime {self.program} is missing or not executable: install "
                "the Debian package bubblewrap or set bwrap_path")

    def check_binds(self, workdir: Optional[Path]) -> None:
        """Raise ``IsolationBindError`` for a bind source missing on this node."""
        wanted = [*self.read_only_binds(), *([workdir] if workdir is not None else [])]
        for path in wanted:
            if not os.path.isdir(path):
                raise IsolationBindError(f"{path} cannot be bound into the container: it does "
                                         "not exist on this node (bwrap_binds)")

    def test_container(self) -> str:
        """Start a test container; return its mode (``mode_from_uid_map``) or raise the
        ``IsolationError`` of what failed."""
        self.check_program()
        self.check_binds(None)
        try:
            done = subprocess.run(
                [self.program, *self.options(None), "--", "/bin/cat", "/proc/self/uid_map"],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                check=False, env={"PATH": "/usr/bin:/bin"})
        except (OSError, subprocess.TimeoutExpired) as error:
            raise IsolationUnavailableError(f"{self.program} could not be run: {error}") \
                from None
        if done.returncode != 0:
            raise runtime_error(done.stderr, self.program)
        return mode_from_uid_map(done.stdout)

    # --- IIsolation ---------------------------------------------------------------------

    def wrap(self, session: Any, workdir: Path) -> Any:
        """A ``BubblewrapSession`` around ``session``, once a test container started (the
        first time in this pilot); where it cannot, the policy decides (class docstring)."""
        try:
            if not self._tested:
                log.info("bwrap test container: %s mode", self.test_container())
                self._tested = True
            self.check_program()
            self.check_binds(workdir)
        except IsolationError as error:
            if self.policy == "required":
                raise
            log.warning("isolation bwrap cannot run (%s); isolation_policy %s: running the "
                        "payload WITHOUT isolation", error, self.policy)
            return session
        return BubblewrapSession(session, self, Path(workdir))

    def node_checks(self) -> List[Check]:
        """Start a test container: its mode, or what failed and what the policy makes of it."""
        try:
            mode = self.test_container()
        except IsolationError as error:
            status = FAIL if self.policy == "required" else WARN
            return [Check("isolation", status, f"bwrap: {error} (isolation_policy "
                                               f"{self.policy})", error.code)]
        pid = "a PID namespace" if self.pid_namespace else "no PID namespace"
        net = "the node's network" if self.network else "no network"
        return [Check("isolation", OK, f"bwrap ({self.program}): test container started in "
                                       f"{mode} mode, {pid}, {net}")]


class BubblewrapSession(SessionDecorator):
    """One job's switch with bwrap between the switch and the wrapper.

    ``launch`` prefixes the argv with bwrap's command; ``explain`` tells a runtime failure
    (no sentinel, no marker, bwrap's own message on stderr) from the switch's and the
    payload's; ``retry_delay`` relaunches without isolation, with a WARNING, under the
    ``optional`` policy only.  Leftovers need nothing more: the PID namespace ends with the
    wrapper, and the inner session's ``stop_leftovers`` finds nothing left (without a PID
    namespace it still finds what it finds without isolation).
    """

    def __init__(self, inner: Any, isolation: BubblewrapIsolation, workdir: Path) -> None:
        super().__init__(inner)
        self.isolation = isolation
        self.workdir = workdir
        self.sentinel = workdir / f".pilotid-started-{secrets.token_hex(8)}"
        self.bypassed = False
        self._stderr: "tuple[Optional[str], int]" = (None, 0)

    def launch(self, argv: Sequence[str], logs: PayloadLogs) -> Any:
        """Start ``argv`` in the container through the inner session's switch."""
        if self.bypassed:
            return self.inner.launch(argv, logs)
        self.isolation.check_program()
        self._remove_sentinel()
        self._stderr = log_position(logs.stderr)
        return self.inner.launch(self.isolation.command(argv, self.workdir, self.sentinel,
                                                        self._read_only_files(argv)), logs)

    def _read_only_files(self, argv: Sequence[str]) -> List[Path]:
        """What the container gets read-only: the wrapper (``argv[0]``), which a payload
        of the pilot's own uid (``noop``) could otherwise rewrite or rename, and a proxy
        handed over as a file outside the work directory (``noop``'s copy in the job's
        private directory, which the container otherwise does not see)."""
        files = [Path(argv[0])] if os.path.isabs(argv[0]) and os.path.isfile(argv[0]) else []
        handover = self.handover
        if handover is not None and not handover.from_stdin:
            proxy = Path(handover.payload_proxy)
            if self.workdir not in proxy.parents and os.path.isfile(proxy):
                files.append(proxy)
        return files

    def explain(self, returncode: int, marker: Optional[WrapperMarker]) -> Outcome:
        """A runtime failure where bwrap said why and never started the wrapper; else the
        inner session's explanation."""
        if marker is None and not self.bypassed and not os.path.lexists(self.sentinel):
            said = self._said()
            if "bwrap:" in said:
                return switch_failed(runtime_error(said, self.isolation.program))
        return self.inner.explain(returncode, marker)

    def retry_delay(self, outcome: Outcome, attempt: int) -> Optional[float]:
        """After a runtime failure: at once without isolation under ``optional``, else never
        (the job fails with the runtime's error code).  Otherwise the inner session's."""
        if isinstance(outcome.error, IsolationError) and not self.bypassed:
            if self.isolation.policy != "optional":
                return None
            log.warning("isolation bwrap failed at launch (%s); isolation_policy optional: "
                        "launching the payload again WITHOUT isolation", outcome.error)
            self.bypassed = True
            return 0.0
        return self.inner.retry_delay(outcome, attempt)

    def stop_leftovers(self, process: Any) -> None:
        """Let the job's PID namespace end, then the inner session's ``stop_leftovers``.

        bwrap's outer process returns as soon as the namespace's init has reported the
        wrapper's status, while the kernel may still be tearing that init down.  Orphaned,
        it becomes the pilot's child (a subreaper): left alone, the inner session would take
        it for the payload's leftover and kill it through the switch (one more ``sudo``),
        or, with no switch, leave its zombie unreaped.  So it is awaited and reaped here.
        """
        if self.isolation.pid_namespace and not self.bypassed:
            _reap_namespace_inits(process.pid, NAMESPACE_END_WAIT)
        self.inner.stop_leftovers(process)

    def close(self) -> None:
        """Remove the sentinel, then the inner session's ``close``."""
        self._remove_sentinel()
        self.inner.close()

    def _remove_sentinel(self) -> None:
        # bwrap makes a directory; whatever else holds the name goes too, never followed
        try:
            os.rmdir(self.sentinel)
        except FileNotFoundError:
            pass
        except NotADirectoryError:
            os.unlink(self.sentinel)
        except OSError as error:  # the payload filled it: one more of its outputs
            log.debug("sentinel %s left in place: %s", self.sentinel, error.strerror)

    def _said(self) -> str:
        path, start = self._stderr
        if path is None:
            return ""
        try:
            with open(path, "rb") as stream:
                stream.seek(start)
                return stream.read(8192).decode("utf-8", "replace")
        except OSError:
            return ""


def _reap_namespace_inits(launched: int, within: float) -> None:
    # the kernel says when each ends (a pidfd turns readable), rather than a poll's tick
    deadline = time.monotonic() + within
    for adopted in leftovers.adopted_processes(exclude=(launched,)):
        if _command_name(adopted.pid) != "bwrap":
            continue
        try:
            pidfd = os.pidfd_open(adopted.pid)
        except OSError:  # gone already, or a kernel before 5.3: the inner session decides
            continue
        try:
            select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))
        finally:
            os.close(pidfd)
        leftovers.reap([adopted.pid])


def _command_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return ""
