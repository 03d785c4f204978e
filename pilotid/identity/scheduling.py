"""Whether an account may leave work to run after its job: ``at`` and ``cron``.

A payload that queues a command with ``at`` or a ``crontab`` line has it run after the job,
where no kill of the job's processes reaches.  Both programs decide who may use them from an
allow file and a deny file (``at.allow``/``at.deny``, ``cron.allow``/``cron.deny``): an allow
file that exists names the only users who may; else a deny file that exists names those who
may not (an empty one denies nobody); with neither, ``at`` is root's alone and Debian's
``cron`` is everybody's.  ``scheduler_access`` reads these rules for one account, as
``pilotid probe`` reports them.  A rule file the reader may not read (Debian's ``at.deny``
is ``0640 root:daemon``) leaves the answer open (``None``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

#: Where the rule files are, and the root the programs are looked for under (read at each
#: call: a test points them elsewhere).
ETC = Path("/etc")
ROOT = Path("/")


@dataclass(frozen=True)
class Scheduler:
    """One way to queue work for later: its user ``command`` (the first of these paths that
    exists), the ``daemon`` that runs what was queued, its rule files under ``/etc``, and
    whether a user may use it when neither file exists."""

    name: str
    commands: Tuple[str, ...]
    daemons: Tuple[str, ...]
    allow: str
    deny: str
    open_without_rules: bool


AT = Scheduler("at", ("/usr/bin/at", "/bin/at"), ("/usr/sbin/atd", "/sbin/atd"),
               "at.allow", "at.deny", open_without_rules=False)
CRON = Scheduler("cron", ("/usr/bin/crontab", "/bin/crontab"),
                 ("/usr/sbin/cron", "/usr/sbin/crond", "/sbin/cron"),
                 "cron.allow", "cron.deny", open_without_rules=True)
SCHEDULERS = (AT, CRON)


@dataclass(frozen=True)
class SchedulerAccess:
    """What ``scheduler_access`` found: ``allowed`` True, False, or None (a rule file could
    not be read), ``why`` (one clause naming the rule or file), and the daemon found (None
    when none is installed: what is queued then waits for one)."""

    scheduler: Scheduler
    allowed: Optional[bool]
    why: str
    daemon: Optional[str]


def scheduler_access(scheduler: Scheduler, user: str) -> Optional[SchedulerAccess]:
    """Whether ``user`` may queue work with ``scheduler``; None where its command is not
    installed (under ``ROOT``).  The rule files are read from ``ETC``."""
    if _first_existing(ROOT, scheduler.commands) is None:
        return None
    daemon = _first_existing(ROOT, scheduler.daemons)
    allowed, why = _rules_allow(scheduler, user, ETC)
    return SchedulerAccess(scheduler, allowed, why, daemon)


def _rules_allow(scheduler: Scheduler, user: str, etc: Path) -> Tuple[Optional[bool], str]:
    for name, listed_means in ((scheduler.allow, True), (scheduler.deny, False)):
        path = etc / name
        try:
            names = path.read_text(errors="replace").split()
        except FileNotFoundError:
            continue
        except OSError:
            return None, f"{path} exists but cannot be read here"
        if user in names:
            return listed_means, f"{path} names {user}"
        return not listed_means, f"{path} does not name {user}"
    if scheduler.open_without_rules:
        return True, f"neither {etc / scheduler.allow} nor {etc / scheduler.deny} exists"
    return False, (f"neither {etc / scheduler.allow} nor {etc / scheduler.deny} exists "
                   "(root only)")


def _first_existing(root: Path, paths: Tuple[str, ...]) -> Optional[str]:
    for path in paths:
        if (root / path.lstrip("/")).exists():
            return path
    return None
