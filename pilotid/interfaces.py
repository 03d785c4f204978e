"""The contracts of pilotid: who the payload runs as, how (and one job's switch), what runs.

Strategies are plain classes declared with ``@implementer``; the factory builds one of each
from a queue's settings (``factory(settings)``) and the launcher composes them.  Methods
take positional parameters only, so that ``verifyObject`` can check them.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class ICredentialSource(Interface):
    """Where the end user's proxy comes from (a local file, a MyProxy server, ...).

    Called by the launcher once per job, before anything is written for the payload.
    """

    name = Attribute("Registry name used in queue settings: 'file', 'myproxy', ...")

    def fetch(request):
        """Return a ``Credential`` for ``request`` (a ``CredentialRequest``).

        The proxy is written to a new file, mode 0600 from the moment it exists, in
        ``request.directory``, and checked: parsable, with a matching key, not expired and
        valid for at least ``request.lifetime`` seconds.  Raises ``CredentialError`` (or a
        subclass) naming what was wrong; never returns an unusable credential.
        """


class IIdentitySwitcher(Interface):
    """How the payload becomes the end user: gLExec, sudo, or no switch at all.

    Called by the launcher, once per job, in this order: ``probe`` (who the payload will
    run as), then ``open`` (an ``ISwitchSession`` that does the rest of the job's switching).
    ``pilotid probe`` calls ``node_checks``.  ``pilotid.strategies.base.SwitcherBase`` builds
    the session from the switcher's own launch, terminate and explain steps
    (``pilotid.strategies.base.SwitchSession``).
    """

    name = Attribute("Registry name used in queue settings: 'glexec', 'sudo', 'noop', ...")

    def probe(credential):
        """Return the ``Account`` the payload of ``credential``'s owner will run as here.

        Raises ``AccountMappingError`` when the identity maps to no account, or a
        ``SwitchError`` when the switch cannot be used; never answers with the pilot's own
        account unless this switcher does not switch at all.
        """

    def open(credential, account, workdir):
        """Return the ``ISwitchSession`` that runs one job's payload as ``account``.

        Called after ``probe`` returned ``account`` and before the wrapper is written; may
        write files into ``workdir`` (a copy of the proxy the target may read, for
        instance).  The launcher calls the session's ``close`` on every way out.  Raises
        ``SwitchError``.
        """

    def node_checks(credential):
        """Return what ``pilotid probe`` shows about this switch on this node.

        A list of ``pilotid.probe.Check`` (the switch program, its mode, a test switch,
        ...); ``credential`` is the queue's test credential, or ``None`` when there is
        none.  Never raises for what it finds: a problem is a check with status ``fail``
        or ``warn``.  The generic checks (credential, mapping, work directory) are
        ``pilotid probe``'s own; this adds only what is particular to the switch.
        """


class ISwitchSession(Interface):
    """One job's switch: everything between the probe and the job's end that needs it.

    Made by ``IIdentitySwitcher.open`` for one credential, account and work directory.  The
    launcher asks it, never the uids, whether a switch happens and whether the wrapper's
    marker proves anything.  Called in this order: ``launch`` (again while ``retry_delay``
    says so), ``refresh`` while a long payload runs, ``terminate`` when the pilot has to
    stop it, ``explain`` once it ended, ``stop_leftovers`` after the last launch, then
    ``remove_as_target`` for what the wrapper left, ``close`` on every way out.

    An isolation (a container around any switch) is a session decorator: it holds the
    switcher's session, forwards every call to it, and in ``launch`` prefixes ``argv``
    (``bwrap ... --`` before the wrapper) before handing it on; the switch then runs the
    isolation program as the target, which runs the wrapper.  Environment changes go into
    that prefix too (``env NAME=value``, or the isolation's own options): the switch
    program starts from a fixed environment and the wrapper rebuilds the payload's own.
    ``pilotid.strategies.base.SessionDecorator`` forwards everything, for such a class to
    override ``launch`` alone.
    """

    switches_identity = Attribute(
        "True where the payload runs under another identity than the pilot's: the work "
        "directory is then granted to the target and the wrapper kills the target's orphans")
    marker_owner = Attribute(
        "The uid whose ownership of the wrapper's marker file proves the wrapper ran as the "
        "target (so a marker owned by it that does not parse was changed by the payload), or "
        "None where the file's owner proves nothing (no switch)")
    handover = Attribute("The ``ProxyHandover``: how the payload gets its proxy")

    def launch(argv, logs):
        """Start ``argv`` (the wrapper) as the session's account in its work directory.

        ``logs`` is a ``PayloadLogs`` whose open files receive the switch's and the
        payload's output.  Returns a ``subprocess.Popen`` (or an object with ``pid``,
        ``poll``, ``wait``, ``returncode``).  Raises ``SwitchUnavailableError`` when the
        switch program cannot be started.
        """

    def terminate(process, signum):
        """Deliver ``signum`` to the payload started by ``launch`` as ``process``.

        The pilot may not be allowed to signal the target's processes itself: the session
        knows how (sudo relays, gLExec needs a second call as the target).
        """

    def stop_leftovers(process):
        """Kill and reap what the payload of ``process`` left running once it ended.

        Through the switch where only the target may signal them; logs what it cannot
        stop, never raises a ``PilotidError``.
        """

    def remove_as_target(paths):
        """Remove the trees at ``paths`` the wrapper made as the session's account and left
        (killed outright, its EXIT trap never ran: its egg cache; in world mode, its own
        directory), with that account's rights.

        Called after ``stop_leftovers``, with paths the launcher found the account's; logs
        what it cannot remove, never raises a ``PilotidError``.
        """

    def refresh(credential):
        """Give the running payload the renewed ``credential``; True once it has it.

        False where this switch cannot replace a running payload's proxy (the launcher then
        stops asking).  Raises ``SwitchError`` or ``CredentialError`` when the push fails.
        """

    def explain(returncode, marker):
        """Return the ``Outcome`` of a finished launch.

        ``returncode`` is the status of the process ``launch`` returned (negative for a
        death by signal); ``marker`` is the ``WrapperMarker`` the wrapper left once it ran
        as the target, or ``None`` if it never ran.  A marker naming another uid than the
        session's account is ``switch_failed``, whatever the status: the switch put the
        payload under another identity than the probe promised.
        """

    def retry_delay(outcome, attempt):
        """Return the seconds to wait before launching again, or ``None`` not to retry.

        Asked only after a launch whose wrapper never ran (no marker), with its ``Outcome``
        and the number of launches made so far (1 after the first).
        """

    def close():  # type: ignore[misc]  # an interface method has no self
        """Release what the session holds; called once, on every way out of the job."""


class IIsolation(Interface):
    """Where the payload runs: namespaces of its own around any switch (bubblewrap), or none.

    Built from a queue's ``isolation`` setting; the launcher asks it to wrap each job's
    switch session, whatever the switcher.  The switch then runs the isolation's program
    as the target, and that program runs the wrapper.
    """

    name = Attribute("Registry name used in queue settings: 'none', 'bwrap', ...")

    def wrap(session, workdir):
        """Return the ``ISwitchSession`` to launch the job in ``workdir`` through.

        ``session`` is the switcher's (``IIdentitySwitcher.open``); the result is it, or a
        ``SessionDecorator`` around it whose ``launch`` starts the isolation's program.  A
        runtime that cannot run raises an ``IsolationError`` where the queue's
        ``isolation_policy`` says so, or is logged (WARNING) and ``session`` returned.
        """

    def node_checks():  # type: ignore[misc]  # an interface method has no self
        """Return the probe's ``Check`` list: does the runtime start a test container here,
        in which mode (from ``/proc/self/uid_map`` inside), and what failed."""


class IPayload(Interface):
    """What runs: one kind of transformation (``buildJob``, ``runAthena``, ...).

    Called by the launcher to pick the adapter for a job and build its command.
    """

    name = Attribute("Registry name used in queue settings: 'buildJob', 'runAthena', ...")

    def accepts(job):
        """Return True where this adapter runs ``job`` (a ``JobSpec``), by its transformation."""

    def command(job, workdir):
        """Return the ``PayloadCommand`` (argv, environment additions, setup lines) for ``job``.

        Raises ``JobDescriptionError`` when the job lacks what this transformation needs and
        ``TransformationNotFoundError`` when the transformation cannot be found.
        """

    def outputs(job):
        """Return the file names (relative to the work directory) a successful run leaves."""
