"""The contract tests of ``IIsolation``, for plugin authors; re-exported by ``pilotid.testing``.

``IsolationContract`` is a mixin for a pytest test class.  Hook: ``make_provider()``
(required) returns the isolation, built for a queue whose runtime works on the node the
tests run on (``wrap`` may start a test container); ``make_session()`` the switch session it
wraps (default: a ``RecordedSession``, which launches nothing).  What runs in the container
is checked by the system tests of each isolation (pilotid's: tests/system/test_run_bwrap.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence

from zope.interface import implementer
from zope.interface.verify import verifyClass, verifyObject

from pilotid.interfaces import IIsolation, ISwitchSession
from pilotid.probe import FAIL, OK, WARN, Check
from pilotid.strategies.base import PAYLOAD_FAILED, Outcome, ProxyHandover, WrapperMarker


@implementer(ISwitchSession)
class RecordedSession:
    """A switch session that records the argv it is asked to launch and whether it was
    closed; unlike a real session it starts nothing (``launch`` returns None) and explains
    every status as the payload's failure."""

    switches_identity = False
    marker_owner: Optional[int] = None

    def __init__(self, workdir: Path) -> None:
        self.handover = ProxyHandover(Path(workdir) / "x509up_contract")
        self.launched: List[List[str]] = []
        self.closed = False

    def launch(self, argv: Sequence[str], logs: Any) -> Any:
        """Record ``argv``; start nothing."""
        self.launched.append([str(a) for a in argv])

    def terminate(self, process: Any, signum: int) -> None:
        """Nothing to signal."""

    def stop_leftovers(self, process: Any) -> None:
        """Nothing was left."""

    def remove_as_target(self, paths: Sequence[Path]) -> None:
        """Nothing was made."""

    def refresh(self, credential: Any) -> bool:
        """Nothing is pushed."""
        return False

    def explain(self, returncode: int, marker: Optional[WrapperMarker]) -> Outcome:
        """The payload's failure, whatever the status."""
        return Outcome(PAYLOAD_FAILED, exit_code=returncode)

    def retry_delay(self, outcome: Outcome, attempt: int) -> Optional[float]:
        """Never again."""
        return None

    def close(self) -> None:
        """Remember that it was closed."""
        self.closed = True


class IsolationContract:
    """What every ``IIsolation`` must do; inherit it in a pytest test class."""

    def make_provider(self) -> Any:
        """The isolation under test (required)."""
        raise NotImplementedError("a contract test class must define make_provider()")

    def make_session(self, workdir: Path) -> Any:
        """The switch session the isolation wraps (a ``RecordedSession``)."""
        return RecordedSession(workdir)

    def _wrapped(self, tmp_path: Path) -> "tuple[Any, Any]":
        inner = self.make_session(tmp_path)
        return inner, self.make_provider().wrap(inner, tmp_path)

    def test_provides_its_interface(self) -> None:
        provider = self.make_provider()
        assert verifyClass(IIsolation, type(provider))
        assert verifyObject(IIsolation, provider)

    def test_name_is_a_non_empty_string(self) -> None:
        name = self.make_provider().name
        assert isinstance(name, str) and name, f"name must be a non-empty str, not {name!r}"

    def test_wrap_returns_a_switch_session(self, tmp_path: Path) -> None:
        assert verifyObject(ISwitchSession, self._wrapped(tmp_path)[1])

    def test_the_wrapped_session_keeps_the_switchs_identity_and_handover(self, tmp_path: Path
                                                                          ) -> None:
        inner, wrapped = self._wrapped(tmp_path)
        assert (wrapped.switches_identity, wrapped.marker_owner, wrapped.handover) == \
            (inner.switches_identity, inner.marker_owner, inner.handover)

    def test_closing_the_wrapped_session_closes_the_switchs(self, tmp_path: Path) -> None:
        inner, wrapped = self._wrapped(tmp_path)
        wrapped.close()
        assert inner.closed

    def test_node_checks_are_checks(self) -> None:
        checks = self.make_provider().node_checks()
        assert checks and all(isinstance(c, Check) and c.status in (OK, WARN, FAIL)
                              for c in checks), checks
