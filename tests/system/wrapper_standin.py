"""A hand-written stand-in for pilotid's generated wrapper, for the sudo switcher's tests.

Usage (as the target, under sudo): python wrapper_standin.py MARKER PROXY MODE.  Writes
``uid=<n>`` to MARKER, stores its stdin (the proxy) in a new 0600 file PROXY, runs the
"payload" for MODE (``ok``: exit 0; ``fail``: exit 7; ``wait``: a bash payload that traps
TERM, writes ``term-received`` and exits 143), then appends ``status=<n>`` and exits with it.
"""

import os
import signal
import subprocess
import sys

marker, proxy, mode = sys.argv[1:4]


def mark(line):
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, line.encode())
    os.close(fd)


mark(f"uid={os.getuid()}\n")
data = sys.stdin.buffer.read()
fd = os.open(proxy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
os.fchmod(fd, 0o600)
os.write(fd, data)
os.close(fd)

if mode == "ok":
    status = 0
elif mode == "fail":
    status = 7
elif mode == "wait":
    # The real wrapper forwards TERM to its payload; here the payload gets it from the group.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    payload = subprocess.Popen(
        ["/bin/bash", "-c", "trap 'id -u > term-received; exit 143' TERM; "
         "sleep 300 & echo $! > sleeper; touch ready; wait"])
    while True:
        try:
            status = payload.wait()
            break
        except InterruptedError:
            continue
    status = 128 - status if status < 0 else status
else:
    status = 2
mark(f"status={status}\n")
sys.exit(status)
