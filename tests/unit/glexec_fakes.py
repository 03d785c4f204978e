"""Fakes for the GlexecSwitcher unit tests: a proxy model and a scriptable fake gLExec."""

from __future__ import annotations

import datetime
import json
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import List, Optional

from pilotid.identity.credential import Credential

ALICE_DN = "/DC=org/DC=example/OU=People/CN=Alice Analyst 1234"


class FakeProxy:
    """Just what ``Credential`` asks of its proxy model: an identity and a time left."""

    def __init__(self, identity: str = ALICE_DN, hours: float = 12) -> None:
        self.identity = identity
        self.not_after = (datetime.datetime.now(datetime.timezone.utc)
                          + datetime.timedelta(hours=hours))

    def time_left(self, now: Optional[datetime.datetime] = None) -> datetime.timedelta:
        return self.not_after - (now or datetime.datetime.now(datetime.timezone.utc))


def credential(directory: Path, identity: str = ALICE_DN, hours: float = 12,
               name: str = "x509up_alice") -> Credential:
    """A credential whose file is a placeholder 0600 file in ``directory``."""
    path = Path(directory) / name
    if not path.exists():
        path.write_bytes(b"not a real proxy: the fake gLExec does not read it\n")
        path.chmod(0o600)
    return Credential(path=path, proxy=FakeProxy(identity, hours), source="file")


FAKE_GLEXEC = textwrap.dedent('''\
    #!{python}
    """Fake gLExec: records each call, answers with the next scripted status, or (for the
    calls listed in FAKE_GLEXEC_EXEC, counted from 0) becomes the command like a
    non-lingering gLExec."""
    import json, os, sys
    log = os.environ["FAKE_GLEXEC_LOG"]
    statuses = os.environ.get("FAKE_GLEXEC_STATUSES", "0").split(",")
    with open(log, "a") as out:
        calls = sum(1 for _ in open(log)) if os.path.getsize(log) else 0
        out.write(json.dumps({{"argv": sys.argv, "env": dict(os.environ), "pid": os.getpid(),
                              "pgid": os.getpgid(0), "sid": os.getsid(0),
                              "cwd": os.getcwd()}}) + "\\n")
    if str(calls) in os.environ.get("FAKE_GLEXEC_EXEC", "").split(","):
        os.execv(sys.argv[1], sys.argv[1:])
    status = int(statuses[min(calls, len(statuses) - 1)])
    sys.stdout.write(os.environ.get("FAKE_GLEXEC_STDOUT",
                                    "uid=1002(pilotid-alice) gid=1002(pilotid-alice) "
                                    "groups=1002(pilotid-alice)\\n"))
    sys.stderr.write("fake glexec: status %d\\n" % status)
    sys.exit(status)
    ''')


class FakeGlexec:
    """A fake gLExec binary in ``directory`` (``<directory>/sbin/glexec``) and its call log."""

    def __init__(self, directory: Path) -> None:
        self.location = Path(directory)
        self.binary = self.location / "sbin" / "glexec"
        self.binary.parent.mkdir(parents=True, exist_ok=True)
        self.binary.write_text(FAKE_GLEXEC.format(python=sys.executable))
        self.binary.chmod(0o755)
        self.log = self.location / "calls.jsonl"
        self.log.write_text("")

    def environ(self, statuses: str = "0", stdout: Optional[str] = None, **extra: str) -> dict:
        """A pilot environment that points the switcher at this fake.

        ``statuses``: the exit status of each call in turn (the last one repeats);
        ``FAKE_GLEXEC_EXEC="0,1"``: the first two calls run their command instead.
        """
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GLEXEC_LOCATION":
               str(self.location), "FAKE_GLEXEC_LOG": str(self.log),
               "FAKE_GLEXEC_STATUSES": statuses}
        if stdout is not None:
            env["FAKE_GLEXEC_STDOUT"] = stdout
        env.update(extra)
        return env

    def wait_for_calls(self, count: int, timeout: float = 30) -> None:
        """Wait until ``count`` calls have been recorded (a launch records asynchronously)."""
        deadline = time.monotonic() + timeout
        while len(self.calls()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the fake gLExec was not called {count} times")
            time.sleep(0.01)

    def calls(self) -> List[dict]:
        """Every call so far, oldest first."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]
