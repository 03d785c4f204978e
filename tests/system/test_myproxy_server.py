"""pilotid's MyProxy client and MyProxySource against a real myproxy-server on loopback.

Credentials are stored with the real myproxy-init/myproxy-store and retrieved with pilotid,
and the other way round; results are read back with grid-proxy-info and voms-proxy-info.
"""

from __future__ import annotations

import datetime
import json
import os
import pwd
import shutil
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from pilotid.errors import CredentialRefusedError, CredentialServerError
from pilotid.identity.myproxy import (
    TRUSTROOTS_MARKER,
    ClientCredential,
    MyProxyClient,
    Passphrase,
    write_trustroots,
)
from pilotid.identity.proxy import parse_proxy
from pilotid.identity.testca import TestCA
from tests.conftest import ALICE_DN, PILOT_DN
from tests.system import node

PASSPHRASE = "correct horse battery"


@pytest.fixture(scope="module")
def lab(myproxy):
    """The session's myproxy-server with alice's credentials stored by the real tools."""
    lab = myproxy
    cert, key = lab.files["alice"]
    init = ["myproxy-init", *lab.server_args, "-C", str(cert), "-y", str(key), "-l", "alice",
            "-c", "24", "-t", "12", "-x"]
    lab.run(init + ["-k", "pilotcred", "-Z", PILOT_DN, "-K", "for pilots"])
    lab.run(init + ["-k", "fqancred", "-Z", "FQAN:/atlas/Role=pilot"])
    # as PanDA users did: the DN as username (-d), found by the job's prodUserID
    dn_init = [a for a in init if a not in ("-l", "alice")] + ["-d"]
    lab.run(dn_init + ["-k", "pilotcred", "-Z", PILOT_DN])
    lab.run(init[:-1] + ["-k", "passcred", "-S"], stdin=f"{PASSPHRASE}\n")
    voms = lab.voms_proxy("alice", "/atlas/Role=production", "/atlas")
    lab.run(["myproxy-store", *lab.server_args, "-c", str(voms), "-y", str(voms),
             "-l", "alice", "-k", "vomscred", "-x", "-Z", PILOT_DN], proxy=voms)
    return lab


def client(lab, who="pilot", proxy=None, **kw):
    credential = ClientCredential.load(proxy or lab.proxy(who))
    kw.setdefault("retries", 0)
    kw.setdefault("ca_dir", lab.cert_dir)
    return MyProxyClient("localhost", lab.port, credential=credential, environ={}, **kw)


def grid_proxy_info(lab, path: Path) -> dict:
    done = lab.run(["grid-proxy-info", "-file", str(path)])
    return {k.strip(): v.strip() for k, _, v in
            (line.partition(":") for line in done.stdout.splitlines())}


def test_pilot_retrieves_what_myproxy_init_stored(lab, shared_tmp):
    proxy = client(lab).get("alice", "pilotcred", lifetime=2 * 3600)
    out = proxy.write(shared_tmp / "alice.pem")
    info = grid_proxy_info(lab, out)
    assert info["identity"] == ALICE_DN
    assert info["type"].startswith("RFC 3820")
    hours, minutes, _ = (int(x) for x in info["timeleft"].split(":"))
    assert (hours, minutes) in ((1, 59), (2, 0))
    assert out.stat().st_mode & 0o777 == 0o600


def test_retrieved_voms_proxy_keeps_its_attributes_for_voms_proxy_info(lab, shared_tmp):
    out = client(lab).get("alice", "vomscred", lifetime=3600).write(shared_tmp / "voms.pem")
    done = lab.run(["voms-proxy-info", "-all", "-file", str(out)])
    attributes = [line.split(":", 1)[1].strip() for line in done.stdout.splitlines()
                  if line.startswith("attribute")]
    assert attributes == ["/atlas/Role=production", "/atlas"]
    assert f"identity  : {ALICE_DN}" in done.stdout


def test_intruder_not_in_the_policy_is_refused_with_the_servers_words(lab):
    with pytest.raises(CredentialRefusedError, match="authentication failed") as caught:
        client(lab, "eve").get("alice", "pilotcred")
    assert "MyProxy server localhost" in str(caught.value)


def test_unknown_credential_name_is_refused(lab):
    with pytest.raises(CredentialRefusedError,
                       match='No credentials exist with username "alice" and credential '
                             'name "nosuch"'):
        client(lab).get("alice", "nosuch")


def test_fqan_policy_lets_the_pilot_role_in_and_nobody_else(lab):
    pilot_role = lab.voms_proxy("pilot", "/atlas/Role=pilot")
    assert client(lab, proxy=pilot_role).get("alice", "fqancred", lifetime=600).identity \
        == ALICE_DN
    with pytest.raises(CredentialRefusedError, match="authentication failed"):
        client(lab).get("alice", "fqancred")
    other_role = lab.voms_proxy("pilot", "/atlas/Role=production")
    with pytest.raises(CredentialRefusedError, match="authentication failed"):
        client(lab, proxy=other_role).get("alice", "fqancred")


def test_retrieval_with_the_passphrase_and_refusal_without(lab):
    proxy = client(lab).get("alice", "passcred", passphrase=Passphrase(PASSPHRASE), lifetime=600)
    assert proxy.identity == ALICE_DN
    with pytest.raises(CredentialRefusedError, match="(?i)pass"):
        client(lab).get("alice", "passcred", passphrase=Passphrase("not the passphrase"))


def test_info_describes_the_stored_credentials(lab):
    found = {c.name: c for c in client(lab, "alice").info("alice")}
    assert {"pilotcred", "fqancred", "passcred", "vomscred"} <= set(found)
    pilotcred = found["pilotcred"]
    assert pilotcred.owner == ALICE_DN
    assert pilotcred.retriever_trusted == PILOT_DN
    assert pilotcred.description == "for pilots"
    assert datetime.timedelta(hours=23) < pilotcred.time_left() <= datetime.timedelta(hours=24)
    assert found["fqancred"].retriever_trusted == "FQAN:/atlas/Role=pilot"


def logon(lab, credname, out, who="pilot"):
    return lab.run(["myproxy-logon", *lab.server_args, "-n", "-l", "alice", "-k", credname,
                    "-t", "1", "-o", str(out)], proxy=lab.proxy(who), check=False)


def test_pilotid_store_then_myproxy_logon_retrieves_it(lab, shared_tmp):
    alice = client(lab, "alice")
    alice.store("alice", alice.credential(), credname="stored-by-pilotid",
                description="pilotid STORE", retriever_trusted=PILOT_DN, lifetime=3600)
    done = logon(lab, "stored-by-pilotid", shared_tmp / "logon.pem")
    assert done.returncode == 0, done.stderr
    assert grid_proxy_info(lab, shared_tmp / "logon.pem")["identity"] == ALICE_DN
    refused = logon(lab, "stored-by-pilotid", shared_tmp / "eve.pem", who="eve")
    assert refused.returncode != 0 and "authentication failed" in refused.stderr


def test_pilotid_store_of_certificate_and_key_as_myproxy_store_does(lab, shared_tmp):
    cert, key = lab.files["alice"]
    client(lab, "alice").store("alice", ClientCredential.load(cert, key), credname="eec",
                               retriever_trusted=PILOT_DN)
    assert logon(lab, "eec", shared_tmp / "eec.pem").returncode == 0
    assert grid_proxy_info(lab, shared_tmp / "eec.pem")["identity"] == ALICE_DN


def test_pilotid_put_delegates_and_myproxy_logon_retrieves_it(lab, shared_tmp):
    client(lab, "alice").put("alice", credname="delegated", retriever_trusted=PILOT_DN,
                             stored_lifetime=6 * 3600, lifetime=3600)
    stored = {c.name: c for c in client(lab, "alice").info("alice")}["delegated"]
    assert datetime.timedelta(hours=5) < stored.time_left() <= datetime.timedelta(hours=6)
    done = logon(lab, "delegated", shared_tmp / "put.pem")
    assert done.returncode == 0, done.stderr
    info = grid_proxy_info(lab, shared_tmp / "put.pem")
    assert info["identity"] == ALICE_DN


def test_destroy_removes_the_credential(lab, shared_tmp):
    alice = client(lab, "alice")
    alice.put("alice", credname="short-lived", retriever_trusted=PILOT_DN)
    alice.destroy("alice", "short-lived")
    assert "short-lived" not in {c.name for c in alice.info("alice")}
    assert logon(lab, "short-lived", shared_tmp / "gone.pem").returncode != 0
    with pytest.raises(CredentialRefusedError):
        alice.destroy("alice", "short-lived")


def test_trustroots_fetch_the_servers_ca_directory(lab, shared_tmp):
    files = MyProxyClient("localhost", lab.port, ca_dir=lab.cert_dir, environ={},
                          anonymous=True).trustroots()
    for name in os.listdir(lab.cert_dir):
        assert files[name] == (lab.cert_dir / name).read_bytes()
    target = write_trustroots(files, shared_tmp / "certs")
    assert (target / TRUSTROOTS_MARKER).exists()
    # the fetched directory is enough to trust the server
    assert client(lab, ca_dir=target).get("alice", "pilotcred", lifetime=600).identity \
        == ALICE_DN


def test_wrong_server_dn_is_refused_before_any_request(lab):
    with pytest.raises(CredentialServerError, match="MYPROXY_SERVER_DN"):
        client(lab, server_dn="/CN=myproxy.example.org").get("alice", "pilotcred")
    address = MyProxyClient("127.0.0.1", lab.port, credential=ClientCredential.load(
        lab.proxy("pilot")), ca_dir=lab.cert_dir, environ={}, retries=0)
    with pytest.raises(CredentialServerError, match="not /CN=127.0.0.1"):
        address.get("alice", "pilotcred")


def test_server_dn_from_the_environment_is_honoured(lab):
    pinned = MyProxyClient("127.0.0.1", lab.port, credential=ClientCredential.load(
        lab.proxy("pilot")), ca_dir=lab.cert_dir, retries=0,
        environ={"MYPROXY_SERVER_DN": "/CN=localhost"})
    assert pinned.get("alice", "pilotcred", lifetime=600).identity == ALICE_DN


def test_unknown_ca_says_which_directory_and_how_to_fix_it(lab, shared_tmp):
    other = TestCA("/DC=org/DC=other/CN=Other CA").write_trust_dir(shared_tmp / "other")
    with pytest.raises(CredentialServerError) as caught:
        client(lab, ca_dir=other).get("alice", "pilotcred")
    assert str(other) in str(caught.value) and "X509_CERT_DIR" in str(caught.value)


def test_server_down_fails_quickly(lab):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = MyProxyClient("localhost", port, credential=ClientCredential.load(lab.proxy("pilot")),
                         ca_dir=lab.cert_dir, environ={}, retries=1, backoff=0.1)
    started = time.monotonic()
    with pytest.raises(CredentialServerError, match="cannot connect"):
        down.get("alice", "pilotcred")
    assert time.monotonic() - started < 5
    assert lab.alive()


# --- the pilot account, with its own installation, cache and processes

@pytest.fixture
def pilot_area(lab, shared_tmp):
    """A directory of the pilot account with its proxy (0600, its own)."""
    user = pwd.getpwnam(node.PILOT)
    area = shared_tmp / "pilot"
    area.mkdir()
    proxy = area / "x509up"
    shutil.copyfile(lab.proxy("pilot"), proxy)
    os.chmod(proxy, 0o600)
    for path in (area, proxy):
        os.chown(path, user.pw_uid, user.pw_gid)
    os.chmod(area, 0o700)
    return area


FETCH = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from pilotid.identity.credential import CredentialRequest
    from pilotid.identity.sources import CredentialCache, MyProxySource
    from pilotid.queue import QueueSettings
    area, server, start_at, jobs = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4:]
    source = MyProxySource(QueueSettings(name="ANALY_SYS", credential_source="myproxy",
                                         options={"myproxy_server": server}),
                           cache=CredentialCache(area / "cache"))
    while time.time() < start_at:
        time.sleep(0.005)
    out = []
    for job in jobs:
        (area / job).mkdir()
        credential = source.fetch(CredentialRequest(directory=area / job, lifetime=600,
                                                    owner_dn=os.environ["OWNER"],
                                                    credname="pilotcred"))
        out.append({"path": str(credential.path), "identity": credential.identity,
                    "pem": credential.path.read_text()})
    print(json.dumps(out))
""")


def _pilot_fetch(lab, pilot_install, area, jobs, start_at=0.0, popen=False):
    python, site = pilot_install
    script = area / "fetch.py"
    if not script.exists():
        script.write_text(FETCH)
        user = pwd.getpwnam(node.PILOT)
        os.chown(script, user.pw_uid, user.pw_gid)
    env = {"PYTHONPATH": site, "X509_USER_PROXY": str(area / "x509up"),
           "X509_CERT_DIR": str(lab.cert_dir), "OWNER": ALICE_DN}
    argv = [python, str(script), str(area), f"localhost:{lab.port}", str(start_at), *jobs]
    if popen:
        return node.popen_as(node.PILOT, argv, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    done = node.run_as(node.PILOT, argv, env=env, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_pilot_account_fetches_twice_and_asks_the_server_once(lab, pilot_install, pilot_area):
    first, second = _pilot_fetch(lab, pilot_install, pilot_area, ["job1", "job2"])
    assert first["identity"] == second["identity"] == ALICE_DN
    assert first["path"] != second["path"]
    # a second GET would have produced a new proxy with a new key
    assert first["pem"] == second["pem"]
    cache = pilot_area / "cache"
    status = cache.stat()
    assert status.st_uid == pwd.getpwnam(node.PILOT).pw_uid and status.st_mode & 0o777 == 0o700
    for job in ("job1", "job2"):
        (copy,) = (pilot_area / job).iterdir()
        assert copy.stat().st_mode & 0o777 == 0o600
    assert parse_proxy(first["pem"].encode()).identity == ALICE_DN


def test_two_pilot_processes_fetching_at_once_share_one_retrieval(lab, pilot_install,
                                                                   pilot_area):
    start_at = time.time() + 1.5  # both are up and waiting by then
    runs = [_pilot_fetch(lab, pilot_install, pilot_area, [f"p{i}"], start_at, popen=True)
            for i in range(2)]
    results = []
    for run in runs:
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        results.extend(json.loads(out))
    assert len(results) == 2
    assert results[0]["pem"] == results[1]["pem"]
    assert [p.name for p in (pilot_area / "cache").iterdir() if p.name.startswith(".")] == []


def test_pilotid_myproxy_get_as_the_pilot_account(lab, pilot_install, pilot_area):
    python, site = pilot_install
    out = pilot_area / "user.pem"
    done = node.run_as(node.PILOT, [python, "-m", "pilotid", "myproxy", "get", "-s", "localhost",
                                    "-p", str(lab.port), "-l", "alice", "-k", "pilotcred",
                                    "-t", "1", "-o", str(out), "--json"],
                       env={"PYTHONPATH": site, "X509_USER_PROXY": str(pilot_area / "x509up"),
                            "X509_CERT_DIR": str(lab.cert_dir)}, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["identity"] == ALICE_DN
    assert out.stat().st_uid == pwd.getpwnam(node.PILOT).pw_uid
    # grid-proxy-info reads only its caller's proxies: ask it as the pilot
    info = node.run_as(node.PILOT, ["grid-proxy-info", "-file", str(out), "-identity"],
                       env={"X509_CERT_DIR": str(lab.cert_dir)}, text=True)
    assert info.returncode == 0, info.stderr
    assert info.stdout.strip() == ALICE_DN


def test_refusal_through_the_cli_exits_with_the_refusal_code(lab, pilot_install, pilot_area):
    python, site = pilot_install
    done = node.run_as(node.PILOT, [python, "-m", "pilotid", "myproxy", "get", "-s", "localhost",
                                    "-p", str(lab.port), "-l", "alice", "-k", "nosuch",
                                    "-o", str(pilot_area / "never.pem")],
                       env={"PYTHONPATH": site, "X509_USER_PROXY": str(pilot_area / "x509up"),
                            "X509_CERT_DIR": str(lab.cert_dir)}, text=True)
    assert done.returncode == CredentialRefusedError.code
    assert 'No credentials exist with username "alice"' in done.stderr
    assert not (pilot_area / "never.pem").exists()


def test_a_hundred_kilobyte_policy_is_stored_listed_and_honoured(lab):
    """6.2.14 has no 255-character limit; requests and replies span many TLS records."""
    policy = "|".join(f"/CN=Filler {i}" for i in range(6500)) + "|" + PILOT_DN
    assert len(policy) > 100_000
    alice = client(lab, "alice")
    alice.put("alice", credname="long-policy", retriever_trusted=policy)
    stored = {c.name: c for c in alice.info("alice")}["long-policy"]
    assert stored.retriever_trusted == policy
    assert client(lab).get("alice", "long-policy", lifetime=600).identity == ALICE_DN
    with pytest.raises(CredentialRefusedError):
        client(lab, "eve").get("alice", "long-policy")


def test_pilotid_put_with_an_fqan_policy_then_myproxy_logon_with_the_pilot_role(lab, shared_tmp):
    client(lab, "alice").put("alice", credname="fqan-by-pilotid",
                             retriever_trusted="FQAN:/atlas/Role=pilot")
    pilot_role = lab.voms_proxy("pilot", "/atlas/Role=pilot")
    done = lab.run(["myproxy-logon", *lab.server_args, "-n", "-l", "alice", "-k",
                    "fqan-by-pilotid", "-t", "1", "-o", str(shared_tmp / "fqan.pem")],
                   proxy=pilot_role, check=False)
    assert done.returncode == 0, done.stderr
    assert grid_proxy_info(lab, shared_tmp / "fqan.pem")["identity"] == ALICE_DN
    assert logon(lab, "fqan-by-pilotid", shared_tmp / "plain.pem").returncode != 0
