"""A registry of fakes for every kind of strategy, and a queue that uses them."""

from __future__ import annotations

from pathlib import Path

from pilotid.identity.credential import Credential
from pilotid.queue import QueueSettings
from pilotid.registry import Registry
from pilotid.testing import FakePayload, RecordingSwitcher, StaticCredentialSource

CREDENTIAL = Credential(Path("/nonexistent/x509up"), proxy=None, source="static")  # type: ignore[arg-type]


def fake_registry() -> Registry:
    """A registry with fakes for every kind, registered under their own names."""
    registry = Registry()
    registry.register_switcher("recording", RecordingSwitcher)
    registry.register_credential_source("static", lambda s: StaticCredentialSource(CREDENTIAL))
    registry.register_payload("fake", lambda s: FakePayload(["/bin/true"]))
    registry.register_payload(
        "other", lambda s: FakePayload(["/bin/false"], name="other",
                                       accepts=lambda job: job.transformation == "other"))
    return registry


def queue(**fields) -> QueueSettings:
    """A queue of the fakes above (one payload adapter, 'fake'); ``fields`` override."""
    fields.setdefault("switcher", "recording")
    fields.setdefault("credential_source", "static")
    fields.setdefault("payloads", ("fake",))
    return QueueSettings(name="ANALY_TEST", **fields)
