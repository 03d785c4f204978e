"""The ``pilotid`` command's entry point (``python -m pilotid`` and the console script).

With ``PILOTID_AGENT`` set (not empty) in the environment, ``pilotid run`` is handed to
the agent listening on that socket (docs/agent.rst) and this process imports only the
client; every other command line, and ``run`` without it, runs here through
``pilotid.cli``.
"""

from __future__ import annotations

import os
import sys

#: The environment variable naming the agent's socket.
AGENT_VARIABLE = "PILOTID_AGENT"
#: The subcommands an agent runs.
THROUGH_AGENT = ("run",)


def main() -> int:
    """Run ``sys.argv``'s command line, in the agent where ``PILOTID_AGENT`` says."""
    argv = sys.argv[1:]
    agent = os.environ.get(AGENT_VARIABLE)
    if agent and _command_word(argv) in THROUGH_AGENT:
        from pilotid.agent.client import run_through_agent

        return run_through_agent(agent, argv)
    from pilotid.cli import main as command_line

    return command_line(argv)


def _command_word(argv: "list[str]") -> "str | None":
    """The subcommand named on ``argv`` (as ``pilotid.cli`` finds it: the top-level options
    take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


if __name__ == "__main__":
    raise SystemExit(main())
