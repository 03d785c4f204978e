"""A runAthena job end to end: ``pilotid run`` as the pilot account, the user's proxy from
the session's real myproxy-server, the payload switched to the user's account by sudo.

``python -m pilotid run`` runs as ``pilotid-pilot`` (setpriv), authenticating to MyProxy
with its own proxy (``X509_USER_PROXY``); the queue says ``credential_source: myproxy`` and
``switcher: sudo`` with a grid-mapfile that maps alice's DN to ``pilotid-alice``; the job's
``prodUserID`` and ``credname`` select the credential.  The site's ``runAthena`` (a queue
``transformation_dirs`` entry) records what the payload sees of its proxy with
``grid-proxy-info``, run as the payload's account, then execs pilotid's runAthena stand-in.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Dict, Optional

import pytest

from pilotid.errors import CredentialRefusedError
from pilotid.identity.proxy import parse_proxy
from tests.conftest import ALICE_DN, EVE_DN, PILOT_DN
from tests.system import node

INPUT = "data11_7TeV.AOD._0001.pool.root.1"
ANOTHER_PILOT_DN = "/DC=org/DC=example/OU=Robots/CN=Another Queue Pilot 7"
# What the site's runAthena writes: the payload's proxy as the payload sees it, then the
# stand-in's own report on standard output.
SITE_RUNATHENA = """#!/bin/bash
set -u
{{
  echo "proxy-path=$X509_USER_PROXY"
  echo "proxy-stat=$(stat -c '%u %a' -- "$X509_USER_PROXY")"
  echo "proxy-identity=$(grid-proxy-info -file "$X509_USER_PROXY" -identity 2>&1)"
  echo "proxy-sha256=$(sha256sum < "$X509_USER_PROXY" | cut -d' ' -f1)"
  echo "whoami=$(id -un)"
}} > payload-proxy.txt
exec {python} {standin} "$@"
"""


@pytest.fixture(scope="module")
def credentials(myproxy):
    """Alice's and eve's credentials, stored under their DNs (``myproxy-init -d``), as PanDA
    users did: alice's lets the pilot retrieve it, eve's names another queue's pilot."""
    myproxy.store("alice", "e2e-alice", PILOT_DN, username=None)
    myproxy.store("alice", "e2e-alice-cached", PILOT_DN, username=None)
    myproxy.store("eve", "e2e-eve", ANOTHER_PILOT_DN, username=None)
    return myproxy


class PilotSite:
    """One worker node's set-up for the pilot account: its proxy and credential cache, the
    grid-mapfile, the site's runAthena, the queue settings; runs jobs with ``pilotid run``."""

    def __init__(self, lab, base: Path, pilot_install) -> None:
        self.lab = lab
        self.base = base
        self.python, self.pythonpath = pilot_install
        self.pilot = node.account(node.PILOT)
        private = base / "pilot"
        private.mkdir(mode=0o700)
        self.proxy = private / "x509up"
        shutil.copyfile(lab.proxy("pilot"), self.proxy)
        self.proxy.chmod(0o600)
        self.cache = private / "credential-cache"
        for path in (private, self.proxy):
            os.chown(path, self.pilot.uid, self.pilot.gid)
        mapfile = base / "grid-mapfile"
        mapfile.write_text(f'"{ALICE_DN}" {node.ALICE}\n"{EVE_DN}" {node.BOB}\n')
        trf = base / "trf"
        trf.mkdir()
        (trf / "runAthena").write_text(SITE_RUNATHENA.format(
            python=shlex.quote(self.python),
            standin=shlex.quote(str(Path(self.pythonpath) / "pilotid/payloads/transformations"
                                    / "runAthena"))))
        for path in (mapfile, trf / "runAthena"):
            path.chmod(0o644)
        self.queues = base / "queues.json"
        common = {"switcher": "sudo", "credential_source": "myproxy", "grid_mapfile":
                  str(mapfile), "transformation_dirs": [str(trf)], "sandbox": "acl",
                  "timeout": 300}
        self.queues.write_text(json.dumps({"queues": {
            "ANALY_MYPROXY_SUDO": dict(common, myproxy_server="localhost",
                                       myproxy_port=lab.port),
            "ANALY_MYPROXY_BY_JOB": dict(common),
        }}))
        self.queues.chmod(0o644)
        self._jobs = 0

    def workdir(self, name: str) -> Path:
        """A new work directory of the pilot's, with the job's input staged in."""
        path = self.base / name
        path.mkdir(mode=0o755)
        (path / INPUT).write_bytes(b"stand-in AOD events\n" * 50)
        for item in (path, path / INPUT):
            os.chown(item, self.pilot.uid, self.pilot.gid)
        return path

    def job(self, owner_dn: str, credname: str, **fields: object) -> Path:
        """A runAthena job description of ``owner_dn`` for MyProxy credential ``credname``."""
        self._jobs += 1
        panda_id = 4242100 + self._jobs
        job = {"PandaID": panda_id, "transformation": "runAthena-00-00-11",
               "jobPars": f"-j AnalysisSkeleton_topOptions.py -i '[\"{INPUT}\"]' "
                          f"-o '{{\"hist.root\": \"user.alice.{panda_id}.hist.root\"}}'",
               "prodUserID": owner_dn, "credname": credname, "inFiles": INPUT,
               "outFiles": f"user.alice.{panda_id}.hist.root", "prodSourceLabel": "user"}
        job.update(fields)
        path = self.base / f"job-{panda_id}.json"
        path.write_text(json.dumps(job))
        path.chmod(0o644)
        return path

    def run(self, queue: str, job: Path, workdir: Path,
            extra_env: Optional[Dict[str, str]] = None):
        """``python -m pilotid run ... --json`` as the pilot; returns (result, process)."""
        env = {"PYTHONPATH": self.pythonpath, "X509_USER_PROXY": str(self.proxy),
               "X509_CERT_DIR": str(self.lab.cert_dir),
               "PILOTID_CREDENTIAL_CACHE": str(self.cache)}
        env.update(extra_env or {})
        done = node.run_as(node.PILOT, [self.python, "-m", "pilotid", "run", "--queues",
                                        str(self.queues), "--queue", queue, "--job", str(job),
                                        "--workdir", str(workdir), "--json"],
                           env=env, cwd=workdir, text=True)
        assert done.stdout.strip(), f"pilotid run printed no result:\n{done.stderr}"
        return json.loads(done.stdout), done


def payload_view(workdir: Path) -> Dict[str, str]:
    """What the site's runAthena recorded of the payload's proxy."""
    lines = (workdir / "payload-proxy.txt").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def standin_report(result) -> Dict[str, str]:
    """The ``key=value`` lines the runAthena stand-in printed on the payload's stdout."""
    text = Path(result["stdout"]).read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.fixture
def site(credentials, shared_tmp, pilot_install):
    """The pilot's site in a fresh shared directory."""
    return PilotSite(credentials, shared_tmp, pilot_install)


def test_runathena_runs_as_the_user_the_retrieved_proxy_maps_to(site):
    workdir = site.workdir("work")
    result, done = site.run("ANALY_MYPROXY_SUDO", site.job(ALICE_DN, "e2e-alice"), workdir)
    assert (result["outcome"], result["exit_code"], result["error_code"]) == \
        ("succeeded", 0, 0), (result, done.stderr)
    assert done.returncode == 0
    alice = node.account(node.ALICE)
    assert result["account"] == alice.as_dict()
    assert (result["switcher"], result["sandbox_mode"]) == ("sudo", "acl")
    report = standin_report(result)
    assert (report["uid"], report["user"]) == (str(alice.uid), node.ALICE)
    assert Path(report["cwd"]) == workdir
    assert (workdir / f"user.alice.{result['panda_id']}.hist.root").is_file()
    record = json.loads((workdir / "accounting.jsonl").read_text().splitlines()[-1])
    assert record["user_dn"] == ALICE_DN and record["outcome"] == "succeeded"


def test_payload_x509_user_proxy_is_the_retrieved_proxy_of_the_user(site):
    workdir = site.workdir("work")
    result, done = site.run("ANALY_MYPROXY_SUDO", site.job(ALICE_DN, "e2e-alice"), workdir)
    assert result["outcome"] == "succeeded", (result, done.stderr)
    seen = payload_view(workdir)
    alice = node.account(node.ALICE)
    # grid-proxy-info, run by the payload as pilotid-alice, reads alice's identity from it
    assert seen["whoami"] == node.ALICE
    assert seen["proxy-identity"] == ALICE_DN
    assert seen["proxy-stat"] == f"{alice.uid} 600"
    assert standin_report(result)["X509_USER_PROXY"] == seen["proxy-path"]
    # byte for byte what the GET returned (the pilot's cache keeps exactly that)
    (retrieved,) = site.cache.glob("*.pem")
    assert hashlib.sha256(retrieved.read_bytes()).hexdigest() == seen["proxy-sha256"]
    assert parse_proxy(retrieved.read_bytes()).identity == ALICE_DN
    assert Path(seen["proxy-path"]).parent.parent == workdir  # its handover directory
    assert Path(seen["proxy-path"]) != site.proxy
    # the pilot's own proxy never reached the payload, and no copy of either is left behind
    assert str(site.proxy) not in Path(result["stdout"]).read_text()
    assert not Path(seen["proxy-path"]).parent.exists()
    assert [p.name for p in workdir.iterdir() if "proxy" in p.name] == ["payload-proxy.txt"]


def test_server_from_the_job_and_server_dn_from_the_environment(site):
    """The queue names no server: the job's ``myproxy`` field does (an address, so the
    server's DN is given as ``MYPROXY_SERVER_DN``, as for a MyProxy client)."""
    workdir = site.workdir("work")
    job = site.job(ALICE_DN, "e2e-alice", myproxy=f"127.0.0.1:{site.lab.port}")
    result, done = site.run("ANALY_MYPROXY_BY_JOB", job, workdir,
                            {"MYPROXY_SERVER_DN": "/CN=localhost"})
    assert result["outcome"] == "succeeded", (result, done.stderr)
    assert payload_view(workdir)["proxy-identity"] == ALICE_DN


def test_refused_retrieval_ends_as_credential_failed_with_the_refusal_code(site):
    """Eve's credential names another queue's pilot: the server refuses this one."""
    workdir = site.workdir("work")
    result, done = site.run("ANALY_MYPROXY_SUDO", site.job(EVE_DN, "e2e-eve"), workdir)
    assert (result["outcome"], result["error_code"]) == \
        ("credential_failed", CredentialRefusedError.code), result
    assert done.returncode == CredentialRefusedError.code
    assert "authentication failed" in result["error"]
    assert f"MyProxy server localhost:{site.lab.port}" in result["error"]
    assert result["exit_code"] is None and result["account"] is None
    assert result["stdout"] is None  # nothing was started
    assert not (workdir / "payload-proxy.txt").exists()
    record = json.loads((workdir / "accounting.jsonl").read_text())
    assert record["user_dn"] == EVE_DN and record["outcome"] == "credential_failed"
    assert sorted(p.name for p in workdir.iterdir()) == sorted([INPUT, "accounting.jsonl"])


def test_second_job_of_the_user_is_served_from_the_node_cache(site):
    """After the first job, alice's credential is removed from the server: the second job
    can only have its proxy from the pilot's cache, and it is the very same proxy."""
    first_dir, second_dir = site.workdir("job1"), site.workdir("job2")
    first, done = site.run("ANALY_MYPROXY_SUDO", site.job(ALICE_DN, "e2e-alice-cached"),
                           first_dir)
    assert first["outcome"] == "succeeded", (first, done.stderr)
    entries = sorted(p.name for p in site.cache.iterdir() if p.suffix == ".pem")
    assert len(entries) == 1
    cache_info = site.cache.stat()
    assert (cache_info.st_uid, cache_info.st_mode & 0o777) == (site.pilot.uid, 0o700)

    site.lab.run(["myproxy-destroy", *site.lab.server_args, "-d", "-k", "e2e-alice-cached"],
                 proxy=site.lab.proxy("alice"))
    gone, _ = site.lab.logon("e2e-alice-cached", proxy=site.lab.proxy("pilot"),
                             username=ALICE_DN)
    assert gone.returncode != 0  # the server no longer has it

    second, done = site.run("ANALY_MYPROXY_SUDO", site.job(ALICE_DN, "e2e-alice-cached"),
                            second_dir)
    assert second["outcome"] == "succeeded", (second, done.stderr)
    assert "credential cache: reusing" in done.stderr
    assert payload_view(first_dir)["proxy-sha256"] == payload_view(second_dir)["proxy-sha256"]
    assert payload_view(second_dir)["proxy-identity"] == ALICE_DN
    assert sorted(p.name for p in site.cache.iterdir() if p.suffix == ".pem") == entries

