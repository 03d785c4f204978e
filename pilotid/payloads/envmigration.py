"""The environment's move from a deny-list to an allow-list, said once a job.

Until issue 13 every pilot variable not on the deny-list reached the payload; now only
``DEFAULT_PASSED`` and the queue's ``env_pass`` do.  A queue that relied on the pilot's
``TMPDIR``, ``LD_LIBRARY_PATH`` or ``ATLAS_*`` passing loses them without an error, so
``log_newly_dropped`` names, in one INFO line a job, the pilot variables the allow-list
dropped that the deny-list would have passed.  Names only (shell identifiers, nothing to
escape), never values.  A queue silences it by naming each variable in ``env_pass`` (to
pass it) or ``env_deny`` (to drop it knowingly).
"""

from __future__ import annotations

import logging
from typing import List

from pilotid.payloads.wrapper import WrapperSpec, filter_environment, is_denied, passable

log = logging.getLogger(__name__)

#: Names shown at most in the line; the rest are counted.
SHOWN = 30


def newly_dropped(spec: WrapperSpec) -> List[str]:
    """Sorted names of ``spec``'s pilot environment that the allow-list drops and the
    deny-list alone would have passed; names the payload command sets itself are left
    out (they reach the payload anyway)."""
    kept = filter_environment(dict(spec.environment), spec.extra_deny, spec.extra_pass)
    own = {name for name, _ in spec.command.environment}
    return sorted(name for name, value in spec.environment
                  if name not in kept and name not in own and passable(name, value)
                  and not is_denied(name, spec.extra_deny))


def log_newly_dropped(panda_id: int, spec: WrapperSpec) -> None:
    """Log ``newly_dropped(spec)`` for job ``panda_id`` in one INFO line, if any."""
    names = newly_dropped(spec)
    if not names:
        return
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    log.info("job %s: pilot variables that no longer reach the payload (the environment is "
             "an allow-list; name those the queue needs in env_pass, or in env_deny to drop "
             "them knowingly and silence this line): %s%s", panda_id,
             " ".join(names[:SHOWN]), more)
