"""The worked example of docs/strategies.rst, end to end: a root pilot, real setpriv, a real
account.  setpriv execs the wrapper, which is then a child of the pilot running as the
target: the case where the wrapper's reaper killed the wrapper itself.  The queue comes from a
queues.json that names the third-party switcher and its own settings, through a registry that
knows it: nothing in pilotid was changed for it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pilotid.factory import build_launcher
from pilotid.identity.testca import make_proxy
from pilotid.payloads.job import JobSpec
from pilotid.queuefile import load_queue
from pilotid.registry import Registry
from pilotid.testing import FakePayload
from tests.conftest import ALICE_DN
from tests.security.scene import kill_all_with, wait_until_gone
from tests.setpriv_switcher import SetprivSwitcher
from tests.system import node

PAYLOAD = ('id -u > uid.txt; head -1 "$X509_USER_PROXY" > proxy-head.txt; '
           'umask > umask.txt; nohup sleep 300.{token} >/dev/null 2>&1 & echo done > done.txt')


def test_setpriv_switcher_runs_a_job_as_the_mapped_account(real_node, shared_tmp, users):
    mapfile = shared_tmp / "grid-mapfile"
    mapfile.write_text(f'"{ALICE_DN}" {node.ALICE}\n')
    proxy = shared_tmp / "x509up_alice"
    proxy.write_bytes(make_proxy(users.alice, bits=1024))
    proxy.chmod(0o600)
    workdir = shared_tmp / "work"
    workdir.mkdir(mode=0o700)
    token = str(os.getpid())
    queues = shared_tmp / "queues.json"
    queues.write_text(json.dumps({"queues": {"ANALY_SETPRIV": {
        "switcher": "setpriv", "setpriv_path": "/usr/bin/setpriv",
        "grid_mapfile": str(mapfile), "proxy_file": str(proxy), "payloads": ["fake"]}}}))
    registry = Registry.with_builtins()
    registry.register_switcher("setpriv", SetprivSwitcher)
    registry.register_payload(
        "fake", lambda settings: FakePayload(["/bin/sh", "-c", PAYLOAD.format(token=token)]))
    launcher = build_launcher(load_queue(queues, "ANALY_SETPRIV", registry), registry)
    try:
        result = launcher.run(JobSpec(panda_id=31, transformation="fake-00-00-01",
                                      prod_user_id=ALICE_DN), workdir)
    finally:
        left = wait_until_gone(f"sleep 300.{token}", 3)
        kill_all_with(f"sleep 300.{token}")
    assert (result.outcome, result.exit_code, result.signal) == ("succeeded", 0, None), \
        result.error
    alice = node.account(node.ALICE)
    assert (workdir / "uid.txt").read_text().strip() == str(alice.uid)
    assert (workdir / "proxy-head.txt").read_text().startswith("-----BEGIN")
    assert (workdir / "done.txt").stat().st_uid == alice.uid
    assert result.sandbox_mode == "acl" and result.account.name == node.ALICE
    assert not left, f"the payload's nohup child outlived it: {left}"
    assert not any(p.name.startswith(".pilotid-proxy-") for p in Path(workdir).iterdir())
