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
    ``terminate`` if the pilot has to stop the payload, and ``explain`` once it has ended.
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
