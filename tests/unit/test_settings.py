"""Declaring a strategy's own queue settings: ``Setting``, the value types, the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotid.errors import ConfigurationError, PluginError
from pilotid.queue import QueueSettings
from pilotid.registry import Registry
from pilotid.settings import (
    REQUIRED,
    InvalidValue,
    Setting,
    absolute_path,
    declared_settings,
    integer,
    optional,
    string,
)
from pilotid.testing import RecordingSwitcher, StaticCredentialSource

VAULT_DIR = Setting("vault_dir", absolute_path, REQUIRED, "Where the per-user vault is.")
SETPRIV_PATH = Setting("setpriv_path", optional(absolute_path), None, "The setpriv program.")


class SetprivSwitcher(RecordingSwitcher):
    """A third party's switcher with a setting of its own."""

    name = "setpriv"
    own_settings = (SETPRIV_PATH,)


class VaultSource(StaticCredentialSource):
    """A third party's credential source with a required setting."""

    name = "vault"
    own_settings = (VAULT_DIR,)


def registry(**switchers) -> Registry:
    registry = Registry.with_builtins()
    registry.register_switcher("setpriv", SetprivSwitcher)
    registry.register_credential_source("vault", VaultSource)
    for name, factory in switchers.items():
        registry.register_switcher(name, factory)
    return registry


def test_default_is_read_through_parse():
    assert Setting("port", integer(1, 65535), 7512, "A port.").value_default == 7512
    assert Setting("base", absolute_path, "/tmp", "A base.").value_default == Path("/tmp")


def test_a_default_that_fails_its_own_check_is_refused_when_declared():
    with pytest.raises(ValueError, match="'port': its default 0 must be from 1 to 65535"):
        Setting("port", integer(1, 65535), 0, "A port.")


def test_a_setting_name_is_lower_case_with_underscores():
    with pytest.raises(ValueError, match="lower_case_with_underscores"):
        Setting("SetprivPath", string, "x", "A path.")


def test_a_required_setting_has_no_default_value():
    assert VAULT_DIR.required and VAULT_DIR.default_label == "required"
    with pytest.raises(LookupError):
        VAULT_DIR.value_default


def test_value_types_carry_the_label_the_reference_shows():
    assert optional(absolute_path).label == "absolute path or null"
    assert integer(1, 100).label == "whole number, 1..100"


def test_a_value_type_refuses_with_invalid_value():
    with pytest.raises(InvalidValue, match="must be a whole number, not string \"5\""):
        integer(0)("5")


def test_declared_settings_of_a_factory_without_any_are_none():
    assert declared_settings(lambda settings: None) == ()


@pytest.mark.parametrize("declared", [SETPRIV_PATH, ("setpriv_path",),
                                      (SETPRIV_PATH, SETPRIV_PATH)])
def test_a_malformed_declaration_is_a_plugin_error_naming_the_strategy(declared):
    class Malformed(SetprivSwitcher):
        own_settings = declared

    reg = Registry()
    reg.register_switcher("setpriv", Malformed)
    with pytest.raises(PluginError, match="switcher 'setpriv'.*own_settings"):
        reg.settings_of("switcher", "setpriv")


def test_third_party_settings_are_validated_and_read_by_their_strategies():
    reg = registry()
    settings = QueueSettings.from_mapping("ANALY_SITE", {
        "switcher": "setpriv", "credential_source": "vault",
        "setpriv_path": "/usr/bin/setpriv", "vault_dir": "/var/vault"}, reg)
    assert settings.option(SETPRIV_PATH) == Path("/usr/bin/setpriv")
    assert settings.option(VAULT_DIR) == Path("/var/vault")


def test_a_required_third_party_setting_left_out_is_refused_naming_its_strategy():
    with pytest.raises(ConfigurationError, match="queue 'Q', field 'vault_dir': the vault "
                                                 "credential source needs this setting"):
        QueueSettings.from_mapping("Q", {"credential_source": "vault"}, registry())


def test_a_strategy_declaring_a_generic_field_is_refused():
    class Greedy(SetprivSwitcher):
        name = "greedy"
        own_settings = (Setting("timeout", integer(1), 5, "Mine."),)

    with pytest.raises(PluginError, match="'timeout', which is a generic queue field"):
        QueueSettings.from_mapping("Q", {"switcher": "greedy"}, registry(greedy=Greedy))


def test_two_strategies_declaring_one_name_differently_are_refused():
    class Rival(SetprivSwitcher):
        name = "rival"
        own_settings = (Setting("vault_dir", string, "x", "Another meaning."),)

    with pytest.raises(PluginError, match="both declare a setting 'vault_dir', differently"):
        QueueSettings.from_mapping("Q", {"switcher": "rival", "credential_source": "vault",
                                         "vault_dir": "/v"}, registry(rival=Rival))


def test_one_shared_declaration_serves_two_strategies_of_a_queue():
    class Sharing(SetprivSwitcher):
        name = "sharing"
        own_settings = (VAULT_DIR,)

    settings = QueueSettings.from_mapping(
        "Q", {"switcher": "sharing", "credential_source": "vault", "vault_dir": "/v"},
        registry(sharing=Sharing))
    assert settings.option(VAULT_DIR) == Path("/v")
