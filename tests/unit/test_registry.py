"""The strategy Registry: built-ins, aliases, entry points, the real test plugin."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from zope.interface.verify import verifyClass, verifyObject

from pilotid import registry as registry_module
from pilotid.errors import ConfigurationError, PluginError
from pilotid.factory import build_strategies
from pilotid.interfaces import IIdentitySwitcher
from pilotid.queue import QueueSettings
from pilotid.queuefile import load_queue
from pilotid.registry import (
    BUILTINS,
    CREDENTIAL_SOURCE,
    KINDS,
    PAYLOAD,
    SWITCHER,
    Registry,
    entry_points_in,
)
from pilotid.testing import FakePayload, RecordingSwitcher, StaticCredentialSource
from tests.unit import sample_plugins
from tests.unit.registry_helpers import CREDENTIAL, fake_registry, queue

REPO = Path(__file__).resolve().parents[2]
SAMPLES = "tests.unit.sample_plugins"


def switcher_entry_point(name: str, value: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group="pilotid.switchers")


# --- built-ins and aliases ---------------------------------------------------------------

def test_builtins_are_known_by_name_with_sudo_mock_an_alias_of_sudo():
    registry = Registry.with_builtins()
    assert registry.names(SWITCHER) == ("glexec", "noop", "sudo", "sudo-mock")
    assert registry.names(CREDENTIAL_SOURCE) == ("bearer", "file", "myproxy", "token-file")
    assert registry.names(PAYLOAD) == ("buildGen", "buildJob", "production", "runAthena",
                                       "runGen")
    assert registry.canonical(SWITCHER, "sudo-mock") == "sudo"
    assert registry.canonical(SWITCHER, "noop") == "noop"


def test_importing_the_registry_and_listing_builtins_imports_no_strategy():
    code = ("import sys; from pilotid.registry import Registry; r = Registry.with_builtins(); "
            "r.names('switcher'); heavy = [m for m in sys.modules if m.startswith("
            "('cryptography', 'OpenSSL', 'pilotid.strategies.', 'pilotid.identity.', "
            "'pilotid.payloads.'))]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, env={"PYTHONPATH": str(REPO)}, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("kind, name, path", BUILTINS, ids=[b[1] for b in BUILTINS])
def test_builtin_loads_and_provides_its_interface(kind, name, path):
    module = path.partition(":")[0]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not in this checkout yet")
    loaded = Registry.with_builtins().factory(kind, name)
    assert KINDS[kind].interface.implementedBy(loaded)
    assert loaded.name == name


def test_alias_gives_the_same_factory_and_builds_the_aliased_strategy():
    registry = Registry()
    registry.register_switcher("sudo", lambda s: RecordingSwitcher(s, name="sudo"))
    registry.register_alias(SWITCHER, "sudo-mock", "sudo")
    assert registry.switcher("sudo-mock") is registry.switcher("sudo")
    assert registry.build(SWITCHER, "sudo-mock", queue()).name == "sudo"


def test_alias_of_an_unknown_name_is_refused():
    with pytest.raises(PluginError, match="unknown switcher 'glexec'"):
        Registry().register_alias(SWITCHER, "glexec-mock", "glexec")


def test_alias_cannot_take_a_registered_name():
    registry = fake_registry()
    registry.register_switcher("other", lambda s: RecordingSwitcher(s, name="other"))
    with pytest.raises(PluginError, match="already taken"):
        registry.register_alias(SWITCHER, "other", "recording")


def test_unknown_name_lists_the_known_ones_and_suggests_the_closest():
    with pytest.raises(ConfigurationError) as caught:
        Registry.with_builtins().switcher("sudoo")
    assert "unknown switcher 'sudoo' (did you mean 'sudo'?)" in str(caught.value)
    assert "noop, sudo, sudo-mock" in str(caught.value)
    assert not isinstance(caught.value, PluginError)


def test_lookups_by_kind_return_the_registered_factories():
    registry = fake_registry()
    assert registry.switcher("recording") is RecordingSwitcher
    assert isinstance(registry.credential_source("static")(None), StaticCredentialSource)
    assert isinstance(registry.payload("fake")(None), FakePayload)
    with pytest.raises(ConfigurationError, match="unknown payload adapter 'recording'"):
        registry.payload("recording")


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown strategy kind 'switchers'"):
        Registry().names("switchers")


def test_registering_a_name_twice_is_refused_unless_replacing():
    registry = fake_registry()
    with pytest.raises(PluginError, match="'recording'.*already taken"):
        registry.register_switcher("recording", RecordingSwitcher)
    registry.register_switcher("recording", sample_plugins.builds_misnamed, replace=True)
    assert registry.switcher("recording") is sample_plugins.builds_misnamed


def test_factory_must_be_callable_or_an_import_path():
    with pytest.raises(PluginError, match="must be callable or an import path"):
        Registry().register_switcher("x", 42)  # type: ignore[arg-type]


def test_import_path_is_imported_only_when_first_used():
    registry = Registry()
    registry.register_switcher("good", f"{SAMPLES}:GoodSwitcher")
    registry.register_switcher("missing", "pilotid.no_such_module:Switcher")
    assert registry.switcher("good") is sample_plugins.GoodSwitcher
    with pytest.raises(PluginError, match=r"'missing' \(pilotid.no_such_module:Switcher\) cannot "
                                          "be loaded: ModuleNotFoundError"):
        registry.switcher("missing")


def test_class_not_providing_the_interface_is_refused_when_loaded():
    registry = Registry()
    registry.register_switcher("not-a-switcher", sample_plugins.NotASwitcher)
    with pytest.raises(PluginError, match="does not provide IIdentitySwitcher"):
        registry.switcher("not-a-switcher")


# --- entry points ------------------------------------------------------------------------

@pytest.mark.parametrize("name, value, words", [
    ("good", f"{SAMPLES}:NotASwitcher", "does not provide IIdentitySwitcher"),
    ("good", "pilotid_no_such_plugin:Switcher", "cannot be loaded: ModuleNotFoundError"),
    ("good", f"{SAMPLES}:Missing", "cannot be loaded: AttributeError"),
    ("good", f"{SAMPLES}:MisnamedSwitcher", "its name attribute is 'something-else'"),
    ("good", f"{SAMPLES}:NOT_CALLABLE", "neither a class nor a callable"),
])
def test_broken_entry_point_is_a_plugin_error_naming_it(name, value, words):
    registry = Registry()
    registry.register_entry_point(SWITCHER, switcher_entry_point(name, value))
    assert name in registry.names(SWITCHER)
    with pytest.raises(PluginError) as caught:
        registry.switcher(name)
    message = str(caught.value)
    assert f"entry point '{name} = {value}' in group 'pilotid.switchers'" in message
    assert words in message


@pytest.mark.parametrize("value, words", [
    (f"{SAMPLES}:builds_a_non_switcher", "built NotASwitcher, which does not provide"),
    (f"{SAMPLES}:builds_misnamed", "its name attribute is 'wrong'"),
    (f"{SAMPLES}:crashes", "failed to build for queue 'ANALY_TEST': RuntimeError: plugin bug"),
])
def test_entry_point_whose_product_is_broken_is_refused_when_built(value, words):
    registry = fake_registry()
    registry.register_entry_point(SWITCHER, switcher_entry_point("good", value))
    with pytest.raises(PluginError) as caught:
        build_strategies(queue(switcher="good"), registry)
    assert f"entry point 'good = {value}'" in str(caught.value)
    assert words in str(caught.value)


def test_configuration_error_of_a_plugin_passes_through_unchanged():
    registry = fake_registry()
    registry.register_entry_point(SWITCHER, switcher_entry_point("good", f"{SAMPLES}:refuses"))
    with pytest.raises(ConfigurationError, match="this plugin needs glexec_path") as caught:
        build_strategies(queue(switcher="good"), registry)
    assert not isinstance(caught.value, PluginError)


def test_working_entry_point_is_built():
    registry = fake_registry()
    registry.register_entry_point(SWITCHER, switcher_entry_point("good", f"{SAMPLES}:GoodSwitcher"))
    switcher = build_strategies(queue(switcher="good"), registry).switcher
    assert isinstance(switcher, sample_plugins.GoodSwitcher)
    assert registry.origin(SWITCHER, "good") == \
        f"entry point 'good = {SAMPLES}:GoodSwitcher' in group 'pilotid.switchers'"


def test_entry_point_clashing_with_a_builtin_makes_that_name_fail_and_others_work():
    registry = Registry.with_builtins()
    registry.register_switcher("recording", RecordingSwitcher)
    registry.register_entry_point(SWITCHER, switcher_entry_point("sudo", f"{SAMPLES}:GoodSwitcher"))
    registry.register_entry_point(SWITCHER, switcher_entry_point("sudo-mock", f"{SAMPLES}:X"))
    assert "sudo" in registry.names(SWITCHER)
    for name in ("sudo", "sudo-mock"):
        with pytest.raises(PluginError) as caught:
            registry.switcher(name)
        assert f"entry point '{name} = " in str(caught.value)
        assert "clashes with" in str(caught.value)
    assert "pilotid.strategies.sudo:SudoSwitcher" in str(
        pytest.raises(PluginError, registry.switcher, "sudo").value)
    assert registry.switcher("recording") is RecordingSwitcher


def fake_metadata(selectable: bool, entry_points):
    if not selectable:  # Python 3.9: a dict of groups
        return lambda: {"pilotid.switchers": list(entry_points), "other": []}

    class Selectable:
        def select(self, group):
            return [ep for ep in entry_points if ep.group == group]

    return lambda: Selectable()


@pytest.mark.parametrize("selectable", [False, True], ids=["py39-dict", "py310-select"])
def test_entry_points_are_listed_on_either_metadata_api_and_deduplicated(monkeypatch, selectable):
    good = switcher_entry_point("good", f"{SAMPLES}:GoodSwitcher")
    other = switcher_entry_point("other", f"{SAMPLES}:MisnamedSwitcher")
    monkeypatch.setattr(registry_module.metadata, "entry_points",
                        fake_metadata(selectable, [good, other, good]))
    assert entry_points_in("pilotid.switchers") == (good, other)
    assert entry_points_in("pilotid.payloads") == ()
    registry = Registry.default()
    assert {"good", "other", "noop", "sudo"} <= set(registry.names(SWITCHER))
    assert registry.switcher("good") is sample_plugins.GoodSwitcher


# --- the real test plugin distribution ---------------------------------------------------

def installed_test_plugin() -> None:
    names = {ep.name for ep in entry_points_in("pilotid.switchers")}
    assert {"recording-plugin", "broken-plugin"} <= names, (
        "the test plugin distribution is not installed: "
        "pip install ./tests/plugin_dist (make test does it)")


def plugin_registry() -> Registry:
    registry = Registry.default()
    registry.register_credential_source("static", lambda s: StaticCredentialSource(CREDENTIAL))
    registry.register_payload("fake", lambda s: FakePayload(["/bin/true"]))
    return registry


def test_queue_builds_a_plugin_switcher_through_its_real_entry_point():
    installed_test_plugin()
    registry = plugin_registry()
    settings = QueueSettings.from_mapping(
        "ANALY_PLUGIN", {"switcher": "recording-plugin", "credential_source": "static",
                         "payloads": ["fake"]}, registry)
    switcher = build_strategies(settings, registry).switcher
    assert type(switcher).__module__ == "pilotid_testplugin"
    assert switcher.name == "recording-plugin"
    assert verifyClass(IIdentitySwitcher, type(switcher))
    assert verifyObject(IIdentitySwitcher, switcher)
    assert switcher.settings is settings


def test_plugin_not_providing_the_interface_is_refused_with_its_entry_point():
    """Refused when the queue is loaded: its settings cannot be read from a broken plugin."""
    installed_test_plugin()
    registry = plugin_registry()
    with pytest.raises(PluginError) as caught:
        QueueSettings.from_mapping(
            "ANALY_BROKEN", {"switcher": "broken-plugin", "credential_source": "static",
                             "payloads": ["fake"]}, registry)
    assert ("entry point 'broken-plugin = pilotid_testplugin:NotASwitcher' in group "
            "'pilotid.switchers' does not provide IIdentitySwitcher") in str(caught.value)


def plugin_queues(tmp_path: Path, queues) -> Path:
    path = tmp_path / "queues.json"
    path.write_text(json.dumps({"queues": queues}))
    return path


def test_plugin_setting_reaches_the_plugin_switcher_through_queues_json(tmp_path):
    installed_test_plugin()
    path = plugin_queues(tmp_path, {"ANALY_PLUGIN": {"switcher": "recording-plugin",
                                                     "recording_tag": "verbose"}})
    settings = load_queue(path, "ANALY_PLUGIN", Registry.default())
    switcher = build_strategies(settings, Registry.default()).switcher
    assert switcher.tag == "verbose"


def test_plugin_setting_left_out_gets_the_plugins_default(tmp_path):
    installed_test_plugin()
    path = plugin_queues(tmp_path, {"ANALY_PLUGIN": {"switcher": "recording-plugin"}})
    settings = load_queue(path, "ANALY_PLUGIN", Registry.default())
    assert build_strategies(settings, Registry.default()).switcher.tag == "plain"


def test_invalid_plugin_setting_is_refused_when_the_queue_is_loaded(tmp_path):
    installed_test_plugin()
    path = plugin_queues(tmp_path, {"ANALY_PLUGIN": {"switcher": "recording-plugin",
                                                     "recording_tag": "loud"}})
    with pytest.raises(ConfigurationError) as caught:
        load_queue(path, "ANALY_PLUGIN", Registry.default())
    assert (f"{path}: queue 'ANALY_PLUGIN', field 'recording_tag': must be one of 'plain', "
            "'verbose', not string \"loud\"") in str(caught.value)


def test_plugin_setting_on_a_queue_of_another_switcher_is_refused_naming_the_plugin(tmp_path):
    installed_test_plugin()
    path = plugin_queues(tmp_path, {"ANALY_SUDO": {
        "switcher": "sudo", "grid_mapfile": "/etc/grid-security/grid-mapfile",
        "recording_tag": "verbose"}})
    with pytest.raises(ConfigurationError) as caught:
        load_queue(path, "ANALY_SUDO", Registry.default())
    message = str(caught.value)
    assert "queue 'ANALY_SUDO', field 'recording_tag': belongs to the recording-plugin " \
           "switcher (entry point 'recording-plugin = pilotid_testplugin:PluginSwitcher'" in message
    assert "it uses the sudo switcher" in message
