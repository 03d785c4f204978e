"""Job fields and environment values are data, never code; credentials are private from
the moment they exist; nothing is world-writable where ACLs work.

Whole jobs through ``pilotid run`` as the unprivileged pilot, switched by real sudo, with
``probe_payload.py`` as the transformation (tests/security/scene.py).
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shlex
import shutil
import stat
import threading
from pathlib import Path

import pytest

from tests.security.scene import BOB_DN, own
from tests.system import node

PROBE = Path(__file__).with_name("probe_payload.py")
DRIVER = Path(__file__).with_name("creation_driver.py")


@pytest.fixture
def probe(scene):
    scene.install("runAthena", PROBE)
    scene.canary = f"/tmp/pilotid-canary-{secrets.token_hex(6)}"
    yield scene
    for path in glob.glob(scene.canary + "*"):
        os.unlink(path)


def tricks(canary: str) -> list:
    """Strings a shell would run something from."""
    return [f"$(touch {canary}-1)", f"`touch {canary}-2`", f"; touch {canary}-3",
            f"| touch {canary}-4", f"&& touch {canary}-5", f"' ; touch {canary}-6 ; '",
            f"\" ; touch {canary}-7 ; \"", f"$'\\x3b' touch {canary}-8", "*", "~root",
            f"${{IFS}}touch${{IFS}}{canary}-9", "%s%n", "\\", "-x", "--help",
            "caf\u00e9 \u2603", "line1\nline2"]


def no_canary(canary: str) -> None:
    assert glob.glob(canary + "*") == [], "an injected command ran"


def test_job_fields_reach_the_payload_as_data_never_as_code(probe):
    args = tricks(probe.canary)
    job = probe.job(jobPars=shlex.join(args),
                    transformation=f"https://evil.example/$(touch {probe.canary}-t)/"
                                   "runAthena-00-00-11",
                    swRelease=f"Atlas-$(touch {probe.canary}-r)",
                    credname=f"cred'\"$(touch {probe.canary}-c)",
                    homepackage=f"`touch {probe.canary}-h`",
                    outFiles=f"out$(touch {probe.canary}-o).root,a;b.root",
                    inFiles=f"in`touch {probe.canary}-i`.root")
    run = probe.run(job)
    assert run.outcome == "succeeded", run.why()
    report = run.report("probe-report.json")
    assert report["argv"] == args
    assert report["environ"]["ATLAS_RELEASE"] == f"Atlas-$(touch {probe.canary}-r)"
    no_canary(probe.canary)
    probe.check_aftermath(run)


@pytest.mark.parametrize("field,value", [
    ("credname", "cred\nUSERNAME=someone-else"),
    ("prodUserID", "/DC=org/CN=Alice\n/CN=root"),
    ("inFiles", "a.root\n../../etc/passwd"),
    ("outFiles", "../outside.root"),
    ("logFile", "/etc/cron.d/evil"),
    ("myproxy", "myproxy.example.org\r\nCOMMAND=3"),
    ("jobPars", "--x \0 --y"),
])
def test_control_characters_and_escapes_in_job_fields_are_refused(probe, field, value):
    run = probe.run(probe.job(**{field: value}))
    assert run.returncode == 20, run.why()  # JobDescriptionError: the dispatcher's fault
    no_canary(probe.canary)


def test_a_dn_with_quotes_maps_and_runs(probe):
    run = probe.run(probe.job(prodUserID=BOB_DN), proxy_file=str(probe.proxies["bob"]))
    assert run.outcome == "succeeded", run.why()
    assert run.result["account"]["name"] == node.BOB
    probe.check_aftermath(run)


def test_a_dn_that_is_not_the_proxys_is_refused(probe):
    run = probe.run(probe.job(prodUserID=BOB_DN + '" pilotid-alice'))
    assert run.outcome == "credential_failed", run.why()
    assert run.error_code == 30
    probe.check_aftermath(run, expect_payload_logs=False)


def test_pilot_secrets_the_queue_does_not_pass_stay_with_the_pilot(probe):
    """Issue 13 item 5, end to end under sudo: the default queue passes none of these."""
    pilot = {"MY_TOKEN": "t", "GITHUB_TOKEN": "t", "PGPASSWORD": "p", "SCITOKEN": "t",
             "HTTPS_PROXY": "http://pilot:secret@squid:3128", "X509_PROXY_FILE": "/pilot/p",
             "PYTHONPATH": "/pilot/py", "PERL5OPT": "-Mpilot", "TMPDIR": "/home/pilot/tmp"}
    run = probe.run(probe.job(), env=pilot)
    assert run.outcome == "succeeded", run.why()
    environ = run.report("probe-report.json")["environ"]
    assert sorted(name for name in pilot if name in environ) == []
    probe.check_aftermath(run)


def test_environment_values_reach_the_payload_as_data_never_as_code(probe):
    script = Path(probe.canary.replace("canary", "env-script") + ".sh")
    script.write_text(f"touch {probe.canary}-bash-env\n")
    script.chmod(0o644)
    values = {f"EVIL_{i}": v for i, v in enumerate(tricks(probe.canary))}
    denied = {"BASH_ENV": str(script), "ENV": str(script), "PS4": f"$(touch {probe.canary}-p)",
              "SHELLOPTS": "xtrace", "PROMPT_COMMAND": f"touch {probe.canary}-pc",
              "IFS": "x", "BASH_FUNC_cd%%": f"() {{ touch {probe.canary}-f; }}",
              "GLEXEC_CLIENT_CERT": "/etc/shadow", "OIDC_TOKEN": "pilot-oidc",
              "X509_USER_CERT": "/pilot/usercert.pem", "LD_AUDIT": "/pilot/audit.so"}
    # env_pass "*": the queue passes everything it can, the deny-list must still hold
    run = probe.run(probe.job(), env={**values, **denied}, env_pass=["*"])
    assert run.outcome == "succeeded", run.why()
    environ = run.report("probe-report.json")["environ"]
    for name, value in values.items():
        assert environ.get(name) == value, name
    for name in denied:
        assert name not in environ, name
    for name in ("BEARER_TOKEN", "PANDA_AUTH_TOKEN", "LD_PRELOAD"):
        assert name not in environ, name
    no_canary(probe.canary)
    script.unlink()
    probe.check_aftermath(run)


def test_no_world_writable_directory_and_a_private_proxy_where_acls_work(probe):
    run = probe.run(probe.job())
    assert run.outcome == "succeeded", run.why()
    assert run.result["sandbox_mode"] == "acl"
    report = run.report("probe-report.json")
    alice = node.account(node.ALICE)
    assert report["uid"] == alice.uid
    assert report["world_writable"] == []
    assert report["world_writable_parents"] == []
    assert report["egg_mode"] == 0o700
    assert report["proxy_mode"] == 0o600 and report["proxy_owner"] == alice.uid
    probe.check_aftermath(run)


def _watch_credentials(workdir: Path, stop: threading.Event, seen: list) -> None:
    """Poll (as root) every credential-looking file in ``workdir``: its mode and ACL."""
    while not stop.is_set():
        for pattern in (".pilotid/*", ".pilotid-proxy-*/*", "*.pem"):
            for path in glob.glob(str(workdir / pattern)):
                try:
                    info = os.lstat(path)
                    try:
                        acl = os.getxattr(path, "system.posix_acl_access", follow_symlinks=False)
                    except OSError:
                        acl = b""
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    seen.append((path, stat.S_IMODE(info.st_mode), acl, info.st_uid))


def _acl_users(blob: bytes) -> dict:
    """{uid: perm} of the named-user entries (tag 2) of a POSIX ACL xattr, and the group
    (tag 4) and other (tag 0x20) entries under keys 'group' and 'other'."""
    import struct
    found = {}
    for offset in range(4, len(blob), 8):
        tag, perm, ident = struct.unpack_from("<HHI", blob, offset)
        if tag == 2:
            found[ident] = perm
        elif tag == 4:
            found["group"] = perm
        elif tag == 0x20:
            found["other"] = perm
    return found


def test_credentials_are_never_readable_by_others_from_creation(probe, pilot_install):
    """Every credential the pilot writes is opened O_CREAT|O_EXCL|O_NOFOLLOW, 0600 when
    it appears (os.open wrapped in the pilot's process, fstat right after; nothing written
    through builtins.open, seen by an audit hook); while the job runs, a poller as root
    never sees one readable by the group, others, or any account but the pilot's and the
    user's, and the user's own copy (in its handover directory) is 0600 with no ACL."""
    python, site = pilot_install
    workdir = probe.workdir()
    cache_dir = probe.home / "cache"
    driver = probe.base / "creation_driver.py"
    shutil.copy(DRIVER, driver)
    driver.chmod(0o644)
    # a setup line runs after the user's copy is stored: it stays there long enough for the
    # poller to see it on a loaded machine, instead of the few ms a stand-in job takes
    config = {"queues": str(probe.queues(setup=["sleep 1"])), "queue": "SEC",
              "job": probe.job(),
              "workdir": str(workdir), "cache_dir": str(cache_dir),
              "proxy": str(probe.proxies["alice"])}
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=_watch_credentials, args=(workdir, stop, seen))
    watcher.start()
    try:
        done = node.run_as(node.PILOT, [python, str(driver), json.dumps(config)],
                           env={"PYTHONPATH": site})
    finally:
        stop.set()
        watcher.join()
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["outcome"] == "succeeded", report
    credential = ("user-proxy-", "x509up", ".pem", ".pilotid-proxy-")
    written = [o for o in report["opened"]
               if any(mark in os.path.basename(o["path"]) for mark in credential)
               or (o["path"].startswith(str(cache_dir) + "/") and not o["path"].endswith(".lock"))]
    by_os_open = [o for o in written if o["via"] == "os.open"]
    assert len(by_os_open) >= 2, written  # the job's copy and the cache's entry
    for entry in by_os_open:
        assert entry["excl"] and entry["nofollow"], entry
        assert entry["mode_after"] & 0o077 == 0, entry
    other_ways = [o for o in written if o["via"] == "audit" and isinstance(o.get("mode"), str)]
    assert other_ways == [], other_ways
    pilot, alice = node.account(node.PILOT).uid, node.account(node.ALICE).uid
    assert seen, "the poller saw no credential file at all"
    assert any(owner == alice for *_, owner in seen), "the poller never saw alice's copy"
    for path, mode, acl, owner in seen:
        assert mode & 0o007 == 0, (path, oct(mode))
        users = _acl_users(acl) if acl else {}
        assert users.get("group", (mode >> 3) & 7) & 4 == 0, (path, oct(mode), users)
        assert set(k for k in users if isinstance(k, int)) <= {pilot, alice}, (path, users)
        if owner == alice:  # the payload's own copy: 0600, no one named on it, ever
            assert (mode, acl) == (0o600, b""), (path, oct(mode), users)
    no_canary(probe.canary)
    own(workdir, node.PILOT, 0o700)
