"""Drive a GlexecSwitcher as the unprivileged pilot account; print one JSON answer.

Run by tests/system/test_glexec_switcher.py through ``node.run_as(PILOT, ...)`` with
PYTHONPATH at the pilot's copy of pilotid.  Argument: one JSON object (see ``main``).
"""

import datetime
import errno
import json
import os
import signal
import sys
import time
from pathlib import Path

from pilotid.identity.credential import Credential
from pilotid.queue import QueueSettings
from pilotid.registry import Registry
from pilotid.strategies.glexec import GlexecSwitcher, ProbeCache, RetryPolicy
from pilotid.values import PayloadLogs, WrapperMarker


class DriverProxy:
    """The proxy model the switcher needs: identity and time left (the test knows both)."""

    def __init__(self, identity, hours):
        self.identity = identity
        self.not_after = (datetime.datetime.now(datetime.timezone.utc)
                          + datetime.timedelta(hours=hours))

    def time_left(self, now=None):
        return self.not_after - (now or datetime.datetime.now(datetime.timezone.utc))


def error_json(error):
    cause = error.__cause__
    return {"class": type(error).__name__, "code": getattr(error, "code", None),
            "message": str(error), "cause": type(cause).__name__ if cause else None}


def read_marker(path):
    """The WrapperMarker from the test wrapper's ``uid=`` and ``status=`` lines, or None."""
    try:
        lines = Path(path).read_text().split()
    except FileNotFoundError:
        return None
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    if "uid" not in values:
        return None
    status = values.get("status")
    return WrapperMarker(int(values["uid"]), None if status is None else int(status))


def outcome_json(outcome):
    return {"kind": outcome.kind, "exit_code": outcome.exit_code, "signal": outcome.signal,
            "error": error_json(outcome.error) if outcome.error else None,
            "error_code": outcome.error_code}


def real_uid_of(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def wait_for_marker(path, timeout=30):
    deadline = time.monotonic() + timeout
    while read_marker(path) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the wrapper never wrote its marker")
        time.sleep(0.05)


def main(spec):
    queue = QueueSettings.from_mapping(
        "ANALY_GLEXEC_TEST", {"switcher": "glexec", "credential_source": "file",
                              **spec.get("queue", {})}, Registry.with_builtins())
    environ = dict(os.environ, **spec.get("environ", {}))
    tries, delay = spec.get("retry", (3, 0.0))
    switch = GlexecSwitcher(queue, environ=environ, probe_cache=ProbeCache(),
                            retry=RetryPolicy(tries=tries, delay=delay))
    credential = Credential(path=Path(spec["proxy"]), source="file",
                            proxy=DriverProxy(spec["dn"], spec.get("hours", 12)))
    answer = {}
    op = spec["op"]
    try:
        if op == "probe":
            answer["account"] = switch.probe(credential).as_dict()
            return answer
        workdir = Path(spec["workdir"])
        account = switch.probe(credential)
        answer["account"] = account.as_dict()
        session = switch.open(credential, account, workdir)
        answer["handover"] = str(session.handover.payload_proxy)
        with open(workdir / "stdout.log", "wb") as out, open(workdir / "stderr.log", "wb") as err:
            process = session.launch(spec["argv"], PayloadLogs(out, err))
            answer["pid"] = process.pid
            if op == "terminate":
                wait_for_marker(spec["marker"])
                answer["glexec_real_uid"] = real_uid_of(process.pid)
                for name, send in (("kill", os.kill), ("killpg", os.killpg)):
                    try:
                        send(process.pid, signal.SIGTERM)
                        answer[f"{name}_errno"] = 0
                    except OSError as error:
                        answer[f"{name}_errno"] = errno.errorcode[error.errno]
                started = time.monotonic()
                session.terminate(process, signal.SIGTERM)
                try:
                    process.wait(timeout=spec.get("grace", 10))
                except Exception:  # noqa: BLE001 - the launcher's escalation, done here
                    answer["escalated"] = True
                    session.terminate(process, signal.SIGKILL)
                answer["seconds_to_end"] = time.monotonic() - started
            process.wait(timeout=120)
        answer["returncode"] = process.returncode
        marker = read_marker(spec["marker"])
        answer["marker"] = None if marker is None else [marker.uid, marker.payload_status]
        answer["outcome"] = outcome_json(session.explain(process.returncode, marker))
        session.close()
    except Exception as error:  # noqa: BLE001 - every failure goes back to the test as JSON
        answer["error"] = error_json(error)
    return answer


if __name__ == "__main__":
    json.dump(main(json.loads(sys.argv[1])), sys.stdout)
