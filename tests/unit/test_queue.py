"""Queue settings: validation (every error names queue and field), PanDA's glexec."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pilotid.errors import ConfigurationError
from pilotid.queue import (
    GENERIC_SETTINGS,
    QueueSettings,
    field_names,
    panda_glexec,
)
from pilotid.registry import BUILTINS, Registry
from pilotid.strategies.sudo import GRID_MAPFILE, SUDO_PATH
from pilotid.testing import RecordingSwitcher, StaticCredentialSource

QUEUE = "ANALY_TEST"



@pytest.fixture
def registry() -> Registry:
    """The built-ins (noop, sudo, glexec; file, myproxy; buildJob, runAthena)."""
    return Registry.with_builtins()


def settings(mapping, registry):
    return QueueSettings.from_mapping(QUEUE, mapping, registry)


# --- valid settings ----------------------------------------------------------------------

def test_empty_queue_gets_the_defaults(registry):
    """Generic defaults, and the default of the file source's own setting."""
    assert settings({}, registry) == QueueSettings(name=QUEUE, options={"proxy_file": None})


def test_egg_cache_base_defaults_to_tmp(registry):
    assert settings({}, registry).egg_cache_base == Path("/tmp")


GENERIC = {
    "payloads": ["runAthena"], "on_probe_failure": "reschedule", "sandbox": "world",
    "umask": "0027", "egg_cache_base": "/scratch", "setup": ["source /a.sh", "export B=1"],
    "env_deny": ["MY_TOKEN", "SECRET_*"], "env_pass": ["ATLAS_*"], "timeout": 3600,
    "grace_period": 5,
    "accounting_file": "/var/log/pilotid.jsonl", "transformation_dirs": ["/opt/trf", "/cvmfs/trf"],
    "standin_transformations": True, "jobs_without_dn": "refuse",
    "syslog_facility": "local3", "syslog_address": "127.0.0.1:5514",
    "proxy_refresh_threshold": 7200, "proxy_refresh_interval": 600,
    "work_root": "/scratch/pilot", "state_dir": "/var/lib/pilotid-pilot",
}
GLEXEC_MYPROXY = {
    "switcher": "glexec", "credential_source": "myproxy", "glexec_path": "/usr/sbin/glexec",
    "glexec_mode": "test", "probe_cache_lifetime": 600, "switch_retries": 2,
    "switch_retry_delay": 0.25, "myproxy_server": "myproxy.example.org", "myproxy_port": 7513,
    "leftover_processes": "account",
}
SUDO_FILE = {
    "switcher": "sudo", "credential_source": "file", "grid_mapfile": "/etc/grid-security/gm",
    "sudo_path": "/opt/sudo/bin/sudo", "probe_cache_lifetime": 0, "proxy_file": "/p/x509up",
}
SUDO_TOKENS = {
    "switcher": "sudo", "credential_source": "token-file", "grid_mapfile": "/etc/gm",
    "token_mapfile": "/etc/grid-security/token-map", "token_file": "/tokens/{panda_id}.bt",
    "token_issuers": {"https://atlas-auth.example.org/": "/etc/pilotid/atlas.jwks"},
    "token_clock_skew": 30, "token_with_proxy": True, "token_lifetime_needed": 600,
    "token_refresh_threshold": 900, "token_audiences": ["https://ce.example.org:9619"],
}
NOOP_BWRAP = {
    "switcher": "noop", "isolation": "bwrap", "isolation_policy": "preferred",
    "bwrap_path": "/usr/bin/bwrap", "bwrap_binds": ["/cvmfs"], "bwrap_pid_namespace": True,
    "bwrap_network": False,
}


def builtin_settings(registry):
    return {setting.name for kind, name, _ in BUILTINS
            for setting in registry.settings_of(kind, name)}


def test_the_examples_cover_every_generic_field_and_every_builtin_setting(registry):
    covered = (set(GENERIC) | set(GLEXEC_MYPROXY) | set(SUDO_FILE) | set(SUDO_TOKENS)
               | set(NOOP_BWRAP))
    assert covered == (set(field_names()) - {"glexec"}) | builtin_settings(registry)


def test_sudo_and_token_settings_are_read_into_the_options(registry):
    options = dict(settings(SUDO_TOKENS, registry).options)
    assert options["token_issuers"] == {
        "https://atlas-auth.example.org/": Path("/etc/pilotid/atlas.jwks")}
    assert (options["token_file"], options["token_mapfile"], options["token_clock_skew"]) == (
        Path("/tokens/{panda_id}.bt"), Path("/etc/grid-security/token-map"), 30.0)
    assert options["token_with_proxy"] is True and options["proxy_file"] is None
    assert options["token_audiences"] == ("https://ce.example.org:9619",)


def test_every_generic_field_is_read_into_its_python_type(registry):
    result = settings({**GENERIC, **GLEXEC_MYPROXY}, registry)
    assert dataclasses.replace(result, options={}) == QueueSettings(
        name=QUEUE, switcher="glexec", credential_source="myproxy", payloads=("runAthena",),
        on_probe_failure="reschedule", sandbox="world", umask=0o027,
        egg_cache_base=Path("/scratch"), setup=("source /a.sh", "export B=1"),
        env_deny=("MY_TOKEN", "SECRET_*"), env_pass=("ATLAS_*",), timeout=3600, grace_period=5,
        accounting_file=Path("/var/log/pilotid.jsonl"),
        transformation_dirs=(Path("/opt/trf"), Path("/cvmfs/trf")),
        standin_transformations=True, jobs_without_dn="refuse",
        syslog_facility="local3", syslog_address="127.0.0.1:5514",
        proxy_refresh_threshold=7200, proxy_refresh_interval=600,
        work_root=Path("/scratch/pilot"), state_dir=Path("/var/lib/pilotid-pilot"))


def test_glexec_and_myproxy_settings_are_read_into_the_options(registry):
    assert dict(settings(GLEXEC_MYPROXY, registry).options) == {
        "glexec_path": Path("/usr/sbin/glexec"), "glexec_mode": "test",
        "probe_cache_lifetime": 600, "switch_retries": 2, "switch_retry_delay": 0.25,
        "myproxy_server": "myproxy.example.org", "myproxy_port": 7513,
        "leftover_processes": "account"}


def test_sudo_and_file_settings_are_read_into_the_options(registry):
    assert dict(settings(SUDO_FILE, registry).options) == {
        "grid_mapfile": Path("/etc/grid-security/gm"), "sudo_path": Path("/opt/sudo/bin/sudo"),
        "probe_cache_lifetime": 0, "proxy_file": Path("/p/x509up"), "leftover_processes": "job",
        "token_mapfile": None}


def test_strategy_settings_left_out_get_their_declared_defaults(registry):
    result = settings({"switcher": "glexec", "credential_source": "myproxy"}, registry)
    assert dict(result.options) == {
        "glexec_path": None, "glexec_mode": None, "probe_cache_lifetime": None,
        "switch_retries": 3, "switch_retry_delay": 5.0, "myproxy_server": None,
        "myproxy_port": 7512, "leftover_processes": "job"}


def test_generic_defaults_of_the_class_are_the_declared_ones():
    defaults = QueueSettings(name=QUEUE)
    for setting in GENERIC_SETTINGS:
        assert getattr(defaults, setting.name) == setting.value_default, setting.name


def test_option_reads_a_value_given_else_the_settings_default():
    queue = QueueSettings(name=QUEUE, options={"sudo_path": Path("/opt/sudo")})
    assert queue.option(SUDO_PATH) == Path("/opt/sudo")
    assert queue.option("sudo_path") == Path("/opt/sudo")
    assert QueueSettings(name=QUEUE).option(SUDO_PATH) is None


def test_option_of_a_required_setting_never_given_names_queue_and_setting():
    with pytest.raises(ConfigurationError, match=f"queue {QUEUE}: grid_mapfile is not set"):
        QueueSettings(name=QUEUE).option(GRID_MAPFILE)


def test_option_by_a_name_nobody_gave_is_a_key_error():
    with pytest.raises(KeyError, match="sudo_path"):
        QueueSettings(name=QUEUE).option("sudo_path")


@pytest.mark.parametrize("timeout, threshold, needed", [
    (None, 10800, 10800), (3600, 10800, 3600), (172800, 10800, 10800), (600, 0, 0)])
def test_proxy_lifetime_needed_is_the_timeout_capped_by_the_refresh_threshold(
        timeout, threshold, needed):
    queue = QueueSettings(name=QUEUE, timeout=timeout, proxy_refresh_threshold=threshold)
    assert queue.proxy_lifetime_needed() == needed


@pytest.mark.parametrize("text, value", [("0022", 0o022), ("022", 0o022), ("0000", 0),
                                         ("0777", 0o777), ("077", 0o077)])
def test_umask_is_read_as_octal(registry, text, value):
    assert settings({"umask": text}, registry).umask == value


def test_optional_fields_accept_null(registry):
    result = settings({"credential_source": "myproxy", "timeout": None,
                       "myproxy_server": None}, registry)
    assert (result.timeout, result.option("myproxy_server")) == (None, None)


def test_optional_strategy_settings_accept_null(registry):
    result = settings({"proxy_file": None}, registry)
    assert result.option("proxy_file") is None


def test_sudo_path_defaults_to_none_the_search_path(registry):
    result = settings({"switcher": "sudo", "grid_mapfile": "/etc/gm"}, registry)
    assert result.option("sudo_path") is None


def test_sudo_mock_is_accepted_and_kept_as_written(registry):
    result = settings({"switcher": "sudo-mock", "grid_mapfile": "/etc/gm"}, registry)
    assert result.switcher == "sudo-mock"


# --- PanDA's glexec field ----------------------------------------------------------------

@pytest.mark.parametrize("value, switcher, mode", [
    (True, "glexec", "uid"),
    ("True", "glexec", "uid"),
    ("true", "glexec", "uid"),
    ("uid", "glexec", "uid"),
    ("UID", "glexec", "uid"),
    ("test", "glexec", "test"),
    ("Test", "glexec", "test"),
    (False, "noop", None),
    ("False", "noop", None),
    ("false", "noop", None),
    ("", "noop", None),
    (None, "noop", None),
])
def test_panda_glexec_field_maps_to_switcher_and_mode(registry, value, switcher, mode):
    result = settings({"glexec": value, "credential_source": "myproxy"}, registry)
    assert (result.switcher, result.options.get("glexec_mode")) == (switcher, mode)
    assert panda_glexec(value) == (switcher, mode)


@pytest.mark.parametrize("value", ["yes", "1", 1, 0, "on", ["uid"], {"mode": "uid"}])
def test_unknown_panda_glexec_value_is_refused_not_read_as_noop(registry, value):
    with pytest.raises(ConfigurationError) as caught:
        settings({"glexec": value, "credential_source": "myproxy"}, registry)
    assert f"queue '{QUEUE}', field 'glexec'" in str(caught.value)
    assert "'uid'" in str(caught.value) and "'test'" in str(caught.value)


# --- every validation error names queue and field ----------------------------------------

GLEXEC = {"switcher": "glexec", "credential_source": "myproxy"}
SUDO = {"switcher": "sudo", "grid_mapfile": "/etc/grid-security/grid-mapfile"}
MYPROXY = {"credential_source": "myproxy"}

INVALID = [
    # (field named in the error, mapping, words the message must contain)
    ("umsak", {"umsak": "0022"}, ["did you mean 'umask'"]),
    ("colour", {"colour": "blue"}, ["unknown field", "switcher"]),
    ("name", {"name": "OTHER"}, ["key under 'queues'"]),
    ("switcher", {"switcher": 42}, ["non-empty string", "number 42"]),
    ("switcher", {"switcher": ""}, ["non-empty string"]),
    ("switcher", {"switcher": None}, ["non-empty string", "null"]),
    ("credential_source", {"credential_source": ["file"]}, ["non-empty string", "list"]),
    ("payloads", {"payloads": "buildJob"}, ["list of payload adapter names"]),
    ("payloads", {"payloads": []}, ["at least one"]),
    ("payloads", {"payloads": ["buildJob", 3]}, ["item 1"]),
    ("payloads", {"payloads": ["buildJob", "buildJob"]}, ["twice"]),
    ("proxy_file", {"proxy_file": "x509up"}, ["absolute path", "'x509up'"]),
    ("proxy_file", {"proxy_file": 5}, ["absolute path"]),
    ("grid_mapfile", {**SUDO, "grid_mapfile": "etc/grid-mapfile"}, ["absolute path"]),
    ("glexec_path", {**GLEXEC, "glexec_path": "glexec"}, ["absolute path"]),
    ("sudo_path", {**SUDO, "sudo_path": "sudo"}, ["absolute path", "'sudo'"]),
    ("sudo_path", {**SUDO, "sudo_path": "bin/sudo"}, ["absolute path", "relative"]),
    ("sudo_path", {**SUDO, "sudo_path": ""}, ["absolute path"]),
    ("sudo_path", {**SUDO, "sudo_path": 1}, ["absolute path", "number 1"]),
    ("sudo_path", {**SUDO, "sudo_path": ["/usr/bin/sudo"]}, ["absolute path", "list"]),
    ("sudo_path", {**SUDO, "sudo_path": "/usr/bin/su\u0000do"}, ["NUL"]),
    ("glexec_mode", {**GLEXEC, "glexec_mode": "sometimes"}, ["'uid', 'test'"]),
    ("on_probe_failure", {"on_probe_failure": "fallback"}, ["'fail', 'reschedule'"]),
    ("probe_cache_lifetime", {**SUDO, "probe_cache_lifetime": -1}, ["at least 0"]),
    ("probe_cache_lifetime", {**GLEXEC, "probe_cache_lifetime": "1h"}, ["whole number"]),
    ("myproxy_server", {**MYPROXY, "myproxy_server": ""}, ["non-empty string"]),
    ("myproxy_port", {**MYPROXY, "myproxy_port": 0}, ["from 1 to 65535"]),
    ("myproxy_port", {**MYPROXY, "myproxy_port": 65536}, ["from 1 to 65535"]),
    ("myproxy_port", {**MYPROXY, "myproxy_port": "7512"}, ["whole number"]),
    ("myproxy_port", {**MYPROXY, "myproxy_port": True}, ["whole number"]),
    ("sandbox", {"sandbox": "none"}, ["'acl', 'acl-or-world', 'world'"]),
    ("umask", {"umask": "0888"}, ["octal", "0777"]),
    ("umask", {"umask": "22"}, ["octal"]),
    ("umask", {"umask": "01777"}, ["octal"]),
    ("umask", {"umask": "0o22"}, ["octal"]),
    ("umask", {"umask": 18}, ["octal string", "decimal"]),
    ("egg_cache_base", {"egg_cache_base": "tmp"}, ["absolute path"]),
    ("egg_cache_base", {"egg_cache_base": None}, ["absolute path"]),
    ("setup", {"setup": "source /a.sh"}, ["list of setup lines"]),
    ("setup", {"setup": [1]}, ["item 0"]),
    ("env_deny", {"env_deny": [""]}, ["item 0", "non-empty"]),
    ("env_pass", {"env_pass": [""]}, ["item 0", "non-empty"]),
    ("timeout", {"timeout": 0}, ["at least 1"]),
    ("timeout", {"timeout": -5}, ["at least 1"]),
    ("timeout", {"timeout": 1.5}, ["whole number"]),
    ("grace_period", {"grace_period": -1}, ["at least 0"]),
    ("switch_retries", {**GLEXEC, "switch_retries": 0}, ["from 1 to 100"]),
    ("switch_retry_delay", {**GLEXEC, "switch_retry_delay": -1}, [">= 0"]),
    ("switch_retry_delay", {**GLEXEC, "switch_retry_delay": "5"}, ["number of seconds"]),
    ("proxy_refresh_interval", {"proxy_refresh_interval": 0}, ["at least 1"]),
    ("accounting_file", {"accounting_file": "acct.jsonl"}, ["absolute path"]),
    ("transformation_dirs", {"transformation_dirs": ["trf"]}, ["item 0", "absolute path"]),
    ("syslog_facility", {"syslog_facility": "authpriv.notice"}, ["'authpriv'", "'local7'"]),
    ("syslog_address", {"syslog_address": "dev/log"}, ["socket path or host:port"]),
    ("syslog_address", {"syslog_address": "localhost:514x"}, ["socket path or host:port"]),
    # unknown strategy names, listing the known ones
    ("switcher", {"switcher": "glexc"}, ["unknown switcher 'glexc'", "did you mean 'glexec'",
                                         "noop, sudo, sudo-mock"]),
    ("credential_source", {"credential_source": "myproxi"},
     ["unknown credential source", "'myproxy'", "file, myproxy"]),
    ("payloads", {"payloads": ["buildjob"]}, ["unknown payload adapter", "'buildJob'"]),
    # contradictions
    ("credential_source", {"switcher": "glexec"}, ["no credential source"]),
    ("credential_source", {"glexec": "uid"}, ["no credential source"]),
    ("credential_source", {"glexec": "test"}, ["no credential source"]),
    ("glexec", {"glexec": "uid", "switcher": "glexec", "credential_source": "myproxy"},
     ["'switcher'", "keep one"]),
    ("glexec", {"glexec": "False", "switcher": "sudo"}, ["'switcher'"]),
    ("glexec", {"glexec": "uid", "glexec_mode": "test", "credential_source": "myproxy"},
     ["'glexec_mode'"]),
    ("grid_mapfile", {"switcher": "sudo"}, ["grid-mapfile"]),
    ("grid_mapfile", {"switcher": "sudo-mock"}, ["sudo-mock", "grid-mapfile"]),
    ("glexec_mode", {"glexec_mode": "uid"}, ["belongs to the glexec switcher",
                                              "it uses the noop switcher"]),
    # a strategy's own setting on a queue that does not use that strategy
    ("sudo_path", {**GLEXEC, "sudo_path": "/usr/bin/sudo"},
     ["belongs to the sudo switcher", "it uses the glexec switcher"]),
    ("glexec_path", {**SUDO, "glexec_path": "/usr/sbin/glexec"},
     ["belongs to the glexec switcher", "it uses the sudo switcher"]),
    ("myproxy_server", {"myproxy_server": "myproxy.example.org"},
     ["belongs to the myproxy credential source", "it uses the file credential source"]),
    ("proxy_file", {**MYPROXY, "proxy_file": "/p/x509up"},
     ["the file credential source", "it uses the myproxy credential source"]),
    ("probe_cache_lifetime", {"probe_cache_lifetime": 60},
     ["belongs to the glexec switcher and the sudo switcher"]),
    # with no switch, every process of the account is the pilot's own
    ("leftover_processes", {"leftover_processes": "account"},
     ["belongs to the glexec switcher and the sudo switcher", "it uses the noop switcher"]),
    ("leftover_processes", {**SUDO, "leftover_processes": "all"}, ["'job', 'account'"]),
    ("glexec_pth", {**GLEXEC, "glexec_pth": "/usr/sbin/glexec"}, ["did you mean 'glexec_path'"]),
    ("glexec", {"glexec": "maybe", "credential_source": "myproxy"}, ["not a PanDA glexec"]),
]


@pytest.mark.parametrize("field, mapping, words", INVALID,
                         ids=[f"{f}:{json.dumps(m)[:40]}" for f, m, _ in INVALID])
def test_invalid_setting_is_refused_naming_queue_and_field(registry, field, mapping, words):
    with pytest.raises(ConfigurationError) as caught:
        settings(mapping, registry)
    message = str(caught.value)
    assert f"queue '{QUEUE}', field '{field}'" in message
    for word in words:
        assert word in message
    assert "\n" not in message


def test_unknown_glexec_switcher_is_reported_on_the_glexec_field():
    """Without a glexec switcher registered, PanDA's field is the one to blame."""
    registry = Registry()
    registry.register_switcher("noop", lambda settings: RecordingSwitcher(settings, "noop"))
    registry.register_credential_source("file", lambda settings: StaticCredentialSource())
    with pytest.raises(ConfigurationError, match=f"queue '{QUEUE}', field 'glexec': unknown "
                                                 "switcher 'glexec'"):
        settings({"glexec": "uid", "credential_source": "file"}, registry)


def test_settings_that_are_not_an_object_are_refused(registry):
    with pytest.raises(ConfigurationError, match=f"queue '{QUEUE}'.*JSON object"):
        settings(["switcher", "noop"], registry)


def test_validation_uses_the_default_registry_when_none_is_given():
    with pytest.raises(ConfigurationError, match="known switchers are .*noop"):
        QueueSettings.from_mapping(QUEUE, {"switcher": "nothing-like-it"})
