"""The factory: build_strategies, Strategies, build_launcher."""

from __future__ import annotations

import dataclasses

import pytest

from pilotid import factory as factory_module
from pilotid.errors import ConfigurationError, PluginError, TransformationNotFoundError
from pilotid.factory import build_launcher, build_strategies
from pilotid.payloads.job import JobSpec
from pilotid.queue_strategies import Strategies
from pilotid.testing import FakePayload, RecordingSwitcher, StaticCredentialSource
from tests.unit.registry_helpers import fake_registry, queue

# --- build_strategies, Strategies, build_launcher ----------------------------------------

def test_build_strategies_builds_each_kind_for_the_settings_in_queue_order():
    settings = queue(payloads=("other", "fake"))
    strategies = build_strategies(settings, fake_registry())
    assert isinstance(strategies.source, StaticCredentialSource)
    assert isinstance(strategies.switcher, RecordingSwitcher)
    assert strategies.switcher.settings is settings
    assert [p.name for p in strategies.payloads] == ["other", "fake"]
    assert isinstance(strategies.payloads, tuple)


def test_strategies_are_frozen():
    strategies = build_strategies(queue(), fake_registry())
    with pytest.raises(dataclasses.FrozenInstanceError):
        strategies.switcher = None  # type: ignore[misc]


def test_build_strategies_checks_each_instance_against_its_interface():
    registry = fake_registry()
    registry.register_credential_source("static", lambda s: RecordingSwitcher(s, name="static"),
                                        replace=True)
    with pytest.raises(PluginError, match="built RecordingSwitcher, which does not provide "
                                          "ICredentialSource"):
        build_strategies(queue(), registry)


def test_build_strategies_refuses_a_name_the_registry_does_not_know():
    with pytest.raises(ConfigurationError, match="unknown payload adapter 'runAthena'"):
        build_strategies(queue(payloads=("fake", "runAthena")), fake_registry())


def test_payload_for_picks_the_first_adapter_that_accepts_the_job():
    strategies = build_strategies(queue(payloads=("other", "fake")), fake_registry())
    assert strategies.payload_for(JobSpec(1, "other")).name == "other"
    assert strategies.payload_for(JobSpec(2, "runAthena-00-00-11")).name == "fake"


def test_payload_for_without_an_adapter_names_the_transformation_and_the_adapters():
    strategies = Strategies(source=None, switcher=None, payloads=(
        FakePayload(["x"], accepts=lambda job: False),))
    with pytest.raises(TransformationNotFoundError, match="'buildJob-1' .*tried: fake"):
        strategies.payload_for(JobSpec(1, "buildJob-1"))


def test_build_launcher_hands_settings_and_built_strategies_to_the_payload_launcher(monkeypatch):
    class PayloadLauncher:
        def __init__(self, settings, strategies):
            self.settings, self.strategies = settings, strategies

    monkeypatch.setattr(factory_module, "PayloadLauncher", PayloadLauncher)
    settings = queue()
    launcher = build_launcher(settings, fake_registry())
    assert isinstance(launcher, PayloadLauncher)
    assert launcher.settings is settings
    assert isinstance(launcher.strategies, Strategies)
    assert isinstance(launcher.strategies.switcher, RecordingSwitcher)
