"""The client's resource limits and nice value, taken over by the agent's child for its job.

A batch system starts the pilot's script with the slot's limits (``ulimit``) and a nice
value; ``pilotid run`` has them, the agent (started once, perhaps elsewhere) may not.  The
child sets exactly the client's where the kernel allows it: lowering always is.  Raising
a hard limit above the agent's, or the priority above the agent's (a lower nice value),
needs privilege the pilot does not have: the child keeps the agent's then, and logs one
WARNING naming what it kept.  The job never gets less than the client asked without a
word, and never more than the agent had.
"""

from __future__ import annotations

import logging
import os
import resource
from typing import Dict, Tuple

log = logging.getLogger(__name__)


def take_over_limits(limits: Dict[int, Tuple[int, int]]) -> None:
    """Set this process's resource limits to ``limits`` (``{resource.RLIMIT_*: (soft,
    hard)}``), keeping the agent's hard limit where the client's is above it."""
    names = limit_names()
    for limit, wanted in sorted(limits.items()):
        name = names.get(limit, f"resource limit {limit}")
        try:
            resource.setrlimit(limit, wanted)
        except ValueError:
            _keep_own_hard(limit, name, wanted)


def take_over_nice(nice: int) -> None:
    """Set this process's nice value to the client's ``nice``, keeping the agent's where
    the client's is lower (a higher priority, which needs privilege)."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    if nice == own:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        log.warning("the client's nice value %d is below the agent's (%d), which cannot "
                    "lower its own: the job runs at nice %d", nice, own, own)


def limit_names() -> Dict[int, str]:
    """``{resource.RLIMIT_X: "RLIMIT_X"}`` for this platform (an alias, ``RLIMIT_OFILE``,
    gives way to the first name)."""
    names: Dict[int, str] = {}
    for name in sorted(dir(resource)):
        if name.startswith("RLIMIT_"):
            names.setdefault(getattr(resource, name), name)
    return names


def _keep_own_hard(limit: int, name: str, wanted: Tuple[int, int]) -> None:
    try:
        own_soft, own_hard = resource.getrlimit(limit)
    except ValueError:
        log.warning("the client's %s is not one of this platform's limits: ignored", name)
        return
    soft = wanted[0] if _at_most(wanted[0], own_hard) else own_hard
    resource.setrlimit(limit, (soft, own_hard))
    log.warning("the client's hard %s (%s) is above the agent's (%s), which it cannot "
                "raise: the job keeps the agent's, soft %s", name, _shown(wanted[1]),
                _shown(own_hard), _shown(soft))


def _at_most(value: int, bound: int) -> bool:
    if bound == resource.RLIM_INFINITY:
        return True
    return value != resource.RLIM_INFINITY and value <= bound


def _shown(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)
