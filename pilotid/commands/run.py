"""``pilotid run`` and ``pilotid probe``: run one job of a queue, or check the node for it."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
from pathlib import Path
from typing import Iterator, List

from pilotid.commands.helptext import command_parser
from pilotid.errors import PilotidError, exit_status

RUN_DESCRIPTION = """\
Run one job of a queue as the job's user: fetch the user's proxy from the queue's
credential source, map it to a local account, open the work directory to that account,
and start the payload through the queue's identity switch (noop, sudo, glexec).

Prints one summary (or, with --json, one JSON object: outcome, the payload's exit code or
signal, the pilot error code, the account, the log paths) and exits with the pilot error
code: 0 when the payload succeeded."""

PROBE_DESCRIPTION = """\
Check what this worker node offers a queue before any job runs: the user's proxy from the
queue's credential source, a real test switch (which local account the proxy maps to),
the switch program's own checks, POSIX ACLs in the work directory, the egg cache base,
TMPDIR and the umask, one line each (ok, warn, fail).

A queue that fetches proxies from MyProxy needs to know whose: give --user-dn DN, or
--job FILE (its prodUserID, credname and myproxy). Exits 0 unless a check failed, else
with the first failed check's pilot error code."""


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Add ``run`` and ``probe`` to ``sub``."""
    run = command_parser(sub, "run", "run one job as its user", RUN_DESCRIPTION, (
        "pilotid run --queues queues.json --queue ANALY_SUDO --job job.json "
        "--workdir /scratch/job",
        "pilotid -q run --queues queues.json --queue ANALY_SUDO --job job.json --json",
    ))
    _queue_options(run)
    run.add_argument("--job", required=True, type=Path,
                     help="the job record: JSON or the URL-encoded getJob answer; - reads "
                          "standard input")
    run.add_argument("--workdir", type=Path, required=True,
                     help="work directory: a fresh directory of the pilot's own, made for "
                          "this job (never /, the pilot's home, /tmp itself, nor one "
                          "holding credentials)")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    run.set_defaults(handler=run_command)

    probe = command_parser(sub, "probe", "check what this node offers a queue",
                           PROBE_DESCRIPTION, (
        "pilotid probe --queues queues.json --queue ANALY_SUDO --workdir /scratch/pilot",
        "pilotid probe --queues queues.json --queue ANALY_MYPROXY --user-dn \"$DN\"",
        "pilotid probe --queues queues.json --queue ANALY_MYPROXY --job job.json --json",
    ))
    _queue_options(probe)
    owner = probe.add_mutually_exclusive_group()
    owner.add_argument("--user-dn", metavar="DN", default=None,
                       help="test the switch with this user's proxy (slash-form DN)")
    owner.add_argument("--job", type=Path, default=None, metavar="FILE",
                       help="test the switch with the proxy of this job's owner (JSON)")
    probe.add_argument("--workdir", type=Path, required=True,
                       help="work directory (or work root) to check")
    probe.add_argument("--json", action="store_true", help="print the checks as JSON")
    probe.set_defaults(handler=probe_command)


def _queue_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queues", required=True, type=Path, help="queue settings file (JSON)")
    parser.add_argument("--queue", required=True, help="queue name in that file")


@functools.lru_cache(maxsize=None)
def installed_strategies():
    """``Registry.default()``, listed once per process: listing the installed plugins is
    not free (``pilotid agent`` lists them before it forks, for every job's child)."""
    from pilotid.registry import Registry

    return Registry.default()


def _launcher(args: argparse.Namespace):
    from pilotid.factory import build_launcher
    from pilotid.queuefile import load_queue

    registry = installed_strategies()
    return build_launcher(load_queue(args.queues, args.queue, registry), registry)


def run_command(args: argparse.Namespace) -> int:
    """Run the job; print the result; exit with its pilot error code."""
    from pilotid.payloads.job import load_job

    launcher = _launcher(args)
    job = load_job(args.job)
    quiet = getattr(args, "quiet", False) and not args.json
    with _summary_carries_the_error(quiet):
        result = launcher.run(job, args.workdir)
    if args.json:
        print(json.dumps(result.as_dict(), sort_keys=True))
    else:
        print("\n".join(summary_lines(result)))
    return exit_status(result.error_code)


def summary_lines(result) -> List[str]:
    """The plain summary of a ``PayloadResult``: what happened, then where to look; only
    what is known (a payload that never started has no exit code and no logs)."""
    parts = [f"job {result.panda_id}: {result.outcome}"]
    if result.signal is not None:
        parts.append(f"killed by signal {result.signal}")
    elif result.exit_code is not None:
        parts.append(f"exit code {result.exit_code}")
    parts.append(f"error code {result.error_code}")
    first = ", ".join(parts) + (f": {result.error}" if result.error else "")
    logs = [str(path) for path in (result.stdout, result.stderr) if path is not None]
    where = f"work directory {result.workdir}"
    where += f"; logs {' '.join(logs)}" if logs else "; no logs (the payload did not start)"
    return [first, where]


class _DropFinalError(logging.Filter):
    """Drops the launcher's ERROR line that names the job's error, which the summary
    prints anyway (``-q``: the error once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (record.levelno == logging.ERROR
                    and any(isinstance(arg, PilotidError) for arg in args))


@contextlib.contextmanager
def _summary_carries_the_error(active: bool) -> Iterator[None]:
    logger = logging.getLogger("pilotid.launcher")
    dropped = _DropFinalError()
    if active:
        logger.addFilter(dropped)
    try:
        yield
    finally:
        logger.removeFilter(dropped)


def probe_command(args: argparse.Namespace) -> int:
    """Print the node checks; exit 0 unless one failed."""
    from pilotid.payloads.job import load_job
    from pilotid.probe import FAIL, probe_node

    launcher = _launcher(args)
    job = load_job(args.job) if args.job else None
    checks = probe_node(launcher, args.workdir, job=job, user_dn=args.user_dn)
    if args.json:
        print(json.dumps([c.as_dict() for c in checks], sort_keys=True))
    else:
        for check in checks:
            print(f"{check.status.upper():4}  {check.name}: {check.detail}")
    failed = [c for c in checks if c.status == FAIL]
    return exit_status(failed[0].error_code or 1) if failed else 0
