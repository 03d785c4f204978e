"""``pilotid run`` and ``pilotid probe``: run one job of a queue, or check the node for it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pilotid.errors import exit_status


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Add ``run`` and ``probe`` to ``sub``."""
    run = sub.add_parser("run", help="run one job as its user")
    _queue_options(run)
    run.add_argument("--job", required=True, type=Path, help="the job description (JSON)")
    run.add_argument("--workdir", type=Path, default=None,
                     help="work directory (default: the current directory)")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    run.set_defaults(handler=run_command)

    probe = sub.add_parser("probe", help="check what this node offers a queue")
    _queue_options(probe)
    probe.add_argument("--workdir", type=Path, default=None,
                       help="work directory to check (default: the current directory)")
    probe.add_argument("--json", action="store_true", help="print the checks as JSON")
    probe.set_defaults(handler=probe_command)


def _queue_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queues", required=True, type=Path, help="queue settings file (JSON)")
    parser.add_argument("--queue", required=True, help="queue name in that file")


def _launcher(args: argparse.Namespace):
    from pilotid.factory import Registry, build_launcher
    from pilotid.queue import load_queue

    registry = Registry.default()  # once: listing the installed plugins is not free
    return build_launcher(load_queue(args.queues, args.queue, registry), registry)


def run_command(args: argparse.Namespace) -> int:
    """Run the job; print the result; exit with its pilot error code."""
    from pilotid.payloads.job import load_job

    launcher = _launcher(args)
    job = load_job(args.job)
    result = launcher.run(job, args.workdir or Path.cwd())
    if args.json:
        print(json.dumps(result.as_dict(), sort_keys=True))
    else:
        print(f"job {result.panda_id}: {result.outcome}, exit code {result.exit_code}, "
              f"error code {result.error_code}" + (f": {result.error}" if result.error else ""))
        print(f"work directory {result.workdir}; logs {result.stdout} {result.stderr}")
    return exit_status(result.error_code)


def probe_command(args: argparse.Namespace) -> int:
    """Print the node checks; exit 0 unless one failed."""
    from pilotid.probe import FAIL, probe_node

    checks = probe_node(_launcher(args), args.workdir or Path.cwd())
    if args.json:
        print(json.dumps([c.as_dict() for c in checks], sort_keys=True))
    else:
        for check in checks:
            print(f"{check.status.upper():4}  {check.name}: {check.detail}")
    failed = [c for c in checks if c.status == FAIL]
    return exit_status(failed[0].error_code or 1) if failed else 0
