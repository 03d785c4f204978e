"""A big staged-in tree on the real node: the unprivileged pilot opens it to pilotid-alice
(GNU ``find`` lists it alongside the grant, past ``_FIND_AFTER`` entries), alice reads every
file through real ``sudo -n -u pilotid-alice`` but not the pilot's private ones, and reclaim
gives back exactly the tree that was there.
"""

from __future__ import annotations

import json
import os

from tests.system import node

#: Run as the pilot: make the tree, grant, let alice read, reclaim; print a JSON report.
DRIVER = r'''
import json, os, subprocess, sys
from pathlib import Path
from pilotid.identity.accounts import Account
from pilotid import workdir
from pilotid.workdir import builder

work = Path(sys.argv[1])
work.mkdir(mode=0o700)
modes = (0o644, 0o600, 0o755, 0o700, 0o640, 0o744, 0o604)
for d in range(30):
    sub = work / f"d{d:02d}" / ("deep" if d % 3 else "")
    sub.mkdir(parents=True, exist_ok=True)
    for f in range(100):
        path = sub / f"f{f:03d}"
        path.write_text(f"{d}/{f}\n")
        path.chmod(modes[(d + f) % len(modes)])
(work / "d01" / "link-out").symlink_to(work.parent / "pilot-secret")
(work.parent / "pilot-secret").write_text("the pilot's")
(work.parent / "pilot-secret").chmod(0o600)
(work.parent / "private").mkdir(mode=0o700)  # pilotid's copies: never in the work directory
(work.parent / "private" / "proxy").write_text("the pilot's proxy")
(work.parent / "private" / "proxy").chmod(0o600)

def snapshot():
    return subprocess.run(["getfacl", "-R", "-P", "-p", "-n", str(work)], capture_output=True,
                          text=True, check=True).stdout

before = snapshot()
walked = []
real = builder._Builder._walk_with_find
def spied(self, top):
    walked.append(real(self, top))
    return walked[-1]
builder._Builder._walk_with_find = spied
grant = workdir.grant_target_access(work, Account.by_name(sys.argv[2]))
def as_alice(script):
    return subprocess.run(["sudo", "-n", "-u", sys.argv[2], "/bin/sh", "-c", script, "sh",
                           str(work)], capture_output=True, text=True)
read_all = as_alice('cd "$1" && find . -type f -print -exec cat {} + | wc -l')
private = as_alice('cat "$1/../private/proxy"; cat "$1/d01/link-out"')
workdir.reclaim(grant)
print(json.dumps({"walked_with_find": walked, "changes": len(grant.changes),
                  "read_all": [read_all.returncode, read_all.stdout, read_all.stderr],
                  "private": [private.returncode, private.stdout],
                  "restored": snapshot() == before}))
'''


def test_alice_reads_a_big_staged_in_tree_and_reclaim_gives_it_back(pilot_install, shared_tmp):
    python, site = pilot_install
    account = node.account(node.PILOT)
    home = shared_tmp / "pilot-home"
    home.mkdir()
    os.chown(home, account.uid, account.gid)
    home.chmod(0o755)
    driver = shared_tmp / "big_tree_driver.py"
    driver.write_text(DRIVER)
    driver.chmod(0o644)
    done = node.run_as(node.PILOT, [python, str(driver), str(home / "work"), node.ALICE],
                       env={"PYTHONPATH": site})
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["walked_with_find"] == [True]
    returncode, out, err = report["read_all"]
    assert returncode == 0 and err == "", err
    assert int(out.split()[-1]) == 3000 * 2  # each file listed, and its one line read
    assert report["private"][0] != 0 and "pilot's" not in report["private"][1]
    assert report["restored"] is True
