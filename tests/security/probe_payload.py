#!/opt/pilotid-test/venv/bin/python
"""A payload that only looks (tests/security): what it got, and what it can see.

Installed as the ``runAthena`` transformation; writes ``probe-report.json`` in the work
directory: its argv, environment, uids, working directory and umask, the mode and ACL of
its proxy and of its egg cache, and every world-writable directory or file it finds in the
work directory, its parents and the egg cache.  Standard library only.
"""

import json
import os
import stat
import sys


def acl(path):
    try:
        return os.getxattr(path, "system.posix_acl_access").hex()
    except OSError:
        return None


def world_writable(paths):
    found = []
    for top in paths:
        for root, dirs, files in os.walk(top):
            for name in [*dirs, *files]:
                path = os.path.join(root, name)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                if not stat.S_ISLNK(info.st_mode) and info.st_mode & stat.S_IWOTH:
                    found.append(path)
    return found


def main():
    workdir = os.getcwd()
    parents = []
    path = workdir
    while path != "/":
        path = os.path.dirname(path)
        parents.append(path)
    writable_parents = [p for p in parents
                        if os.stat(p).st_mode & stat.S_IWOTH and not os.stat(p).st_mode & 0o1000]
    if os.stat(workdir).st_mode & stat.S_IWOTH:
        writable_parents.append(workdir)
    proxy = os.environ.get("X509_USER_PROXY", "")
    egg = os.environ.get("PYTHON_EGG_CACHE", "")
    report = {
        "argv": sys.argv[1:],
        "environ": dict(os.environ),
        "uid": os.getuid(), "euid": os.geteuid(), "cwd": workdir,
        "umask": os.umask(0o022),
        "proxy_mode": stat.S_IMODE(os.stat(proxy).st_mode) if proxy else None,
        "proxy_acl": acl(proxy) if proxy else None,
        "proxy_owner": os.stat(proxy).st_uid if proxy else None,
        "egg_mode": stat.S_IMODE(os.stat(egg).st_mode) if egg else None,
        "world_writable": world_writable([workdir, egg] if egg else [workdir]),
        "world_writable_parents": writable_parents,
    }
    with open(os.path.join(workdir, "probe-report.json"), "w") as out:
        json.dump(report, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
