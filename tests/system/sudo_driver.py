"""Runs SudoSwitcher AS THE PILOT for tests/system/test_sudo_switcher.py (not a test module).

Usage: python sudo_driver.py '<json request>'; prints one JSON object.  The request holds
``action`` (``probe``, ``run`` or ``terminate``), ``mapfile``, ``dn``, ``proxy``, ``workdir``,
``wrapper`` (argv prefix of the test wrapper), ``mode`` and optionally ``account`` (launch
without probing) and ``signal``.
"""

import json
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from pilotid.errors import AccountMappingError, PilotidError
from pilotid.identity import accounts
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential
from pilotid.queue import QueueSettings
from pilotid.strategies.sudo import SudoSwitcher
from pilotid.values import PayloadLogs, WrapperMarker
from pilotid.workdir import SandboxGrant, make_handover_directory


def _standin_map_account(dn, mapfile_path):
    """Used only while pilotid.identity.accounts has no map_account (parallel branches)."""
    import shlex
    for line in Path(mapfile_path).read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) >= 2 and words[0] == dn:
            return Account.by_name(words[1].split(",")[0])
    raise AccountMappingError(f"{dn} is not in grid-mapfile {mapfile_path}")


if not hasattr(accounts, "map_account"):
    accounts.map_account = _standin_map_account


def read_marker(path):
    if not path.exists():
        return None
    fields = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    status = fields.get("status")
    return WrapperMarker(int(fields["uid"]), None if status is None else int(status))


def main(request):
    settings = QueueSettings("ANALY_SUDO", switcher="sudo",
                             options={"grid_mapfile": Path(request["mapfile"])})
    switcher = SudoSwitcher(settings)
    credential = Credential(path=Path(request["proxy"]),
                            proxy=SimpleNamespace(identity=request["dn"]), source="file")
    result = {"pilot": Account.current().name}
    try:
        if request.get("account"):
            account = Account.by_name(request["account"])
        else:
            account = switcher.probe(credential)
        result["account"] = account.as_dict()
        if request["action"] == "probe":
            return result
        workdir = Path(request["workdir"])
        session = switcher.open(credential, account, workdir)
        handover = session.handover
        result["payload_proxy"] = str(handover.payload_proxy)
        # the launcher's part: the work directory is open to the target already (the test's
        # own setfacl), the handover directory comes after that
        grant = SandboxGrant(workdir.resolve(), account, "acl", Account.current().uid)
        make_handover_directory(handover.payload_proxy, grant)
        marker_path = workdir / "marker"
        argv = [*request["wrapper"], str(marker_path), str(handover.payload_proxy),
                request["mode"]]
        with open(workdir / "stdout.log", "ab") as out, open(workdir / "stderr.log", "ab") as err:
            process = session.launch(argv, PayloadLogs(out, err))
            result["pid"] = process.pid
            if request["action"] == "terminate":
                ready = workdir / "ready"
                deadline = time.monotonic() + 30
                while not ready.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                session.terminate(process, getattr(signal, request.get("signal", "SIGTERM")))
            returncode = process.wait(60)
        marker = read_marker(marker_path)
        outcome = session.explain(returncode, marker)
        session.close()
        result.update(returncode=returncode, kind=outcome.kind, exit_code=outcome.exit_code,
                      signal=outcome.signal,
                      marker=None if marker is None else [marker.uid, marker.payload_status],
                      error=None if outcome.error is None else type(outcome.error).__name__,
                      message=None if outcome.error is None else str(outcome.error))
    except PilotidError as error:
        result.update(error=type(error).__name__, message=str(error))
    return result


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
