"""The queue settings file: reading it, and naming the file in every error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pilotid.errors import ConfigurationError, UnknownQueueError
from pilotid.queue import QueueSettings
from pilotid.queuefile import load_queue, load_queues
from pilotid.registry import Registry

QUEUE = "ANALY_TEST"

DESIGN_EXAMPLE = {"queues": {
    "ANALY_DEMO": {"switcher": "noop", "credential_source": "file",
                   "proxy_file": "/path/to/x509up"},
    "ANALY_SUDO": {"switcher": "sudo", "credential_source": "file",
                   "grid_mapfile": "/etc/grid-security/grid-mapfile"},
    "ANALY_GLEXEC": {"switcher": "glexec", "credential_source": "myproxy",
                     "glexec_path": "/usr/sbin/glexec", "on_probe_failure": "fail",
                     "myproxy_server": "myproxy.example.org", "myproxy_port": 7512,
                     "sandbox": "acl", "umask": "0022", "egg_cache_base": "/tmp",
                     "setup": ["source /cvmfs/.../atlasLocalSetup.sh"], "timeout": 172800},
    "ANALY_LEGACY": {"glexec": "uid", "credential_source": "myproxy"},
}}


@pytest.fixture
def registry() -> Registry:
    """pilotid's own strategies: the queues below name only those."""
    return Registry.with_builtins()


def write(path: Path, document) -> Path:
    """``document`` (a JSON value, or text as it stands) written to ``path``."""
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=2))
    return path


def test_missing_file_is_a_configuration_error_naming_it(tmp_path, registry):
    path = tmp_path / "absent.json"
    with pytest.raises(ConfigurationError, match=f"cannot read queue settings file {path}"):
        load_queues(path, registry)


def test_directory_is_a_configuration_error_naming_it(tmp_path, registry):
    with pytest.raises(ConfigurationError, match=f"cannot read queue settings file {tmp_path}"):
        load_queue(tmp_path, QUEUE, registry)


def test_invalid_json_names_file_and_line(tmp_path, registry):
    path = write(tmp_path / "queues.json", '{"queues": {\n  "A": {"switcher": "noop",}\n}}\n')
    with pytest.raises(ConfigurationError) as caught:
        load_queues(path, registry)
    assert f"{path}, line 2 " in str(caught.value)
    assert "invalid JSON" in str(caught.value)


def test_file_that_is_not_utf8_is_refused(tmp_path, registry):
    path = tmp_path / "queues.json"
    path.write_bytes(b'{"queues": {"\xff": {}}}')
    with pytest.raises(ConfigurationError, match="not UTF-8"):
        load_queues(path, registry)


def test_key_given_twice_is_refused_rather_than_last_one_winning(tmp_path, registry):
    path = write(tmp_path / "queues.json",
                 '{"queues": {"A": {"switcher": "noop", "switcher": "sudo"}}}')
    with pytest.raises(ConfigurationError, match=f"{path}: key 'switcher' is given twice"):
        load_queues(path, registry)


@pytest.mark.parametrize("document, words", [
    ([], "top level must be an object"),
    ({"queue": {}}, "top level must be an object"),
    ({"queues": {}, "queus": 1}, "unknown top-level key 'queus'"),
    ({"queues": ["A"]}, "'queues' must be an object"),
])
def test_file_without_a_queues_object_is_refused(tmp_path, registry, document, words):
    path = write(tmp_path / "queues.json", document)
    with pytest.raises(ConfigurationError, match=words):
        load_queues(path, registry)


def test_error_in_a_file_names_file_queue_and_field(tmp_path, registry):
    path = write(tmp_path / "queues.json", {"queues": {"GOOD": {}, "BAD": {"umask": "999"}}})
    with pytest.raises(ConfigurationError) as caught:
        load_queues(path, registry)
    assert str(caught.value).startswith(f"{path}: queue 'BAD', field 'umask': ")


def test_unknown_queue_names_the_queue_the_file_and_its_queues(tmp_path, registry):
    path = write(tmp_path / "queues.json", DESIGN_EXAMPLE)
    with pytest.raises(UnknownQueueError) as caught:
        load_queue(path, "ANALY_SUDOO", registry)
    message = str(caught.value)
    assert "'ANALY_SUDOO'" in message and str(path) in message
    assert "ANALY_DEMO, ANALY_SUDO, ANALY_GLEXEC, ANALY_LEGACY" in message
    assert "did you mean 'ANALY_SUDO'" in message


def test_unknown_queue_in_an_empty_file_says_it_has_none(tmp_path, registry):
    path = write(tmp_path / "queues.json", {"queues": {}})
    with pytest.raises(UnknownQueueError, match="it has: none;"):
        load_queue(path, "A", registry)


def test_one_queue_loads_even_when_a_neighbour_is_broken(tmp_path, registry):
    path = write(tmp_path / "queues.json",
                 {"queues": {"GOOD": {"sandbox": "world"}, "BAD": {"sandbox": "open"}}})
    assert load_queue(path, "GOOD", registry).sandbox == "world"
    with pytest.raises(ConfigurationError, match="queue 'BAD', field 'sandbox'"):
        load_queue(path, "BAD", registry)


def test_load_queues_accepts_a_string_path(tmp_path, registry):
    path = write(tmp_path / "queues.json", {"queues": {"A": {}}})
    assert load_queues(str(path), registry) == {
        "A": QueueSettings(name="A", options={"proxy_file": None})}


def test_design_example_loads_with_the_legacy_queue_switching_to_the_user(tmp_path, registry):
    queues = load_queues(write(tmp_path / "queues.json", DESIGN_EXAMPLE), registry)
    assert list(queues) == ["ANALY_DEMO", "ANALY_SUDO", "ANALY_GLEXEC", "ANALY_LEGACY"]
    legacy = queues["ANALY_LEGACY"]
    assert (legacy.switcher, legacy.option("glexec_mode"), legacy.credential_source) == \
        ("glexec", "uid", "myproxy")
    glexec = queues["ANALY_GLEXEC"]
    assert glexec.umask == 0o022 and glexec.timeout == 172800
    assert glexec.setup == ("source /cvmfs/.../atlasLocalSetup.sh",)
    assert glexec.option("glexec_path") == Path("/usr/sbin/glexec")
    assert queues["ANALY_DEMO"].option("proxy_file") == Path("/path/to/x509up")
