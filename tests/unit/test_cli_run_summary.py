"""``pilotid run`` without ``--json``: a summary of what is known, never Python's ``None``,
and with ``-q`` the job's error once."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

from pilotid import demo
from pilotid.commands.run import summary_lines
from pilotid.launcher import PayloadResult

REPO = Path(__file__).resolve().parents[2]
NOW = datetime.datetime(2026, 12, 6, tzinfo=datetime.timezone.utc)


def result(**fields) -> PayloadResult:
    values = dict(panda_id=7, outcome="succeeded", exit_code=0, signal=None, error_code=0,
                  error=None, account=None, switcher="noop", sandbox_mode="none",
                  workdir=Path("/scratch/job"), stdout=Path("/scratch/job/p-7.stdout"),
                  stderr=Path("/scratch/job/p-7.stderr"), started=NOW, ended=NOW)
    values.update(fields)
    return PayloadResult(**values)


def test_a_job_that_never_started_has_no_exit_code_and_no_logs_in_its_summary():
    lines = summary_lines(result(outcome="credential_failed", exit_code=None, error_code=30,
                                 error="no proxy", stdout=None, stderr=None))
    assert lines == ["job 7: credential_failed, error code 30: no proxy",
                     "work directory /scratch/job; no logs (the payload did not start)"]
    assert "None" not in "\n".join(lines)


def test_a_payload_killed_by_a_signal_is_summarised_by_its_signal():
    lines = summary_lines(result(outcome="payload_terminated", exit_code=None, signal=9,
                                 error_code=71, error="killed"))
    assert lines[0] == "job 7: payload_terminated, killed by signal 9, error code 71: killed"
    assert lines[1] == "work directory /scratch/job; logs /scratch/job/p-7.stdout " \
                       "/scratch/job/p-7.stderr"


def test_quiet_run_prints_the_jobs_error_once(tmp_path):
    queues, _, workdir = demo.prepare(tmp_path)
    job = tmp_path / "job.json"
    # a job of another user than the demo proxy's: the launcher refuses it
    job.write_text(json.dumps({"PandaID": 5, "transformation": "runAthena-00-00-11",
                               "prodUserID": "/DC=org/DC=example/CN=Someone Else"}))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "pilotid", "-q", "run", "--queues", str(queues),
                           "--queue", "ANALY_DEMO", "--job", str(job), "--workdir", str(workdir)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 30
    assert (done.stdout + done.stderr).count("refusing to run one user's job") == 1
