"""Run a command in a user namespace of its own where no further one may be made.

Usage (as root): ``python userns_off.py ARGV...``.  The command runs in a new user
namespace with every uid and gid mapped to itself (files, accounts and setpriv work as
outside) and ``user.max_user_namespaces`` set to 0 inside it: what a node with
unprivileged user namespaces switched off gives bubblewrap, without touching the node's
own setting.  Exits with the command's status.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWUSER = 0x10000000


def main(argv: list) -> int:
    entered_r, entered_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    child = os.fork()
    if child == 0:
        if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWUSER) != 0:
            os._exit(125)
        os.write(entered_w, b"x")
        os.read(mapped_r, 1)
        with open("/proc/sys/user/max_user_namespaces", "w") as limit:
            limit.write("0\n")
        os.execvp(argv[0], argv)
    os.read(entered_r, 1)
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{child}/{name}", "w") as mapping:
            mapping.write("0 0 4294967295\n")
    os.write(mapped_w, b"x")
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status) % 256


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
