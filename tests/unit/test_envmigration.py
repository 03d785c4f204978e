"""The allow-list's migration line: the pilot variables a job no longer passes that the
deny-list passed, named (never their values) in one INFO line a job."""

from __future__ import annotations

import logging
from pathlib import Path

from pilotid.payloads.envmigration import SHOWN, log_newly_dropped, newly_dropped
from pilotid.payloads.job import PayloadCommand
from pilotid.payloads.wrapper import WrapperSpec
from pilotid.values import ProxyHandover

PILOT_ENV = {
    "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",          # passed by default
    "TMPDIR": "/home/pilot/tmp", "LD_LIBRARY_PATH": "/opt/pilot/lib",
    "ATLAS_LOCAL_ROOT_BASE": "/cvmfs/atlas", "MY_TOKEN": "s3cr3t-value",  # passed before
    "BEARER_TOKEN": "denied", "LD_PRELOAD": "/x.so",   # denied before too
    "BASH_FUNC_f%%": "() { :; }", "ODD": "() { echo; }",  # never passable
}


def spec(env=PILOT_ENV, extra_pass=(), extra_deny=(), additions=()) -> WrapperSpec:
    work = Path("/w")
    return WrapperSpec(command=PayloadCommand(argv=("/bin/true",), environment=additions),
                       workdir=work, handover=ProxyHandover(work / "x509up"),
                       marker=work / ".pilotid-marker", environment=tuple(env.items()),
                       extra_pass=tuple(extra_pass), extra_deny=tuple(extra_deny))


def test_names_what_the_deny_list_passed_and_the_allow_list_drops():
    assert newly_dropped(spec()) == ["ATLAS_LOCAL_ROOT_BASE", "LD_LIBRARY_PATH", "MY_TOKEN",
                                     "TMPDIR"]


def test_env_pass_and_env_deny_and_the_commands_own_variables_silence_a_name():
    quiet = spec(extra_pass=["ATLAS_*"], extra_deny=["MY_TOKEN"],
                 additions=(("TMPDIR", "/w/tmp"),))
    assert newly_dropped(quiet) == ["LD_LIBRARY_PATH"]


def test_one_info_line_names_them_never_their_values(caplog):
    with caplog.at_level(logging.DEBUG, logger="pilotid.payloads.envmigration"):
        log_newly_dropped(7, spec())
    (record,) = [r for r in caplog.records if r.name == "pilotid.payloads.envmigration"]
    assert record.levelno == logging.INFO
    assert "job 7:" in record.getMessage() and "env_pass" in record.getMessage()
    assert "TMPDIR" in record.getMessage() and "s3cr3t-value" not in record.getMessage()


def test_nothing_is_logged_when_nothing_is_lost(caplog):
    with caplog.at_level(logging.DEBUG, logger="pilotid.payloads.envmigration"):
        log_newly_dropped(7, spec(env={"PATH": "/bin", "LANG": "C"}))
    assert not [r for r in caplog.records if r.name == "pilotid.payloads.envmigration"]


def test_a_long_list_is_cut_and_counted(caplog):
    env = {f"SITE_VAR_{n:03d}": "x" for n in range(SHOWN + 5)}
    with caplog.at_level(logging.INFO, logger="pilotid.payloads.envmigration"):
        log_newly_dropped(7, spec(env=env))
    assert caplog.text.count("SITE_VAR_") == SHOWN and "and 5 more" in caplog.text
