"""``python -m pilotid.demo``, the command ``make demo`` runs, as a real process."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from pilotid import demo

REPO = Path(__file__).resolve().parents[2]


def run_demo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pilotid.demo", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def printed_result(stdout: str) -> dict:
    """The JSON object the demo prints before the paths."""
    return json.loads(stdout.split("\n\nwork directory:", 1)[0])


def test_demo_runs_the_job_and_names_where_everything_is(tmp_path):
    base = tmp_path / "demo"
    done = run_demo("--base", str(base), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = printed_result(done.stdout)
    workdir = base / "workdir"
    assert (result["outcome"], result["error_code"], result["exit_code"]) == ("succeeded", 0, 0)
    assert (result["switcher"], result["panda_id"]) == ("noop", 4242001)
    assert result["workdir"] == str(workdir)
    output = workdir / demo.OUTPUT
    for path in (output, workdir / "accounting.jsonl", result["stdout"], result["stderr"],
                 base / "queues.json"):
        assert str(path) in done.stdout
    assert "(missing)" not in done.stdout
    written = json.loads(output.read_text())
    assert written["standin"] == "runAthena" and written["who"]["uid"] == os.geteuid()
    assert written["inputs"][0]["name"] == demo.INPUT


def test_demo_logs_and_accounting_record(tmp_path):
    base = tmp_path / "demo"
    done = run_demo("--base", str(base), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    workdir = base / "workdir"
    log = (workdir / "pilotid-4242001.stdout").read_text()
    assert "runAthena stand-in (not ATLAS's runAthena)" in log
    assert f"wrote {demo.OUTPUT}" in log
    records = [json.loads(line) for line in
               (workdir / "accounting.jsonl").read_text().splitlines()]
    assert len(records) == 1
    assert records[0]["user_dn"] == demo.USER_DN
    assert records[0] == printed_result(done.stdout) | {"user_dn": demo.USER_DN, "token": None}
    assert "job 4242001: succeeded" in done.stderr  # the launcher's own log
    assert stat.S_IMODE((base / "x509up_demo").stat().st_mode) == 0o600
    assert not list(workdir.glob(".pilotid*")), "credentials or scratch files left"


def test_demo_without_base_makes_a_new_run_under_demo_run(tmp_path):
    """``make demo`` runs it with no argument, from the checkout."""
    for _ in range(2):
        done = run_demo(cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    runs = sorted((tmp_path / "demo-run").iterdir())
    assert len(runs) == 2 and all(run.name.startswith("job-") for run in runs)
    assert printed_result(done.stdout)["workdir"] in {str(run / "workdir") for run in runs}


def test_make_demo_runs_exactly_this_module():
    """``make demo`` = a virtualenv with pilotid installed, then ``python -m pilotid.demo``;
    the tests above (and tests/system/test_run_sudo.py, as a non-root account) run that."""
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0].splitlines()
    assert recipe[0].split() == ["venv"]
    assert [line.strip() for line in recipe[1:]] == ["$(PY) -m pilotid.demo"]


def test_demo_twice_on_one_directory_says_so_in_one_line(tmp_path):
    base = tmp_path / "demo"
    assert run_demo("--base", str(base), cwd=tmp_path).returncode == 0
    again = run_demo("--base", str(base), cwd=tmp_path)
    assert again.returncode == 2
    assert "Traceback" not in again.stderr
    assert f"--base {base} is not empty" in again.stderr


def test_demo_with_a_base_that_cannot_be_made_says_so_in_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    done = run_demo("--base", str(tmp_path / "a-file" / "demo"), cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "cannot make the demo's directory" in done.stderr


def test_demo_as_root_says_its_payload_runs_as_root(tmp_path):
    done = run_demo("--base", str(tmp_path / "demo"), cwd=tmp_path)
    said = "its payload runs as root too" in done.stderr
    assert said == (os.geteuid() == 0)
