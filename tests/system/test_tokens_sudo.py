"""Bearer tokens on the real node: a token-only job through real sudo as pilotid-alice, and
the bt_u owner check against a file of another real account (pilotid-bob).

The pilot is pilotid-pilot (setpriv), running this checkout's pilotid as a site would, with
a token of its own in BEARER_TOKEN and BEARER_TOKEN_FILE; the job's token comes from the
``token-file`` source (a file the pilot obtained for the job), is verified against the test
issuer's JWKS file and mapped through a token map to pilotid-alice.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from pilotid.errors import TokenError
from pilotid.identity.testissuer import TestIssuer
from pilotid.identity.tokens import read_owned_token_file
from tests.system import node

ISSUER = TestIssuer("https://atlas-auth.example.org/", key_id="sys1")
PAYLOAD = """#!/bin/bash
echo "uid=$(id -u)"
echo "token_file=$BEARER_TOKEN_FILE"
echo "token_mode=$(stat -c %a "$BEARER_TOKEN_FILE")"
echo "token=$(cat "$BEARER_TOKEN_FILE")"
if cat {pilot_token} >/dev/null 2>&1; then echo pilot_token=readable
else echo pilot_token=unreadable; fi
echo "bearer_token=${{BEARER_TOKEN-unset}}"
echo "x509=${{X509_USER_PROXY-unset}}"
"""


REFRESH_PAYLOAD = """#!/bin/bash
first=$(cat "$BEARER_TOKEN_FILE"); : > started
now=$first; i=0
while [ "$now" = "$first" ] && [ $i -lt 900 ]; do
  sleep 0.1; i=$((i+1)); now=$(cat "$BEARER_TOKEN_FILE")
done
echo "uid=$(id -u)"
echo "first=$first"
echo "token=$now"
echo "token_mode=$(stat -c %a "$BEARER_TOKEN_FILE")"
"""


class TokenSite:
    """The pilot's area, its own token, the job tokens, the issuer's keys and the maps."""

    def __init__(self, base: Path, python: str, pythonpath: str) -> None:
        self.base, self.python, self.pythonpath = base, python, pythonpath
        self.pilot = node.account(node.PILOT)
        self.area = self.own(base / "pilot-area", 0o700)
        self.tmp = self.own(self.area / "tmp", 0o700)
        self.tokens = self.own(self.area / "tokens", 0o700)
        self.pilot_token_raw = ISSUER.token("the-pilot", groups=["/atlas/pilot"])
        self.pilot_token = self.own(self.area / "bt_pilot", 0o600, self.pilot_token_raw)
        jwks = ISSUER.write_jwks(base / "atlas.jwks")
        token_map = base / "token-map"
        token_map.write_text(f"sub {ISSUER.url} alice-0001 {node.ALICE}\n")
        grid_mapfile = base / "grid-mapfile"
        grid_mapfile.write_text("")
        for path in (token_map, grid_mapfile):
            path.chmod(0o644)
        trf = base / "trf"
        trf.mkdir(mode=0o755)
        (trf / "runAthena").write_text(PAYLOAD.format(pilot_token=self.pilot_token))
        (trf / "runAthena").chmod(0o755)
        refresh_trf = base / "trf-refresh"
        refresh_trf.mkdir(mode=0o755)
        (refresh_trf / "runAthena").write_text(REFRESH_PAYLOAD)
        (refresh_trf / "runAthena").chmod(0o755)
        rename_trf = base / "trf-rename"
        rename_trf.mkdir(mode=0o755)
        (rename_trf / "runAthena").write_text(
            "#!/bin/bash\nmkdir kept && mv \"$BEARER_TOKEN_FILE\" kept/bt\n")
        (rename_trf / "runAthena").chmod(0o755)
        queue = {
            "switcher": "sudo", "credential_source": "token-file",
            "token_file": str(self.tokens / "{panda_id}.bt"),
            "token_issuers": {ISSUER.url: str(jwks)}, "token_mapfile": str(token_map),
            "grid_mapfile": str(grid_mapfile), "jobs_without_dn": "token_subject",
            "sandbox": "acl", "umask": "0022", "timeout": 120, "grace_period": 5,
            "transformation_dirs": [str(trf)], "env_pass": ["TMPDIR"],
            "work_root": str(self.area), "state_dir": str(self.area / "state")}
        self.queues = base / "queues.json"
        self.queues.write_text(json.dumps({"queues": {
            "ANALY_SUDO_TOKENS": queue,
            "ANALY_SUDO_TOKENS_REFRESH": {**queue, "transformation_dirs": [str(refresh_trf)],
                                          "proxy_refresh_interval": 1},
            "ANALY_SUDO_TOKENS_RENAME": {**queue, "transformation_dirs": [str(rename_trf)]},
            "ANALY_NOOP_BWRAP_TOKENS": {
                **{k: v for k, v in queue.items() if k not in ("token_mapfile", "grid_mapfile")},
                "switcher": "noop", "isolation": "bwrap"}}}))
        self.queues.chmod(0o644)
        self.count = 0

    def own(self, path: Path, mode: int, text: str = None) -> Path:
        if text is None:
            path.mkdir()
        else:
            path.write_text(text)
        os.chown(path, self.pilot.uid, self.pilot.gid)
        path.chmod(mode)
        return path

    def run(self, raw: str, owner: str = "alice-0001", queue: str = "ANALY_SUDO_TOKENS",
            while_running=None) -> dict:
        self.count += 1
        panda_id = 5100 + self.count
        self.own(self.tokens / f"{panda_id}.bt", 0o600, raw + "\n")
        work = self.own(self.area / f"job-{self.count}", 0o700)
        job = self.base / f"job-{self.count}.json"
        job.write_text(json.dumps({"PandaID": panda_id, "prodUserID": owner,
                                   "transformation": "runAthena-00-00-11", "jobPars": "",
                                   "prodSourceLabel": "user"}))
        job.chmod(0o644)
        argv = [self.python, "-m", "pilotid", "run", "--queues", str(self.queues),
                "--queue", queue, "--job", str(job), "--workdir", str(work), "--json"]
        env = {"PYTHONPATH": self.pythonpath, "TMPDIR": str(self.tmp),
               "BEARER_TOKEN": self.pilot_token_raw, "BEARER_TOKEN_FILE": str(self.pilot_token)}
        process = node.popen_as(node.PILOT, argv, env=env, cwd=Path("/"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            if while_running is not None:
                while_running(work, self.tokens / f"{panda_id}.bt")
        finally:
            stdout, stderr = process.communicate(timeout=180)
        done = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
        assert done.stdout.strip(), done.stderr.decode(errors="replace")
        result = json.loads(done.stdout)
        result["printed"] = dict(
            line.split("=", 1) for line in Path(result["stdout"]).read_text().splitlines()
            if "=" in line) if result.get("stdout") else {}
        result["records"] = [json.loads(line) for line in
                             (work / "accounting.jsonl").read_text().splitlines()]
        result["stderr_text"] = done.stderr.decode(errors="replace")
        result["work"] = work
        return result


@pytest.fixture(scope="module")
def token_site(real_node, pilot_install):
    python, pythonpath = pilot_install
    base = node.make_shared_dir("pilotid-tokens-sudo-")
    try:
        yield TokenSite(base, python, pythonpath)
    finally:
        subprocess.run(["rm", "-rf", "--", str(base)], check=False)


def test_alices_payload_reads_its_own_token_and_not_the_pilots(token_site):
    raw = ISSUER.token("alice-0001", groups=["/atlas", "/atlas/higgs"])
    result = token_site.run(raw)
    assert result["outcome"] == "succeeded", result["stderr_text"]
    printed = result["printed"]
    assert printed["uid"] == str(node.account(node.ALICE).uid)
    assert printed["token"] == raw and printed["token_mode"] == "600"
    assert printed["pilot_token"] == "unreadable"
    assert printed["bearer_token"] == "unset" and printed["x509"] == "unset"
    assert not Path(printed["token_file"]).exists(), "the payload's token copy was left"
    assert result["account"]["name"] == node.ALICE
    assert result["records"][-1]["token"] == {
        "issuer": ISSUER.url, "subject": "alice-0001", "groups": ["/atlas", "/atlas/higgs"]}


def test_a_token_copy_the_payload_renamed_does_not_outlive_the_job(token_site):
    """The payload moves its token copy to ``kept/bt``: found by the identity the wrapper
    wrote in its marker, removed and reported."""
    raw = ISSUER.token("alice-0001", groups=["/atlas"])
    result = token_site.run(raw, queue="ANALY_SUDO_TOKENS_RENAME")
    assert result["outcome"] == "succeeded", result["stderr_text"]
    assert not (result["work"] / "kept" / "bt").exists(), result["stderr_text"]
    assert "removed kept/bt, a credential copy the payload moved" in result["stderr_text"]


def test_a_token_the_map_does_not_know_never_runs(token_site):
    result = token_site.run(ISSUER.token("mallory-0666"), owner="mallory-0666")
    assert result["outcome"] == "switch_failed" or result["error_code"] == 40, result
    assert "printed" not in result or "uid" not in result["printed"]


def test_a_forged_token_is_refused_before_anything_runs(token_site):
    forger = TestIssuer(ISSUER.url, key_id="sys1")  # the issuer's name, another key
    result = token_site.run(forger.token("alice-0001"))
    assert result["outcome"] == "credential_failed" and result["error_code"] == 93, result
    assert "uid" not in result["printed"]


def test_a_bt_u_file_of_pilotid_bob_is_refused(shared_tmp):
    bob = node.account(node.BOB)
    path = shared_tmp / "bt_u0"
    path.write_text(ISSUER.token())
    os.chown(path, bob.uid, bob.gid)
    path.chmod(0o600)
    with pytest.raises(TokenError, match=f"owned by uid {bob.uid}"):
        read_owned_token_file(path, os.geteuid())


def test_alices_discovery_refuses_bobs_bt_u_in_her_runtime_directory(shared_tmp,
                                                                      pilot_install):
    """As pilotid-alice, with XDG_RUNTIME_DIR holding a bt_u<alice> that pilotid-bob made."""
    python, pythonpath = pilot_install
    alice, bob = node.account(node.ALICE), node.account(node.BOB)
    runtime = shared_tmp / "run"
    runtime.mkdir()
    runtime.chmod(0o1777)
    planted = runtime / f"bt_u{alice.uid}"
    planted.write_text(ISSUER.token("bob"))
    os.chown(planted, bob.uid, bob.gid)
    planted.chmod(0o644)
    done = node.run_as(node.ALICE, [python, "-c", (
        "import os\n"
        "from pilotid.errors import TokenError\n"
        "from pilotid.identity.tokens import discover_token\n"
        "try:\n"
        "    print(discover_token(os.environ, os.geteuid()))\n"
        "except TokenError as error:\n"
        "    print('refused:', error)\n")],
        env={"PYTHONPATH": pythonpath, "XDG_RUNTIME_DIR": str(runtime)})
    out = done.stdout.decode()
    assert out.startswith("refused:") and f"owned by uid {bob.uid}" in out, (
        out, done.stderr.decode())


def test_a_newer_token_replaces_the_running_payloads_copy(token_site):
    """The job's token has 400 s left, under token_refresh_threshold (600 s): once the
    payload runs, the pilot's source gets a newer one, which the pilot renames over the
    payload's copy (readable by pilotid-alice alone); the payload reads it at the same
    path."""
    old = ISSUER.token("alice-0001", lifetime=400)
    new = ISSUER.token("alice-0001", lifetime=3600)

    def newer_token_arrives(work: Path, job_token: Path) -> None:
        deadline = time.monotonic() + 60
        while not (work / "started").exists():
            assert time.monotonic() < deadline, "the payload never started"
            time.sleep(0.05)
        staging = token_site.own(job_token.with_suffix(".new"), 0o600, new + "\n")
        os.replace(staging, job_token)

    result = token_site.run(old, queue="ANALY_SUDO_TOKENS_REFRESH",
                            while_running=newer_token_arrives)
    assert result["outcome"] == "succeeded", result["stderr_text"]
    printed = result["printed"]
    assert printed["uid"] == str(node.account(node.ALICE).uid)
    assert (printed["first"], printed["token"]) == (old, new)


def test_a_noop_bwrap_payload_reads_its_token_and_not_the_pilots(token_site):
    """No switch, bubblewrap: the payload runs as the pilot, reads its own copy through
    BEARER_TOKEN_FILE, and cannot reach the pilot's own token outside the work directory."""
    raw = ISSUER.token("alice-0001")
    result = token_site.run(raw, queue="ANALY_NOOP_BWRAP_TOKENS")
    assert result["outcome"] == "succeeded", result["stderr_text"]
    printed = result["printed"]
    assert printed["uid"] == str(node.account(node.PILOT).uid)
    assert printed["token"] == raw and printed["token_mode"] == "600"
    assert printed["pilot_token"] == "unreadable"
    assert printed["bearer_token"] == "unset" and printed["x509"] == "unset"


def test_a_token_of_another_user_is_refused(token_site):
    result = token_site.run(ISSUER.token("alice-0001"), owner="bob-0002")
    assert result["outcome"] == "credential_failed" and result["error_code"] == 30, result
    assert "uid" not in result["printed"]
