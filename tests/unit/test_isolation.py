"""The isolation kind (``IIsolation``): ``none`` and ``bwrap`` built from queue settings,
bubblewrap's options, its policy when the runtime cannot run, and how a runtime failure is
told from the payload's.  bubblewrap itself runs in tests/system/test_run_bwrap.py."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest
from zope.interface import implementer
from zope.interface.verify import verifyClass, verifyObject

from pilotid.errors import (
    ConfigurationError,
    IsolationBindError,
    IsolationError,
    IsolationNamespaceError,
    IsolationUnavailableError,
    PayloadFailedError,
)
from pilotid.factory import build_strategies
from pilotid.interfaces import IIsolation, ISwitchSession
from pilotid.queue import QueueSettings
from pilotid.registry import ISOLATION, Registry
from pilotid.strategies import base
from pilotid.strategies.bubblewrap import (
    BubblewrapIsolation,
    BubblewrapSession,
    mode_from_uid_map,
    runtime_error,
)
from pilotid.strategies.isolation import NoIsolation
from pilotid.testing import IsolationContract

NAMESPACES_OFF = ("bwrap: No permissions to creating new namespace, likely because the "
                  "kernel does not allow non-privileged user namespaces.\n")


def queue(**fields):
    mapping = {"switcher": "noop", "isolation": "bwrap", **fields}
    return QueueSettings.from_mapping("ANALY_ISO", mapping, Registry.with_builtins())


@implementer(ISwitchSession)
class RecordedSession:
    """A switch session that records what it is asked to launch; the wrapper 'fails' 3."""

    switches_identity = False
    marker_owner = None
    handover = None

    def __init__(self) -> None:
        self.launched: list = []
        self.closed = False

    def launch(self, argv, logs):
        self.launched.append(list(argv))
        return object()

    def terminate(self, process, signum):
        pass

    def stop_leftovers(self, process):
        pass

    def refresh(self, credential):
        return False

    def explain(self, returncode, marker):
        return base.Outcome(base.PAYLOAD_FAILED, exit_code=returncode,
                            error=PayloadFailedError("the payload failed"))

    def retry_delay(self, outcome, attempt):
        return None

    def close(self):
        self.closed = True


def logs(tmp_path):
    stderr = tmp_path / "stderr"
    stderr.write_bytes(b"")
    return base.PayloadLogs(io.BytesIO(), open(stderr, "ab")), stderr


# --- the contract -----------------------------------------------------------------------------

class TestNoIsolationContract(IsolationContract):
    def make_provider(self):
        return NoIsolation(queue(isolation="none"))


class TestBubblewrapContract(IsolationContract):
    """Starts a real test container (bubblewrap is installed wherever the tests run)."""

    def make_provider(self):
        return BubblewrapIsolation(queue())


# --- the kind ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [NoIsolation, BubblewrapIsolation])
def test_builtin_isolations_provide_the_interface(cls):
    verifyClass(IIsolation, cls)
    verifyObject(IIsolation, cls(queue()))


def test_registry_knows_none_and_bwrap():
    assert Registry.with_builtins().names(ISOLATION) == ("bwrap", "none")


def test_a_queue_without_isolation_gets_none():
    strategies = build_strategies(QueueSettings.from_mapping("Q", {}, Registry.with_builtins()),
                                  Registry.with_builtins())
    assert isinstance(strategies.isolation, NoIsolation)


def test_noop_with_bwrap_is_composed_by_the_factory():
    strategies = build_strategies(queue(), Registry.with_builtins())
    assert (strategies.switcher.name, strategies.isolation.name) == ("noop", "bwrap")


def test_an_unknown_isolation_is_refused_naming_the_known_ones():
    with pytest.raises(ConfigurationError, match="unknown isolation 'bwarp'.*'bwrap'"):
        queue(isolation="bwarp")


def test_bwrap_settings_are_refused_on_a_queue_without_bwrap():
    with pytest.raises(ConfigurationError, match="bwrap_network"):
        queue(isolation="none", bwrap_network=False)


def test_an_unknown_isolation_policy_is_refused():
    with pytest.raises(ConfigurationError, match="isolation_policy"):
        queue(isolation_policy="never")


def test_bwrap_refuses_an_egg_cache_base_outside_the_containers_tmp():
    with pytest.raises(ConfigurationError, match="egg_cache_base /scratch"):
        BubblewrapIsolation(queue(egg_cache_base="/scratch"))


def test_no_isolation_hands_the_session_back():
    session = RecordedSession()
    assert NoIsolation(queue()).wrap(session, Path("/w")) is session


# --- the container's options ------------------------------------------------------------------

def test_the_work_directory_is_the_only_writable_bind(tmp_path):
    options = BubblewrapIsolation(queue(bwrap_binds=[str(tmp_path)])).options(Path("/w/job"))
    assert ["--bind", "/w/job", "/w/job"] == options[options.index("--bind"):][:3]
    assert options.count("--bind") == 1 and ["--ro-bind", str(tmp_path), str(tmp_path)] \
        == options[options.index(str(tmp_path)) - 1:][:3]


def test_the_container_has_new_pid_ipc_uts_namespaces_and_dies_with_its_parent():
    options = BubblewrapIsolation(queue()).options(None)
    assert {"--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-user"} <= set(options)
    assert "--unshare-net" not in options


def test_network_off_and_pid_namespace_off_are_the_queues_choice():
    options = BubblewrapIsolation(queue(bwrap_network=False,
                                        bwrap_pid_namespace=False)).options(None)
    assert "--unshare-net" in options and "--unshare-pid" not in options


def test_home_and_root_are_not_bound():
    options = BubblewrapIsolation(queue()).options(None)
    assert not {"/home", "/root", "/"} & set(options)


def test_bwrap_makes_the_sentinel_as_its_last_mount_operation():
    """Inside the work directory's bind, so that it lands in the work directory itself."""
    command = BubblewrapIsolation(queue()).command(["/w/wrapper.sh"], Path("/w"), Path("/w/s"))
    before = command[:command.index("--")]
    assert before[-2:] == ["--dir", "/w/s"] and before.index("/w") < len(before) - 2


def test_the_container_runs_one_program_before_the_wrapper():
    """Only the one that gives the wrapper its signals back: each exec is a launch's cost."""
    command = BubblewrapIsolation(queue()).command(["/w/wrapper.sh"], Path("/w"), Path("/w/s"))
    assert command[command.index("--") + 1:] == [
        "/usr/bin/env", "--default-signal=TERM,INT,HUP", "/w/wrapper.sh"]


def test_bwrap_ignores_the_forwarded_signals_and_the_wrapper_gets_them_back():
    """So that a SIGTERM does not end the container before the wrapper passes it on."""
    command = BubblewrapIsolation(queue()).command(["/w/wrapper.sh"], Path("/w"), Path("/w/s"))
    assert command[:3] == ["/usr/bin/env", "--ignore-signal=TERM,INT,HUP", "/usr/bin/bwrap"]
    inside = command[command.index("--") + 1:]
    assert inside[:2] == ["/usr/bin/env", "--default-signal=TERM,INT,HUP"]


# --- modes and runtime failures ---------------------------------------------------------------

@pytest.mark.parametrize("uid_map, mode", [
    ("         0          0 4294967295\n", "privileged"),
    ("         0       1001          1\n", "fakeroot"),
    ("      1001       1001          1\n", "unprivileged"),
    ("", "unknown"),
])
def test_mode_is_read_from_the_uid_map(uid_map, mode):
    assert mode_from_uid_map(uid_map) == mode


@pytest.mark.parametrize("said, error", [
    (NAMESPACES_OFF, IsolationNamespaceError),
    ("bwrap: setting up uid map: Permission denied\n", IsolationNamespaceError),
    ("bwrap: Can't find source path /cvmfs: No such file or directory\n", IsolationBindError),
    ("bwrap: Unknown option --frobnicate\n", IsolationError),
])
def test_bwraps_message_names_the_runtime_failure(said, error):
    assert type(runtime_error(said, "/usr/bin/bwrap")) is error


# --- the policy -------------------------------------------------------------------------------

def test_required_fails_the_job_when_bwrap_is_missing(tmp_path):
    isolation = BubblewrapIsolation(queue(bwrap_path="/nonexistent/bwrap"))
    with pytest.raises(IsolationUnavailableError, match="/nonexistent/bwrap"):
        isolation.wrap(RecordedSession(), tmp_path)


def test_preferred_runs_without_isolation_and_warns(tmp_path, caplog):
    isolation = BubblewrapIsolation(queue(bwrap_path="/nonexistent/bwrap",
                                          isolation_policy="preferred"))
    session = RecordedSession()
    with caplog.at_level(logging.WARNING):
        assert isolation.wrap(session, tmp_path) is session
    assert "WITHOUT isolation" in caplog.text


def test_a_missing_bind_source_is_its_own_error(tmp_path):
    isolation = BubblewrapIsolation(queue(bwrap_binds=["/nonexistent/cvmfs"]))
    with pytest.raises(IsolationBindError, match="/nonexistent/cvmfs"):
        isolation.wrap(RecordedSession(), tmp_path)


def test_the_node_check_reports_the_mode_the_test_container_got():
    """A real test container: the user namespace maps the caller's uid to itself."""
    [check] = BubblewrapIsolation(queue()).node_checks()
    assert check.status == "ok" and "unprivileged mode" in check.detail, check


def test_the_node_check_fails_where_required_and_bwrap_is_missing():
    [check] = BubblewrapIsolation(queue(bwrap_path="/nonexistent/bwrap")).node_checks()
    assert (check.status, check.error_code) == ("fail", 58)


# --- the session ------------------------------------------------------------------------------

def bwrap_session(tmp_path, **fields):
    isolation = BubblewrapIsolation(queue(bwrap_path="/bin/true", **fields))
    inner = RecordedSession()
    return BubblewrapSession(inner, isolation, tmp_path), inner


def test_the_session_launches_the_wrapper_through_bwrap(tmp_path):
    session, inner = bwrap_session(tmp_path)
    verifyObject(ISwitchSession, session)
    session.launch(["/w/wrapper.sh"], logs(tmp_path)[0])
    assert inner.launched[0][2] == "/bin/true" and inner.launched[0][-1] == "/w/wrapper.sh"


def test_the_wrapper_and_a_proxy_copy_outside_the_work_directory_are_bound_read_only(
        tmp_path):
    """Under noop the payload has the pilot's uid: the wrapper, bound read-only over
    itself, can be neither rewritten nor renamed in the container; the proxy copy in the
    job's private directory is the only thing of that directory the container sees."""
    workdir, private = tmp_path / "work", tmp_path / "pilotid-job-1-x"
    workdir.mkdir()
    private.mkdir()
    wrapper, proxy = workdir / ".pilotid-wrapper-1-x.sh", private / "user-proxy.pem"
    wrapper.write_text("#!/bin/bash\n")
    proxy.write_text("PEM")
    session, inner = bwrap_session(workdir)
    inner.handover = base.ProxyHandover(proxy)
    session.launch([str(wrapper)], logs(tmp_path)[0])
    argv = inner.launched[0]
    binds = [argv[i + 1:i + 3] for i, word in enumerate(argv) if word == "--ro-bind"]
    assert [str(wrapper)] * 2 in binds and [str(proxy)] * 2 in binds
    assert argv.index("--ro-bind", argv.index(str(workdir))) > argv.index("--bind")
    assert not any(str(private) == path for pair in binds for path in pair)


def test_no_sentinel_no_marker_and_bwraps_message_is_a_runtime_failure(tmp_path):
    session, _ = bwrap_session(tmp_path)
    payload_logs, stderr = logs(tmp_path)
    session.launch(["/w/wrapper.sh"], payload_logs)
    stderr.write_text(NAMESPACES_OFF)
    outcome = session.explain(1, None)
    assert outcome.kind == base.SWITCH_FAILED and outcome.error.code == 59


def test_a_started_wrapper_is_explained_by_the_inner_session(tmp_path):
    session, _ = bwrap_session(tmp_path)
    payload_logs, stderr = logs(tmp_path)
    session.launch(["/w/wrapper.sh"], payload_logs)
    session.sentinel.mkdir()
    stderr.write_text("bwrap: something the payload printed\n")
    assert session.explain(3, None).kind == base.PAYLOAD_FAILED


def test_required_never_relaunches_after_a_runtime_failure(tmp_path):
    session, _ = bwrap_session(tmp_path)
    outcome = base.switch_failed(IsolationNamespaceError("off"))
    assert session.retry_delay(outcome, 1) is None


def test_optional_relaunches_at_once_without_isolation_and_warns(tmp_path, caplog):
    session, inner = bwrap_session(tmp_path, isolation_policy="optional")
    with caplog.at_level(logging.WARNING):
        assert session.retry_delay(base.switch_failed(IsolationNamespaceError("off")), 1) == 0
    session.launch(["/w/wrapper.sh"], logs(tmp_path)[0])
    assert inner.launched == [["/w/wrapper.sh"]] and "WITHOUT isolation" in caplog.text


@pytest.mark.parametrize("make", [Path.mkdir, lambda path: path.write_text(""),
                                  lambda path: path.symlink_to("/tmp")])
def test_closing_removes_the_sentinel_and_closes_the_inner_session(tmp_path, make):
    """bwrap's directory, or whatever else holds its name (a symlink is not followed)."""
    session, inner = bwrap_session(tmp_path)
    make(session.sentinel)
    session.close()
    assert not os.path.lexists(session.sentinel) and inner.closed


def test_a_sentinel_the_payload_filled_stays_and_the_inner_session_closes(tmp_path):
    session, inner = bwrap_session(tmp_path)
    session.sentinel.mkdir()
    (session.sentinel / "output").write_text("")
    session.close()
    assert (session.sentinel / "output").exists() and inner.closed


def test_bwraps_message_is_read_from_a_log_opened_by_descriptor(tmp_path):
    """The launcher opens the payload's logs with os.fdopen (a name that is a number): the
    message must still be found, or a runtime failure passes for the switch's."""
    session, _ = bwrap_session(tmp_path)
    path = tmp_path / "payload.stderr"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as err:
        err.write(b"an earlier launch's words\n")
        session.launch(["/w/wrapper.sh"], base.PayloadLogs(io.BytesIO(), err))
        err.write(NAMESPACES_OFF.encode())
    assert session.explain(1, None).error.code == 59
