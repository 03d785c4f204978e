"""``pilotid probe``: what this worker node offers a queue, checked before any job runs.

Each check is a ``Check`` (name, status ``ok``/``warn``/``fail``, detail).  The test switch
is real: the queue's credential source is asked for the proxy and the switcher maps it.
A source that needs to know whose proxy (MyProxy) gets the owner from a job description
(``job``: its ``prodUserID``, ``credname``, ``myproxy``) or a DN (``user_dn``), as
``pilotid probe --job FILE`` and ``--user-dn DN`` give them.  What depends on the account
the payload will run as (the egg cache base, ``TMPDIR``) is checked for that account, and
only where the test switch named it, as are whether it may queue work for after the job with
``at`` or ``cron`` (``pilotid.identity.scheduling``), which no kill of the job reaches, and
whether it can traverse the directories above the queue's work root, which pilotid never
changes (``pilotid.workdir.parents``).
What is particular to a switch (its program, its own test switches) comes from the
switcher's ``node_checks(credential)``, part of ``IIdentitySwitcher``; what is particular to
the isolation (its test container and the mode it got) from ``IIsolation.node_checks``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional

from pilotid.errors import PilotidError, WorkdirError
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential, CredentialRequest
from pilotid.identity.default_proxy import pilot_credentials
from pilotid.identity.owner import token_owner
from pilotid.identity.scheduling import SCHEDULERS, scheduler_access
from pilotid.payloads.job import JobSpec
from pilotid.workdir import acl_supported, acl_unsupported, refuse_unsafe_workdir
from pilotid.workdir.parents import check_work_root_reachable, checked_work_root

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    """One finding of the probe."""

    name: str
    status: str
    detail: str
    error_code: int = 0

    def as_dict(self) -> dict:
        """The check as JSON-ready data."""
        return asdict(self)


def writable_by(path: Path, account: Account) -> bool:
    """True where ``account`` may create entries in directory ``path`` (mode bits only)."""
    try:
        info = path.stat()
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        return False
    if info.st_uid == account.uid:
        return info.st_mode & 0o300 == 0o300
    try:
        groups = os.getgrouplist(account.name, account.gid)
    except (KeyError, OSError):
        groups = [account.gid]
    if info.st_gid in groups:
        return info.st_mode & 0o030 == 0o030
    return info.st_mode & 0o003 == 0o003


def probe_request(directory: Path, job: Optional[JobSpec] = None,
                  user_dn: Optional[str] = None) -> CredentialRequest:
    """The credential request of the test switch: for ``job``'s owner, or ``user_dn``
    (which wins over the job's ``prodUserID``); the proxy is written into ``directory``.
    A ``prodUserID`` that is no DN names a token's subject (``owner_id``)."""
    owner = user_dn or (job.prod_user_id if job else None)
    return CredentialRequest(
        directory=directory, owner_dn=owner,
        credname=job.credname if job else None, server=job.myproxy if job else None,
        job_id=str(job.panda_id) if job else None, owner_id=token_owner(owner))


def probe_node(launcher, workdir: Path, environ=None, job: Optional[JobSpec] = None,
               user_dn: Optional[str] = None) -> List[Check]:
    """Run every check for the queue of ``launcher`` with ``workdir`` as the work directory,
    the test switch with the proxy of ``job``'s owner or of ``user_dn`` (``probe_request``)."""
    environ = os.environ if environ is None else environ
    settings = launcher.settings
    checks: List[Check] = []
    account: Optional[Account] = None
    with tempfile.TemporaryDirectory(prefix="pilotid-probe-") as scratch:
        os.chmod(scratch, 0o700)
        credential: Optional[Credential] = None
        try:
            credential = launcher.source.fetch(probe_request(Path(scratch), job, user_dn))
            left = int(credential.time_left().total_seconds())
            needed = settings.proxy_lifetime_needed()
            detail = (f"{credential.identity}: {_hours(left)} left (source "
                      f"{credential.source})")
            if left < needed:
                detail += f"; launching a payload needs {_hours(needed)}"
            checks.append(Check("credential", OK if left >= needed else WARN, detail))
            account = launcher.switcher.probe(credential)
            checks.append(Check("test switch", OK,
                                f"{launcher.switcher.name} maps it to {account.name} "
                                f"(uid {account.uid})"))
        except PilotidError as error:
            name = "test switch" if credential is not None else "credential"
            checks.append(Check(name, FAIL, str(error), error.code))
        try:
            checks.extend(_switch_checks(launcher.switcher, credential))
            checks.extend(_isolation_checks(launcher.isolation))
        finally:
            for path in credential.files if credential is not None else ():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    placement = _placement_check(workdir)
    if placement is not None:
        checks.append(placement)
    elif workdir.is_dir():
        checks.append(_sandbox_check(workdir, settings.sandbox))
    else:
        checks.append(Check("work directory", FAIL, f"{workdir} does not exist"))
    checks.append(_work_root_check(workdir, settings.work_root, account))
    base = settings.egg_cache_base
    if account is None:
        # The pilot's own rights say nothing about the payload's account.
        checks.append(Check("egg cache base", WARN, f"{base}: not checked, the test switch "
                            "did not name the payload's account"))
    else:
        checks.append(Check("egg cache base", OK if writable_by(base, account) else FAIL,
                            f"{base} {'is' if writable_by(base, account) else 'is not'} "
                            f"writable by {account.name}"))
    if account is not None:
        checks.extend(_scheduler_checks(account))
    for entry in environ.get("LD_PRELOAD", "").replace(":", " ").split():
        if not os.path.exists(entry):
            checks.append(Check("LD_PRELOAD", WARN, f"{entry} does not exist: the wrapper drops "
                                "LD_PRELOAD, but the switch program may complain on stderr"))
    tmpdir = environ.get("TMPDIR")
    if tmpdir and account is not None and not writable_by(Path(tmpdir), account):
        checks.append(Check("TMPDIR", WARN, f"TMPDIR={tmpdir} is not writable by {account.name}: "
                            "payloads relying on it may fail (pilotid itself never uses it)"))
    current = os.umask(0)
    os.umask(current)
    checks.append(Check("umask", WARN if current & 0o044 else OK,
                        f"pilot's umask {current:04o}, payload's umask {settings.umask:04o} "
                        "(set by the wrapper)"))
    return checks


def _scheduler_checks(account: Account) -> List[Check]:
    """A WARN line for each of ``at`` and ``cron`` that ``account`` may (or perhaps may) use
    to have commands run after the job; OK where it may not or is not installed."""
    checks = []
    for scheduler in SCHEDULERS:
        access = scheduler_access(scheduler, account.name)
        if access is None:
            checks.append(Check(scheduler.name, OK, f"{scheduler.name} is not installed"))
            continue
        daemon = (f"its daemon {access.daemon} is installed" if access.daemon
                  else "no daemon of it is installed (yet)")
        if access.allowed is False:
            checks.append(Check(scheduler.name, OK, f"{account.name} may not use "
                                f"{scheduler.name}: {access.why}"))
            continue
        may = "may" if access.allowed else "may perhaps"
        checks.append(Check(scheduler.name, WARN, (
            f"{account.name} {may} queue commands with {scheduler.name} ({access.why}; "
            f"{daemon}): they run after the job, where no kill of its processes reaches; "
            f"name the payload accounts in {scheduler.deny}, or list only others in "
            f"{scheduler.allow}")))
    return checks


def _sandbox_check(workdir: Path, sandbox: str) -> Check:
    """Which sandbox mode ``workdir``'s file system allows, against the queue's
    ``sandbox``: an ``acl`` queue without ACLs fails (as its jobs would)."""
    if acl_supported(workdir):
        mode = "world (the queue's sandbox)" if sandbox == "world" else "acl"
        return Check("ACL support", WARN if sandbox == "world" else OK,
                     f"{workdir}: POSIX ACLs supported; jobs run in {mode} mode")
    if sandbox == "acl":
        error = acl_unsupported(workdir)
        return Check("ACL support", FAIL, str(error), error.code)
    return Check("ACL support", WARN, f"{workdir}: no POSIX ACLs; jobs run in world mode "
                 f"(sandbox: {sandbox}), which every local account can reach")


def _work_root_check(workdir: Path, work_root: Optional[Path],
                     account: Optional[Account]) -> Check:
    """Whether ``account`` reaches the queue's work root (the work directory where the
    queue declares none), as the grant will demand (``WorkRootUnreachableError``)."""
    if account is None:
        return Check("work root", WARN, "not checked: the test switch did not name the "
                     "payload's account")
    try:
        root = checked_work_root(workdir.resolve(), work_root)
        check_work_root_reachable(root, account)
    except PilotidError as error:
        return Check("work root", FAIL, str(error), error.code)
    return Check("work root", OK, f"{account.name} can traverse every directory above the "
                 f"work root {root}")


def _placement_check(workdir: Path) -> Optional[Check]:
    """A FAIL line where ``workdir`` is a place no job may run in (``refuse_unsafe_workdir``)."""
    try:
        refuse_unsafe_workdir(workdir, pilot_credentials())
    except WorkdirError as error:
        return Check("work directory", FAIL, str(error), error.code)
    return None


def _switch_checks(switcher, credential: Optional[Credential]) -> List[Check]:
    """The switcher's ``node_checks``; one that raises after all (locating its program,
    say) is a FAIL line, and the other checks still run."""
    try:
        return list(switcher.node_checks(credential))
    except PilotidError as error:
        return [Check("switch", FAIL, f"{switcher.name}: {error}", error.code)]


def _isolation_checks(isolation) -> List[Check]:
    """The isolation's ``node_checks`` (its test container); one that raises is a failure."""
    try:
        return list(isolation.node_checks())
    except PilotidError as error:
        return [Check("isolation", FAIL, f"{isolation.name}: {error}", error.code)]


def _hours(seconds: int) -> str:
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
