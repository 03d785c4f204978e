"""Where a job may not run: ``refuse_unsafe_workdir``, ``pilotid run`` and ``pilotid probe``
(issue 13, item 10: leaving out ``--workdir`` opened the current directory)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pilotid import cli
from pilotid.errors import WorkdirError, WorkdirLeftoversError
from pilotid.identity.accounts import Account
from pilotid.workdir import (
    PRIVATE_DIR_NAME,
    GrantJournal,
    prepare_workdir,
    refuse_unsafe_workdir,
)
from tests.unit.test_launcher import proxy_pem, site, write_job  # noqa: F401 - fixtures

__all__ = ["proxy_pem", "site"]


def test_run_without_workdir_is_refused(site, capsys):  # noqa: F811
    with pytest.raises(SystemExit) as stopped:
        cli.main(["-q", "run", "--queues", str(site["queues"]), "--queue", "ANALY_UNIT",
                  "--job", str(write_job(site, ""))])
    assert stopped.value.code == 2
    assert "--workdir" in capsys.readouterr().err


def test_probe_without_workdir_is_refused(site, capsys):  # noqa: F811
    with pytest.raises(SystemExit) as stopped:
        cli.main(["-q", "probe", "--queues", str(site["queues"]), "--queue", "ANALY_UNIT"])
    assert stopped.value.code == 2
    assert "--workdir" in capsys.readouterr().err


def test_the_root_directory_is_refused():
    with pytest.raises(WorkdirError, match="root"):
        refuse_unsafe_workdir(Path("/"))


@pytest.mark.parametrize("shared", ["/tmp", "/var/tmp", "/dev/shm"])  # noqa: S108
def test_a_shared_temporary_directory_itself_is_refused(shared):
    with pytest.raises(WorkdirError, match="shared temporary directory"):
        refuse_unsafe_workdir(Path(shared))


def test_a_subdirectory_of_tmp_is_allowed(tmp_path):
    refuse_unsafe_workdir(tmp_path)


def test_the_pilots_home_is_refused(tmp_path):
    with pytest.raises(WorkdirError, match="pilot's home"):
        refuse_unsafe_workdir(tmp_path, home=tmp_path)


def test_a_subdirectory_of_the_pilots_home_is_allowed(tmp_path):
    (tmp_path / "work").mkdir()
    refuse_unsafe_workdir(tmp_path / "work", home=tmp_path)


def test_a_directory_holding_the_pilots_proxy_is_refused(tmp_path):
    (tmp_path / "certs").mkdir()
    proxy = tmp_path / "certs" / "pilot.pem"
    proxy.write_text("")
    with pytest.raises(WorkdirError, match="pilot's own credential"):
        refuse_unsafe_workdir(tmp_path, pilot_credentials=[proxy])


@pytest.mark.parametrize("name", ["x509up_u1000", ".globus"])
def test_a_directory_holding_credentials_is_refused(tmp_path, name):
    (tmp_path / name).write_text("")
    with pytest.raises(WorkdirError, match="holds credentials") as refused:
        refuse_unsafe_workdir(tmp_path)
    assert "--workdir" in str(refused.value)


def test_run_in_the_pilots_home_fails_before_anything_is_changed(site, capsys,  # noqa: F811
                                                                   monkeypatch):
    monkeypatch.setattr("pilotid.workdir.placement._pilot_home", lambda: site["workdir"])
    status = cli.main(["-q", "run", "--queues", str(site["queues"]), "--queue", "ANALY_UNIT",
                       "--job", str(write_job(site, "")), "--workdir", str(site["workdir"]),
                       "--json"])
    result = json.loads(capsys.readouterr().out)
    assert (status, result["outcome"], result["error_code"]) == (22, "setup_failed", 22)
    assert [p.name for p in site["workdir"].iterdir() if p.name.startswith(".pilotid")] == []


def test_probe_fails_for_the_root_directory(site, capsys):  # noqa: F811
    status = cli.main(["-q", "probe", "--queues", str(site["queues"]), "--queue", "ANALY_UNIT",
                       "--workdir", "/", "--json"])
    checks = json.loads(capsys.readouterr().out)
    failed = [c for c in checks if c["status"] == "fail"]
    assert status == 22
    assert [c["name"] for c in failed] == ["work directory"]


def test_prepare_workdir_makes_nothing_in_the_work_directory(tmp_path):
    prepare_workdir(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_prepare_workdir_refuses_a_missing_directory(tmp_path):
    with pytest.raises(WorkdirError, match="does not exist"):
        prepare_workdir(tmp_path / "absent")


@pytest.mark.parametrize("leftover", [PRIVATE_DIR_NAME, ".pilotid-wrapper-7-0a1b.sh",
                                      ".pilotid-proxy-1002-0a1b", ".pilotid-marker-7-0a1b"])
def test_prepare_workdir_refuses_another_jobs_leftovers(tmp_path, leftover):
    """An older pilotid's private directory, or any name only pilotid makes in a work
    directory: a job still runs there, or left it unclean (issue 13, item 6)."""
    (tmp_path / "input.root").write_text("data")
    (tmp_path / leftover).mkdir()
    with pytest.raises(WorkdirLeftoversError, match="another job's pilotid files") as caught:
        prepare_workdir(tmp_path)
    assert caught.value.code == 26 and leftover in str(caught.value)


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_prepare_workdir_refuses_a_directory_a_running_jobs_journal_names(tmp_path, where):
    """A running job's work directory (or one inside it, or around it) holds nothing
    pilotid made at its top once the payload renamed or removed it: the running job's
    grant journal says whose it is."""
    state, running = tmp_path / "state", tmp_path / "running"
    (running / "sub").mkdir(parents=True)
    journal = GrantJournal.create(state, running, Account("x", 54321, 54321), "acl",
                                  os.geteuid(), None)
    try:
        asked = {"same": running, "inside": running / "sub", "around": tmp_path}[where]
        with pytest.raises(WorkdirLeftoversError, match="journal") as caught:
            prepare_workdir(asked, state_dir=state)
        assert caught.value.code == 26 and str(journal.path) in str(caught.value)
    finally:
        journal.remove()
    prepare_workdir(running, state_dir=state)


def test_prepare_workdir_ignores_a_dead_jobs_journal(tmp_path):
    """A dead job's grant is undone before this job's (``undo_dead_grants``)."""
    state, work = tmp_path / "state", tmp_path / "work"
    work.mkdir()
    pid = os.fork()
    if pid == 0:
        GrantJournal.create(state, work, Account("x", 54321, 54321), "acl", os.geteuid(),
                            None)
        os._exit(0)
    os.waitpid(pid, 0)
    prepare_workdir(work, state_dir=state)
