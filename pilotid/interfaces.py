"""The three contracts of pilotid: who the payload runs as, how, and what runs.

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

    Called by the launcher, in this order: ``probe``, ``handover``, ``launch``, then
    ``refresh_proxy`` while a long payload runs, ``terminate`` if the pilot has to stop
    the payload, ``explain`` once it has ended and, if the wrapper never ran,
    ``retry_delay`` to decide whether to ``launch`` again.  ``pilotid probe`` calls
    ``node_checks``.  ``pilotid.strategies.base.SwitcherBase`` gives the last three a
    default that fits a switch with nothing to retry, refresh or report.
    """

    name = Attribute("Registry name used in queue settings: 'glexec', 'sudo', 'noop', ...")

    def probe(credential):
        """Return the ``Account`` the payload of ``credential``'s owner will run as here.

        Raises ``AccountMappingError`` when the identity maps to no account, or a
        ``SwitchError`` when the switch cannot be used; never answers with the pilot's own
        account unless this switcher does not switch at all.
        """

    def handover(credential, account, workdir):
        """Return the ``ProxyHandover`` telling the wrapper how the payload gets its proxy.

        Called after ``probe`` and before the wrapper is written; may write files into
        ``workdir`` (a copy the target may read, for instance).  Raises ``SwitchError``.
        """

    def launch(argv, credential, account, workdir, logs):
        """Start ``argv`` (the wrapper) as ``account`` in ``workdir``; return the process.

        ``logs`` is a ``PayloadLogs`` whose open files receive the switch's and the
        payload's stdout and stderr.  The returned object is a ``subprocess.Popen`` (or
        behaves like one: ``pid``, ``poll``, ``wait``, ``returncode``).  Raises
        ``SwitchUnavailableError`` when the switch program cannot be started.
        """

    def terminate(process, signum):
        """Deliver ``signum`` to the payload started by ``launch`` as ``process``.

        The pilot may not be allowed to signal the target's processes itself: the switcher
        knows how (sudo relays, gLExec needs a second call as the target).
        """

    def explain(returncode, marker):
        """Return the ``Outcome`` of a finished launch.

        ``returncode`` is the status of the process ``launch`` returned (negative for a
        death by signal, as ``subprocess`` reports it); ``marker`` is the ``WrapperMarker``
        the wrapper left once it ran as the target, or ``None`` if it never ran.  The
        outcome is the payload's own exit status, or which switch failure it was.
        """

    def retry_delay(outcome, attempt):
        """Return the seconds to wait before launching again, or ``None`` not to retry.

        Asked only after a launch whose wrapper never ran (no marker), with its ``Outcome``
        and the number of launches made so far (1 after the first).  Only a failure that
        may go away by itself (gLExec's 202, 203) is worth another launch; the switcher
        bounds the attempts (queue settings ``switch_retries``, ``switch_retry_delay``).
        """

    def refresh_proxy(credential, workdir):
        """Give the payload running in ``workdir`` the renewed ``credential``.

        Called while the payload runs, when its proxy falls under the queue's
        ``proxy_refresh_threshold`` and the credential source gave a longer-lived one.
        Return True once the payload's proxy file holds the new proxy, False if this
        switcher cannot replace it (the payload keeps the proxy it has, and the launcher
        stops asking).  Raises ``SwitchError`` or ``CredentialError`` when the push fails.
        """

    def node_checks(credential):
        """Return what ``pilotid probe`` shows about this switch on this node.

        A list of ``pilotid.probe.Check`` (the switch program, its mode, a test switch,
        ...); ``credential`` is the queue's test credential, or ``None`` when there is
        none.  Never raises for what it finds: a problem is a check with status ``fail``
        or ``warn``.  The generic checks (credential, mapping, work directory) are
        ``pilotid probe``'s own; this adds only what is particular to the switch.
        """


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
