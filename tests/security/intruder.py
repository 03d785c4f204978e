"""Another local account (``pilotid-bob``) attacking a world-mode job from outside.

Run as that account by tests/security/test_world_mode.py (not a test module)::

    intruder.py WORKDIR ATTACK REPORT TARGET_UID

It waits until it can list ``WORKDIR`` (the grant has opened it), learns the job's token
from the wrapper's name, and plants, as fast as it can:

``marker``
    a marker saying the target's payload succeeded (``uid=TARGET_UID``, ``status=0``),
    under the marker's name and in every directory name it can guess for the wrapper's own;
``fifo``
    a FIFO under the proxy copy's name in every proxy handover directory it sees (and in
    every directory of the wrapper's own), and reads from it whatever the wrapper writes
    there.

It writes what it did and what it got as JSON to ``REPORT`` when the test sends SIGTERM (or
after two minutes).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time

WRAPPER = re.compile(r"\.pilotid-wrapper-([0-9]+)-([0-9a-f]+)\.sh")


def main() -> None:
    workdir, attack, report, target_uid = sys.argv[1:5]
    os.umask(0)  # the FIFO must be writable by the target
    found = {"planted": [], "late": [], "stolen": ""}
    stopped = []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(1))
    readers = {}
    deadline = time.monotonic() + 120
    while not stopped and time.monotonic() < deadline:
        try:
            names = os.listdir(workdir)
        except OSError:
            continue
        if attack == "marker":
            for name in names:
                match = WRAPPER.fullmatch(name)
                if match:
                    plant_markers(workdir, match.group(1), match.group(2), target_uid, found)
                    attack = "done"
        elif attack == "fifo":
            for name in names:
                if name.startswith((".pilotid-proxy-", ".pilotid-target-")) and \
                        name not in readers:
                    readers[name] = plant_fifo(os.path.join(workdir, name, "x509up"), found)
        for fd in [fd for fd in readers.values() if fd is not None]:
            try:
                found["stolen"] += os.read(fd, 65536).decode(errors="replace")
            except BlockingIOError:
                pass
        time.sleep(0 if attack != "done" and not readers else 0.001)
    with open(report, "w") as out:
        json.dump(found, out)


def plant_markers(workdir: str, panda_id: str, token: str, uid: str, found: dict) -> None:
    forged = f"uid={uid}\nstatus=0\n".encode()
    marker = os.path.join(workdir, f".pilotid-marker-{panda_id}-{token}")
    guessed = os.path.join(workdir, f".pilotid-target-{panda_id}-{token}-{'0' * 32}")
    for path in (marker, guessed):
        try:
            if path == guessed:
                os.mkdir(path, 0o755)
                path = os.path.join(path, "marker")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            found["late"].append(path)
            continue
        os.write(fd, forged)
        os.close(fd)
        found["planted"].append(path)


def plant_fifo(path: str, found: dict):
    try:
        os.mkfifo(path, 0o622)
    except OSError as error:
        found["late"].append(f"{path}: {error.strerror}")
        return None
    found["planted"].append(path)
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


if __name__ == "__main__":
    main()
