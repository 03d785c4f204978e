"""``pilotid cleanup``: undo what jobs of pilots that died had granted on this node."""

from __future__ import annotations

import argparse
from pathlib import Path

from pilotid.commands.helptext import command_parser

DESCRIPTION = """\
Undo the grants of jobs whose pilotid process is gone (killed, or the node rebooted):
every such job's grant journal in the state directory says what its grant changed (the
work directory's objects, by device and inode, and the parents it relied on); each is
given back exactly as the job's own reclaim would have done, and its journal removed.
Their private directories (the credential copies, pilotid-job-<PandaID>-* in the pilot's
TMPDIR) are removed too, where still the pilot's 0700 directories recorded (a warning
each). Journals of running pilots, and of other hosts sharing the directory, are left
alone.
'pilotid run' does the same before each job.

The state directory is the queue's state_dir (--queues and --queue), or --state-dir, or
by default $XDG_STATE_HOME/pilotid, else ~/.local/state/pilotid. Prints one line per
work directory given back; exits 0, or with the error code of what could not be undone
(its journal stays for the next time)."""


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Add ``cleanup`` to ``sub``."""
    cmd = command_parser(sub, "cleanup", "undo the grants of pilots that died", DESCRIPTION, (
        "pilotid cleanup --queues queues.json --queue ANALY_SUDO",
        "pilotid cleanup --state-dir /var/lib/pilotid/pilot",
    ))
    where = cmd.add_mutually_exclusive_group()
    where.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                       help="pilotid's state directory (the queue's state_dir)")
    where.add_argument("--queues", type=Path, default=None,
                       help="queue settings file (JSON): use the queue's state_dir")
    cmd.add_argument("--queue", default=None, help="queue name in that file (with --queues)")
    cmd.set_defaults(handler=cleanup_command)


def cleanup_command(args: argparse.Namespace) -> int:
    """Undo the dead jobs' grants; print the work directories given back."""
    from pilotid.errors import ConfigurationError
    from pilotid.escaping import printable
    from pilotid.queuefile import load_queue
    from pilotid.workdir import default_state_dir, undo_dead_grants

    state_dir = args.state_dir
    if args.queues is not None:
        if args.queue is None:
            raise ConfigurationError("--queues needs --queue: the queue whose state_dir to use")
        state_dir = load_queue(args.queues, args.queue).state_dir
    for workdir in undo_dead_grants(state_dir or default_state_dir()):
        print(f"given back: {printable(str(workdir))}")
    return 0
