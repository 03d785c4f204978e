#!/opt/pilotid-test/venv/bin/python
"""A HOSTILE payload for tests/security (installed as the ``runAthena`` transformation).

It runs as the job's user after the switch and attacks the pilot: every attack is tried,
and its outcome written to ``attack-report.json`` in the work directory, one entry per
attack: ``{"attack": ..., "result": "blocked" | "SUCCEEDED", "detail": ...}``.  The test
fails on any ``SUCCEEDED``.  What it knows of the pilot comes in ``--intel JSON`` (paths an
attacker could guess or read from ``/proc``); ``--token T`` marks every process it leaves
behind, so that the test can find them; ``--only NAME`` limits it to the attacks whose
name starts with NAME.  Standard library only.
"""

import errno
import glob
import json
import os
import signal
import subprocess
import sys
import time

REPORT = []


def record(attack, succeeded, detail=""):
    REPORT.append({"attack": attack, "result": "SUCCEEDED" if succeeded else "blocked",
                   "detail": str(detail)[:300]})


def attempt(attack, action):
    """Run ``action``; an OSError is the attack being blocked, anything else a success."""
    try:
        detail = action()
    except OSError as error:
        record(attack, False, f"{errno.errorcode.get(error.errno, error.errno)}: {error}")
    else:
        record(attack, True, detail)


def read(path):
    with open(path, "rb") as handle:
        return f"read {len(handle.read())} bytes of {path}"


def append(path):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
    try:
        os.write(fd, b"written by the payload\n")
    finally:
        os.close(fd)
    return f"appended to {path}"


def pilot_pid():
    """Walk up the parents to the first process of the pilot's uid (the pilot itself)."""
    pid = os.getppid()
    while pid > 1:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        if int(fields["Uid"].split()[0]) == INTEL["pilot_uid"]:
            return pid
        pid = int(fields["PPid"].strip())
    return None


def attacks_on_credentials():
    attempt("read the pilot's proxy in its home", lambda: read(INTEL["pilot_proxy"]))
    attempt("read the pilot's proxy in /tmp", lambda: read(INTEL["tmp_pilot_proxy"]))
    attempt("list the pilot's private directory in the work directory",
            lambda: f"listed {os.listdir(private_dir())}")
    attempt("read the user-proxy copy in the private directory", lambda: read_private_copy())
    attempt("replace the pilot's proxy (write)", lambda: append(INTEL["pilot_proxy"]))
    attempt("replace the pilot's proxy (rename over it)", lambda: rename_over_pilot_proxy())
    attempt("replace the pilot's proxy (unlink)",
            lambda: os.unlink(INTEL["pilot_proxy"]) or "unlinked")
    attempt("plant a file in the pilot's private directory",
            lambda: open(os.path.join(private_dir(), "planted.pem"), "w").close()
            or "planted")
    for name in ("BEARER_TOKEN", "PANDA_AUTH_TOKEN", "LD_PRELOAD"):
        record(f"find the pilot's {name} in the environment", name in os.environ,
               os.environ.get(name, "absent"))
    proxy = os.environ.get("X509_USER_PROXY", "")
    record("X509_USER_PROXY points at the pilot's proxy",
           proxy in (INTEL["pilot_proxy"], INTEL["tmp_pilot_proxy"]), proxy)
    pid = pilot_pid()
    attempt("read the pilot's environment from /proc", lambda: read(f"/proc/{pid}/environ"))
    attempt("list the pilot's open files in /proc",
            lambda: f"listed {os.listdir(f'/proc/{pid}/fd')}")
    attempt("read the pilot's memory from /proc", lambda: read(f"/proc/{pid}/mem"))


def rename_over_pilot_proxy():
    forged = os.path.join(INTEL["workdir"], "forged-proxy.pem")
    with open(forged, "w") as out:
        out.write("-----BEGIN CERTIFICATE-----\nforged\n-----END CERTIFICATE-----\n")
    os.rename(forged, INTEL["pilot_proxy"])
    return "renamed"


def private_dir():
    """The job's private directory (in the pilot's TMPDIR, under a random name), if the
    payload can find it; else the name it would have without the random part."""
    found = glob.glob(INTEL["private_dir_glob"])
    return found[0] if found else INTEL["private_dir_glob"].rstrip("*")


def read_private_copy():
    names = os.listdir(private_dir())
    return read(os.path.join(private_dir(), names[0]))


def attacks_on_files():
    for label, path in INTEL["pilot_files"].items():
        attempt(f"write into the pilot's {label} outside the work directory",
                lambda path=path: append(path))
    attempt("create a file in the pilot's home",
            lambda: open(os.path.join(INTEL["home"], "planted"), "w").close() or "created")
    attempt("create a transformation the pilot will run",
            lambda: open(os.path.join(INTEL["trf"], "buildJob"), "w").close() or "created")
    for name in os.listdir(INTEL["workdir"]):
        if name.startswith(".pilotid-wrapper-"):
            attempt("rewrite the running wrapper",
                    lambda name=name: append(os.path.join(INTEL["workdir"], name)))


def attacks_on_the_pilot_process():
    pid = pilot_pid()
    record("find the pilot's process", pid is None, pid)
    if pid is None:
        return
    attempt("signal the pilot (SIGTERM)", lambda: os.kill(pid, signal.SIGTERM) or "sent")
    attempt("signal the pilot (SIGKILL)", lambda: os.kill(pid, signal.SIGKILL) or "sent")
    attempt("stop the pilot (SIGSTOP)", lambda: os.kill(pid, signal.SIGSTOP) or "sent")
    parent = os.getppid()
    while parent > 1 and os.stat(f"/proc/{parent}").st_uid == os.getuid():
        with open(f"/proc/{parent}/status") as status:
            parent = int(dict(line.split(":", 1) for line in status if ":" in line)
                          ["PPid"].strip())
    if parent != pid:  # the switch program (sudo, gLExec) between us and the pilot
        attempt("signal the switch program", lambda: os.kill(parent, signal.SIGTERM) or "sent")
    for account in ("pilotid-pilot", "root", "pilotid-bob"):
        done = subprocess.run(["sudo", "-n", "-u", account, "/bin/true"],
                              capture_output=True, stdin=subprocess.DEVNULL)
        record(f"become {account} with sudo", done.returncode == 0, done.stderr[-200:])


def attacks_leaving_processes():
    token = INTEL["token"]
    # a background child in the payload's own process group, ignoring SIGHUP (nohup)
    subprocess.Popen(["nohup", "/bin/sleep", f"3000.{token}1"], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    # a daemon: double fork, new session, no terminal
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv("/bin/sleep", ["/bin/sleep", f"3000.{token}2"])
        os._exit(0)
    os.wait()
    # a daemon that ignores every catchable signal and makes its own process group
    code = ("import os, signal, time\n"
            "for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):\n"
            "    signal.signal(s, signal.SIG_IGN)\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    time.sleep(3000)\n")
    subprocess.Popen([sys.executable, "-c", code, f"{token}3"], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    record("start processes meant to outlive the job", False,
           "started; the test checks that none is left")


def attacks_with_traps():
    workdir = INTEL["workdir"]
    # what the pilot writes into the work directory after the payload: make it block or
    # write elsewhere
    os.mkfifo(os.path.join(workdir, "accounting.jsonl"))
    for panda_id in INTEL["next_ids"]:
        os.symlink(INTEL["pilot_files"]["log"], os.path.join(workdir,
                                                             f"pilotid-{panda_id}.stdout"))
        os.mkfifo(os.path.join(workdir, f"pilotid-{panda_id}.stderr"))
    # the MyProxy credential cache the pilot uses by default, and /tmp names of the pilot's
    # (planting it is allowed in a shared /tmp: the test checks that the pilot won't use it)
    os.mkdir(INTEL["cache_dir"], 0o777)
    os.chmod(INTEL["cache_dir"], 0o777)
    attempt("symlink the pilot's /tmp proxy name",
            lambda: os.symlink(os.path.join(workdir, "stolen"), INTEL["tmp_pilot_proxy"])
            or "symlinked")
    # the pilot removes this job's proxy copy at the end: point its directory elsewhere
    handover = os.path.dirname(os.environ["X509_USER_PROXY"])
    os.rename(handover, handover + ".moved")
    os.symlink(INTEL["decoy_dir"], handover)
    record("plant traps for the pilot (FIFO accounting, symlinked and FIFO logs of the next "
           "jobs, a world-writable credential cache, the proxy's handover directory swapped "
           "for a symlink to the pilot's home)", False,
           "planted; the test checks what the pilot does with them")


def attacks_on_the_marker():
    for name in os.listdir(INTEL["workdir"]):
        if name.startswith(".pilotid-marker-"):
            path = os.path.join(INTEL["workdir"], name)
            os.unlink(path)
            with open(path, "w") as forged:
                forged.write("uid=0\nstatus=0\n")
    print("sudo: a password is required", file=sys.stderr)
    record("forge the wrapper's marker", False, "forged; the test checks the outcome")


ATTACKS = {
    "credentials": attacks_on_credentials,
    "files": attacks_on_files,
    "pilot": attacks_on_the_pilot_process,
    "processes": attacks_leaving_processes,
    "traps": attacks_with_traps,
    "marker": attacks_on_the_marker,
}


def main(argv):
    global INTEL
    INTEL = json.loads(argv[argv.index("--intel") + 1])
    only = argv[argv.index("--only") + 1] if "--only" in argv else ""
    status = int(argv[argv.index("--exit") + 1]) if "--exit" in argv else 0
    for name, attack in ATTACKS.items():
        if (only and name.startswith(only)) or (not only and name not in ("traps", "marker")):
            try:
                attack()
            except Exception as error:  # an attack that broke is reported, not hidden
                record(f"{name} (crashed)", False, repr(error))
    with open(os.path.join(INTEL["workdir"], "attack-report.json"), "w") as out:
        json.dump(REPORT, out, indent=1)
    print(json.dumps({"attacks": len(REPORT),
                      "succeeded": [r for r in REPORT if r["result"] != "blocked"]}))
    return status


INTEL = {}

if __name__ == "__main__":
    sys.exit(main(sys.argv))
