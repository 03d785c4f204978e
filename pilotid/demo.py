"""``make demo``: one runAthena stand-in job, end to end, on the embedded default queue.

It makes a throwaway CA and a user proxy (no grid tools needed), writes a queue settings
file with the no-op switcher and the local-file credential source, stages an input file into
a fresh work directory, runs the job through ``PayloadLauncher`` and prints the result with
the places to look: outputs, logs and the accounting record.  It runs as any user; as
root it says that its payload runs as root too (the no-op switcher switches to no one).
``--base`` must be a new or empty directory: a second demo never reuses the first one's
proxy or work directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

from pilotid.errors import PilotidError, exit_status
from pilotid.factory import build_launcher
from pilotid.identity.credfile import write_private
from pilotid.identity.testca import TestCA, make_proxy
from pilotid.payloads.job import JobSpec
from pilotid.queuefile import load_queue

log = logging.getLogger(__name__)

USER_DN = "/DC=org/DC=example/OU=People/CN=Demo User 4242"
INPUT = "data11_7TeV.AOD._0001.pool.root.1"
OUTPUT = "user.demo.4242001._00001.hist.root"


def prepare(base: Path) -> "tuple[Path, JobSpec, Path]":
    """Write the proxy, the queue settings and the staged input under ``base``.

    Returns the queue settings file, the job and the work directory.
    """
    ca = TestCA(bits=2048)
    user = ca.issue(USER_DN)
    proxy = write_private(base / "x509up_demo", make_proxy(user, hours=12))
    queues = base / "queues.json"
    queues.write_text(json.dumps({"queues": {"ANALY_DEMO": {
        "switcher": "noop", "credential_source": "file", "proxy_file": str(proxy),
        "standin_transformations": True}}}, indent=2))
    workdir = base / "workdir"
    workdir.mkdir()
    (workdir / INPUT).write_bytes(b"stand-in AOD events\n" * 100)
    job = JobSpec.from_description({
        "PandaID": 4242001,
        "transformation": "runAthena-00-00-11",
        "jobPars": f"-j AnalysisSkeleton_topOptions.py -i \"['{INPUT}']\" "
                   f"-o \"{{'hist': '{OUTPUT}'}}\"",
        "prodUserID": USER_DN,
        "inFiles": INPUT,
        "outFiles": OUTPUT,
        "prodSourceLabel": "user",
    })
    return queues, job, workdir


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; return the job's exit status (0 when it succeeded)."""
    parser = argparse.ArgumentParser(prog="python -m pilotid.demo", description=__doc__)
    parser.add_argument("--base", type=Path, default=None,
                        help="directory for the demo's files (default: a new one under ./demo-run)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="pilotid: %(levelname)s %(message)s")
    try:
        if args.base is None:
            Path("demo-run").mkdir(exist_ok=True)
            base = Path(tempfile.mkdtemp(prefix="job-", dir="demo-run")).resolve()
        else:
            base = args.base.resolve()
            base.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"cannot make the demo's directory: {error.strerror}: {error.filename}")
    if any(base.iterdir()):
        parser.error(f"--base {base} is not empty (a demo ran there already?): give a new "
                     "directory, or remove that one")
    if os.geteuid() == 0:
        log.warning("running as root: the demo's queue has the no-op switcher, so its payload "
                    "runs as root too; run the demo as an ordinary user to see it run as you, "
                    "or see docs/tutorial.rst for a queue that switches to the job's user")
    try:
        queues, job, workdir = prepare(base)
        result = build_launcher(load_queue(queues, "ANALY_DEMO")).run(job, workdir)
    except PilotidError as error:
        print(f"pilotid: error {error.code} ({error.fault}): {error}", file=sys.stderr)
        return exit_status(error.code)
    print(json.dumps(result.as_dict(), indent=2, sort_keys=True))
    print(f"\nwork directory: {workdir}")
    print(f"  output:       {workdir / OUTPUT}"
          + ("" if (workdir / OUTPUT).exists() else "  (missing)"))
    print(f"  logs:         {result.stdout}\n                {result.stderr}")
    print(f"  accounting:   {workdir / 'accounting.jsonl'}")
    print(f"queue settings: {queues}")
    return exit_status(result.error_code)


if __name__ == "__main__":
    raise SystemExit(main())
