"""``pilotid agent``: the long-lived process a shell pilot's ``pilotid run`` hands jobs to."""

from __future__ import annotations

import argparse
import functools
import importlib
from pathlib import Path

from pilotid.commands.helptext import command_parser

DESCRIPTION = """\
Listen on a Unix socket for 'pilotid run' command lines and run each in a child of this
process, which has imported pilotid once: a pilot written in shell that sets
PILOTID_AGENT=PATH before 'pilotid run' pays no interpreter start-up and no imports per
job. Runs as the pilot account, in the foreground, until SIGTERM, SIGINT or SIGHUP (the
jobs running then go on).

The socket's directory is made 0700 (an existing one must be this account's and closed to
everyone else) and the socket 0600; a connection from another uid is refused and logged.
The agent probes nothing itself; each job is run as 'pilotid run' would run it, except
that a sudo probe an earlier job made is kept for the queue's probe_cache_lifetime
(docs/agent.rst)."""

#: What a ``pilotid run`` imports, imported by the agent before it listens so that no
#: job's child does (with every built-in strategy, ``pilotid.registry.BUILTINS``): the
#: command, the composition, the launcher, the wrapper, the proxy and VOMS parsers
#: (``cryptography``, ``asn1crypto``), the node's syslog lines.
PRELOADED = ("pilotid.commands.run", "pilotid.factory", "pilotid.queuefile",
             "pilotid.payloads.job", "pilotid.payloads.wrapper", "pilotid.launcher",
             "pilotid.identity.proxy", "pilotid.identity.voms", "pilotid.nodelog",
             "logging.handlers")
#: The commands whose parser the agent builds once for all its children: what the client
#: hands over (``pilotid.__main__.THROUGH_AGENT``; any other command line still works,
#: its parser built in the child).
PREBUILT = ("run",)


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Add ``agent --socket PATH`` to ``sub``."""
    agent = command_parser(sub, "agent", "run jobs handed over by 'pilotid run' (a fork "
                           "server)", DESCRIPTION, (
        "pilotid agent --socket \"$HOME/.pilotid-agent/socket\" &",
        "PILOTID_AGENT=\"$HOME/.pilotid-agent/socket\" pilotid run --queues queues.json "
        "--queue ANALY_SUDO --job job.json --workdir /scratch/job",
    ))
    agent.add_argument("--socket", required=True, type=Path, metavar="PATH",
                       help="the socket to listen on; its directory is made 0700")
    agent.set_defaults(handler=agent_command)


def agent_command(args: argparse.Namespace) -> int:
    """Import what a run needs, build its command line's parser, then serve until told to
    stop (``args.command_line`` is ``pilotid.cli.main``, which each job's child runs;
    ``args.build_parser``, ``pilotid.cli.build_parser``)."""
    from pilotid.agent.server import serve
    from pilotid.agent.warmup import fill_caches
    from pilotid.commands.run import installed_strategies
    from pilotid.payloads.wrapper import filter_environment
    from pilotid.registry import BUILTINS

    for name in PRELOADED + tuple(path.partition(":")[0] for _, _, path in BUILTINS):
        importlib.import_module(name)
    installed_strategies()  # the plugins installed now: a later one needs a new agent
    filter_environment({})  # compiles the environment's default allow- and deny-lists
    fill_caches()
    parsers = {command: args.build_parser(command) for command in PREBUILT}
    return serve(args.socket.absolute(), functools.partial(args.command_line, parsers=parsers))
