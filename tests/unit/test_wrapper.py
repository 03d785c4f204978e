"""The generated wrapper: environment deny-list, quoting, and what the script does when run.

The running tests execute the rendered script with the real bash as the current user; the
payload is a small Python program that dumps its argv, environment, directory and umask.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pilotid.errors import ConfigurationError, JobDescriptionError, WorkdirError
from pilotid.payloads import wrapper
from pilotid.payloads.job import PayloadCommand
from pilotid.payloads.marker import read_marker
from pilotid.payloads.wrapper import (
    EGG_CACHE_PREFIX,
    WRAPPER_FAILURE_STATUS,
    WrapperSpec,
    bash_quote,
    filter_environment,
    render_wrapper,
    write_wrapper,
)
from pilotid.values import ProxyHandover, WrapperMarker

BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

DUMPER = r"""
import json, os, sys
out = sys.argv[1]
info = {
    "argv": [os.fsencode(a).hex() for a in sys.argv[2:]],
    "env": {k.hex(): v.hex() for k, v in os.environb.items()},
    "cwd": os.getcwd(),
    "umask": os.umask(0),
    "stdin": sys.stdin.read() if not sys.stdin.closed else None,
}
egg = os.environ.get("PYTHON_EGG_CACHE")
if egg:
    info["egg_mode"] = os.stat(egg).st_mode & 0o7777
with open(out, "w") as f:
    json.dump(info, f)
code = os.environ.get("DUMP_EXIT")
sys.exit(int(code) if code else 0)
"""


class Run:
    """A wrapper run in its own directory: paths, the result and what the payload saw."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.work = base / "work"
        self.work.mkdir()
        self.eggs = base / "eggs"
        self.eggs.mkdir()
        self.marker = self.work / "marker"
        self.proxy = self.work / "handover" / "payload-proxy"
        self.proxy.parent.mkdir(mode=0o700)
        self.dump = base / "dump.json"
        self.dumper = base / "dumper.py"
        self.dumper.write_text(DUMPER)
        self.canary = base / "CANARY"
        self.wrapper = base / "wrapper.sh"
        self.result: Optional[subprocess.CompletedProcess] = None

    def spec(self, args: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
             argv: Optional[Sequence[str]] = None, from_stdin: bool = False,
             setup: Sequence[str] = (), additions: Tuple[Tuple[str, str], ...] = (),
             umask: int = 0o022, egg_cache_base: Optional[Path] = None,
             extra_deny: Tuple[str, ...] = (),
             env_pass: Optional[Tuple[str, ...]] = None) -> WrapperSpec:
        """``env_pass`` is the queue's; by default it names every variable of ``env``."""
        if argv is None:
            argv = [sys.executable, str(self.dumper), str(self.dump), *args]
        environment = dict(BASE_ENV)
        environment.update(env or {})
        return WrapperSpec(
            command=PayloadCommand(argv=tuple(argv), environment=additions, setup=tuple(setup)),
            workdir=self.work, handover=ProxyHandover(self.proxy, from_stdin),
            marker=self.marker, environment=tuple(environment.items()), umask=umask,
            egg_cache_base=egg_cache_base or self.eggs, extra_deny=extra_deny,
            extra_pass=tuple(env or ()) if env_pass is None else env_pass)

    def run(self, spec: WrapperSpec, stdin: bytes = b"", timeout: float = 60
            ) -> subprocess.CompletedProcess:
        write_wrapper(spec, self.wrapper)
        self.result = subprocess.run([str(self.wrapper)], input=stdin, env=BASE_ENV,
                                     capture_output=True, timeout=timeout)
        return self.result

    def start(self, spec: WrapperSpec) -> subprocess.Popen:
        write_wrapper(spec, self.wrapper)
        return subprocess.Popen([str(self.wrapper)], stdin=subprocess.DEVNULL, env=BASE_ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def seen(self) -> dict:
        info = json.loads(self.dump.read_text())
        info["argv"] = [bytes.fromhex(a) for a in info["argv"]]
        info["env"] = {bytes.fromhex(k): bytes.fromhex(v) for k, v in info["env"].items()}
        return info

    def marker_text(self) -> str:
        return self.marker.read_text()


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def without_egg(marker: Optional[WrapperMarker]) -> WrapperMarker:
    """``marker`` without the egg cache it names (random digits, checked for their form)."""
    assert marker is not None
    assert marker.egg_cache is None or re.fullmatch("[0-9a-f]{32}", marker.egg_cache)
    return replace(marker, egg_cache=None)


def wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.02)


# --- filter_environment -------------------------------------------------------------------

DENIED = [
    "LD_PRELOAD", "LD_AUDIT", "LD_DEBUG", "LD_DEBUG_OUTPUT", "LD_PROFILE", "LD_PROFILE_OUTPUT",
    "LD_ORIGIN_PATH", "LD_USE_LOAD_BIAS", "GCONV_PATH", "GLIBC_TUNABLES", "HOSTALIASES",
    "LOCALDOMAIN", "MALLOC_TRACE", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS",
    "HOME", "USER", "LOGNAME", "USERNAME", "MAIL", "SHELL", "XDG_RUNTIME_DIR", "KRB5CCNAME",
    "SUDO_USER", "SUDO_UID", "SUDO_COMMAND",
    "X509_USER_PROXY", "X509_USER_CERT", "X509_USER_KEY", "BEARER_TOKEN", "BEARER_TOKEN_FILE",
    "PANDA_AUTH_TOKEN", "PANDA_AUTH_ORIGIN", "OIDC_AGENT_SOCK", "GLEXEC_CLIENT_CERT",
    "GLEXEC_SOURCE_PROXY", "SSH_AUTH_SOCK", "PYTHON_EGG_CACHE",
    "BASH_ENV", "BASH_XTRACEFD", "BASH_FUNC_foo%%", "BASHOPTS", "SHELLOPTS", "PWD", "OLDPWD",
    "SHLVL", "_", "IFS", "PS1", "PS4", "PROMPT_COMMAND", "ENV", "CDPATH", "GLOBIGNORE",
    "HISTFILE", "TMOUT", "POSIXLY_CORRECT", "FUNCNEST", "EUID", "_pilotid_marker_fd",
]

KEPT = [
    "PATH", "LD_LIBRARY_PATH", "TMPDIR", "LANG", "LC_ALL", "PYTHONPATH", "X509_CERT_DIR",
    "X509_VOMS_DIR", "ATLAS_USER_AREA", "MYUSER", "HOMEDIR", "USER_AREA", "MY_HOME",
    "SUDOKU", "OIDC", "MY_OIDC_TOKEN", "BEARER", "XBEARER_TOKEN", "LD_PRELOADED_BY_SITE_X",
    "SHELLY", "ENVIRONMENT", "_PILOTID_OTHER", "BASHFUL", "PANDA_SITE", "X509_USER_PROXY_OLD",
]


@pytest.mark.parametrize("name", DENIED)
def test_deny_listed_variable_is_dropped(name):
    assert filter_environment({name: "value", "PATH": "/bin"}) == {"PATH": "/bin"}


@pytest.mark.parametrize("name", KEPT)
def test_names_that_only_contain_a_denied_name_are_kept(name):
    """Names are matched whole, never as substrings (glexec_wrapenv.pl dropped any *USER*)."""
    assert filter_environment({name: "/value"}, extra_pass=("*",)) == {name: "/value"}


@pytest.mark.parametrize("name", DENIED)
def test_the_deny_list_wins_over_a_queue_that_passes_everything(name):
    assert filter_environment({name: "value"}, extra_pass=("*",)) == {}


def test_only_the_default_and_the_queues_names_pass():
    env = {"LANG": "C", "LC_ALL": "C", "TZ": "UTC", "TERM": "xterm", "X509_CERT_DIR": "/c",
           "X509_VOMS_DIR": "/v", "VO_ATLAS_SW_DIR": "/sw", "ATLAS_LOCAL_AREA": "/a",
           "FRONTIER_SERVER": "f", "FRONTIER_X": "x", "OTHER": "o", "LD_LIBRARY_PATH": "/l"}
    kept = filter_environment(env, extra_pass=("ATLAS_*", "FRONTIER_SERVER"))
    assert set(kept) == set(env) - {"FRONTIER_X", "OTHER", "LD_LIBRARY_PATH"}


@pytest.mark.parametrize("value", ["", ".", "::", "bin:.", "relative"])
def test_a_path_with_no_absolute_entry_is_dropped(value):
    assert filter_environment({"PATH": value}) == {}


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "", "A.B", "caf\u00e9", "A=B", "-x"])
def test_names_that_are_not_shell_identifiers_are_dropped(name):
    assert filter_environment({name: "value"}, extra_pass=("*",)) == {}


@pytest.mark.parametrize("value", ["() { echo pwned; }", "()  {  :; }", " () { :;}"])
def test_exported_bash_functions_are_dropped(value):
    assert filter_environment({"ANY_NAME": value}, extra_pass=("*",)) == {}


def test_value_with_a_nul_byte_is_dropped():
    assert filter_environment({"A": "x\0y", "B": "ok"}, extra_pass=("*",)) == {"B": "ok"}


def test_extra_deny_takes_exact_names_and_whole_name_patterns():
    env = {"SITE_SECRET": "1", "SITE_SECRETS": "2", "MY_SITE_SECRET": "3", "TOKEN_A": "4",
           "A_TOKEN": "5"}
    kept = filter_environment(env, extra_deny=("SITE_SECRET", "TOKEN_*"), extra_pass=("*",))
    assert kept == {"SITE_SECRETS": "2", "MY_SITE_SECRET": "3", "A_TOKEN": "5"}


def test_filter_keeps_order_and_values_untouched():
    env = {"Z": "1", "A": "line\nbreak", "M": "$(x) `y` 'q' \"d\""}
    assert list(filter_environment(env, extra_pass=("*",)).items()) == list(env.items())


def test_dropped_names_are_logged_without_values(caplog):
    caplog.set_level("DEBUG", logger="pilotid.payloads.wrapper")
    filter_environment({"BEARER_TOKEN": "s3cr3t-value", "OTHER": "0th3r-value"})
    assert "BEARER_TOKEN" in caplog.text
    assert "OTHER" in caplog.text
    assert "s3cr3t-value" not in caplog.text and "0th3r-value" not in caplog.text


# --- bash_quote ---------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "plain", "a b", "it's", "$(id)", "`id`", "a\nb",
                                  "caf\u00e9", "\x01\x7f", "100%", "\\", "'\\''",
                                  b"\xff\xfe".decode("utf-8", "surrogateescape")])
def test_bash_quote_gives_back_the_exact_bytes(text):
    word = bash_quote(text)
    assert word.isascii()
    out = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, check=True)
    assert out.stdout == os.fsencode(text)


def test_bash_quote_uses_shlex_quote_for_printable_ascii():
    import shlex
    assert bash_quote("it's $HOME") == shlex.quote("it's $HOME")


def test_bash_quote_refuses_a_nul_byte():
    with pytest.raises(ValueError):
        bash_quote("a\0b")


# --- render_wrapper and write_wrapper -----------------------------------------------------

def test_script_starts_with_bash_and_is_ascii(run):
    script = render_wrapper(run.spec(setup=("echo caf\u00e9",), env={"V": "\u00e9"}))
    assert script.startswith("#!/bin/bash\n")
    assert script.isascii()


def test_script_steps_come_in_the_documented_order(run):
    script = render_wrapper(run.spec(from_stdin=True, env={"SOME_VAR": "1"},
                                     additions=(("ADDED", "2"),), setup=("true",)))
    steps = ["builtin set -u", "builtin set -C", "exec {_pilotid_marker_fd}>", "uid=%s",
             "builtin read -r -d '' _pilotid_pem", "builtin exec </dev/null", "export SOME_VAR=1",
             "export ADDED=2", "export X509_USER_PROXY=", "builtin cd -P --", "builtin umask 0022",
             "_pilotid_note egg", "mkdir -m 700 --", "export PYTHON_EGG_CACHE=",
             "builtin eval true", "builtin wait",
             "_pilotid_note status", "builtin exit \"$_pilotid_status\""]
    positions = [script.index(step) for step in steps]
    assert positions == sorted(positions)


def test_egg_cache_is_never_made_with_mkdir_p_nor_under_tmpdir(run):
    script = render_wrapper(run.spec())
    assert "mkdir -p" not in script
    assert "TMPDIR" not in script
    assert "mktemp" not in script


def test_proxy_is_read_from_stdin_only_when_the_handover_says_so(run):
    assert "_pilotid_pem" not in render_wrapper(run.spec(from_stdin=False))
    assert "_pilotid_pem" in render_wrapper(run.spec(from_stdin=True))


def test_umask_is_written_in_octal(run):
    assert "builtin umask 0077" in render_wrapper(run.spec(umask=0o077))
    assert "builtin umask 0000" in render_wrapper(run.spec(umask=0))


def test_empty_argv_is_refused(run):
    with pytest.raises(JobDescriptionError):
        render_wrapper(run.spec(argv=()))


def test_argument_with_a_nul_byte_is_refused_with_its_position(run):
    with pytest.raises(JobDescriptionError, match="argument 1"):
        render_wrapper(run.spec(argv=("prog", "a\0b")))


def test_impossible_umask_is_a_configuration_error(run):
    with pytest.raises(ConfigurationError):
        render_wrapper(run.spec(umask=0o1000))


def test_relative_egg_cache_base_is_a_configuration_error(run):
    with pytest.raises(ConfigurationError):
        render_wrapper(run.spec(egg_cache_base=Path("eggs")))


def test_addition_with_an_invalid_name_is_refused(run):
    with pytest.raises(JobDescriptionError):
        render_wrapper(run.spec(additions=(("BAD-NAME", "x"),)))


def test_wrapper_file_is_new_and_mode_0700(run):
    path = write_wrapper(run.spec(), run.base / "w.sh")
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    with pytest.raises(WorkdirError, match="already exists"):
        write_wrapper(run.spec(), path)


def test_wrapper_is_not_written_through_a_symlink(run):
    target = run.base / "elsewhere"
    link = run.base / "link.sh"
    link.symlink_to(target)
    with pytest.raises(WorkdirError):
        write_wrapper(run.spec(), link)
    assert not target.exists()


# --- running the wrapper ------------------------------------------------------------------

def test_payload_gets_its_argv_environment_directory_and_umask(run):
    result = run.run(run.spec(args=["a b", "it's"], env={"SITE_VAR": "x"}, umask=0o027,
                              additions=(("ADDED", "y"),)))
    assert result.returncode == 0, result.stderr
    seen = run.seen()
    assert seen["argv"] == [b"a b", b"it's"]
    assert seen["env"][b"SITE_VAR"] == b"x"
    assert seen["env"][b"ADDED"] == b"y"
    assert seen["env"][b"X509_USER_PROXY"] == os.fsencode(run.proxy)
    assert seen["cwd"] == str(run.work)
    assert seen["umask"] == 0o027
    assert seen["stdin"] == ""


def test_marker_records_uid_then_status(run):
    run.run(run.spec())
    assert re.fullmatch(f"uid={os.geteuid()}\negg=[0-9a-f]{{32}}\nstatus=0\n", run.marker_text())
    assert without_egg(read_marker(run.marker)) == WrapperMarker(os.geteuid(), 0)


@pytest.mark.parametrize("code", [1, 3, 42, 201, 255])
def test_payload_exit_status_is_passed_through(run, code):
    result = run.run(run.spec(env={"DUMP_EXIT": str(code)}))
    assert result.returncode == code
    marker = read_marker(run.marker)
    assert marker.payload_status == code
    assert marker.signal is None or code > 128


def test_missing_program_reports_127_as_the_payload_status(run):
    result = run.run(run.spec(argv=[str(run.base / "no-such-program")]))
    assert result.returncode == 127
    assert read_marker(run.marker).payload_status == 127


@pytest.mark.parametrize("variable", ["LD_PRELOAD", "LD_AUDIT", "GCONV_PATH"])
def test_loader_variable_pointing_nowhere_does_not_reach_the_payload(run, variable):
    result = run.run(run.spec(env={variable: "/nonexistent.so"}))
    assert result.returncode == 0
    assert variable.encode() not in run.seen()["env"]
    assert b"nonexistent" not in result.stderr


def test_pilot_credentials_and_identity_do_not_reach_the_payload(run):
    env = {"X509_USER_PROXY": "/pilot/proxy", "BEARER_TOKEN": "t", "PANDA_AUTH_TOKEN": "t",
           "HOME": "/pilot/home", "USER": "pilot", "ATLAS_USER_AREA": "kept"}
    run.run(run.spec(env=env))
    seen = run.seen()["env"]
    assert seen[b"X509_USER_PROXY"] == os.fsencode(run.proxy)
    assert b"BEARER_TOKEN" not in seen and b"PANDA_AUTH_TOKEN" not in seen
    assert seen.get(b"HOME") != b"/pilot/home" and seen.get(b"USER") != b"pilot"
    assert seen[b"ATLAS_USER_AREA"] == b"kept"


# Issue 13 item 5: each of these reached the payload with the pilot's value.
PILOT_ONLY = {
    "MY_TOKEN": "t", "ACCESS_TOKEN": "t", "GITHUB_TOKEN": "t", "AWS_SECRET_ACCESS_KEY": "k",
    "DB_PASSWORD": "p", "PGPASSWORD": "p", "RUCIO_AUTH_TOKEN": "t", "SCITOKEN": "t",
    "PANDA_SERVER_TOKEN": "t", "MYPROXY_SERVER_PWD": "p",
    "HTTPS_PROXY": "http://pilot:secret@squid:3128", "X509_PROXY_FILE": "/pilot/proxy",
    "_CONDOR_CREDS": "/pilot/creds", "LD_LIBRARY_PATH": "/pilot/lib",
    "PYTHONPATH": "/pilot/py", "PERL5OPT": "-Mpilot", "NODE_OPTIONS": "--require /pilot/x.js",
    "JAVA_TOOL_OPTIONS": "-javaagent:/pilot/a.jar", "PYTHONSTARTUP": "/pilot/start.py",
    "TMPDIR": "/home/pilot/tmp",
}


def test_pilot_variables_the_queue_does_not_name_do_not_reach_the_payload(run):
    run.run(run.spec(env=PILOT_ONLY, env_pass=()))
    seen = run.seen()["env"]
    assert sorted(n for n in PILOT_ONLY if n.encode() in seen) == []


def test_payload_path_has_no_dot_nor_empty_entries(run):
    run.run(run.spec(env={"PATH": ".:/usr/local/bin::/usr/bin:/bin:"}, env_pass=()))
    assert run.seen()["env"][b"PATH"] == b"/usr/local/bin:/usr/bin:/bin"


def test_denied_addition_is_dropped_with_a_warning(run, caplog):
    run.run(run.spec(additions=(("LD_PRELOAD", "/x.so"), ("OK_VAR", "1"))))
    seen = run.seen()["env"]
    assert b"LD_PRELOAD" not in seen and seen[b"OK_VAR"] == b"1"
    assert "LD_PRELOAD" in caplog.text


def test_queue_deny_list_applies(run):
    run.run(run.spec(env={"SITE_SECRET": "x", "SITE_OK": "y"}, extra_deny=("SITE_SECRET",)))
    seen = run.seen()["env"]
    assert b"SITE_SECRET" not in seen and seen[b"SITE_OK"] == b"y"


# Values that would run something if any layer re-parsed them.
def tricky(canary: Path) -> list:
    c = str(canary)
    return [f"$(touch {c})", f"`touch {c}`", f"; touch {c}", f"| touch {c}", f"&& touch {c}",
            f"'; touch {c}; '", f"\"; touch {c}; \"", f"\ntouch {c}\n", f"$'\\n'; touch {c}",
            "%s%n%x", "caf\u00e9 \u20ac \U0001f600", "\\", "${IFS}", "*", "~", "!!"]


def test_tricky_values_arrive_verbatim_and_run_nothing(run):
    values = tricky(run.canary)
    env = {f"T_{i}": v for i, v in enumerate(values)}
    result = run.run(run.spec(args=values, env=env))
    assert result.returncode == 0, result.stderr
    seen = run.seen()
    assert seen["argv"] == [v.encode() for v in values]
    for name, value in env.items():
        assert seen["env"][name.encode()] == value.encode()
    assert not run.canary.exists()


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                max_size=40)
_raw = st.binary(max_size=40).filter(lambda b: b"\0" not in b).map(
    lambda b: b.decode("utf-8", "surrogateescape"))
_value = st.one_of(_text, _raw, st.sampled_from(["$(", "`", ";", "|", "\n", "'", '"', "%",
                                                  "$(touch CANARY)", "`touch CANARY`"]))
_values = st.lists(st.one_of(_value, st.lists(_value, max_size=6).map("".join)), max_size=6)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(args=["x" * 100_000], values=["y" * 100_000, "\u00e9" * 20_000])
@example(args=["$(touch CANARY)", "`touch CANARY`", "a;touch CANARY", "a|touch CANARY"],
         values=["\n$(touch CANARY)\n", "'\"'\"'", "100%d", "\u00fc\u00f1\u00ee"])
@given(args=_values, values=_values)
def test_any_argv_and_environment_reach_the_payload_byte_for_byte(args, values):
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        run = Run(base)
        env = {f"PT_{i}": v for i, v in enumerate(values)}
        cwd_canary = run.work / "CANARY"
        result = run.run(run.spec(args=args, env=env))
        assert result.returncode == 0, result.stderr
        seen = run.seen()
        assert seen["argv"] == [os.fsencode(a) for a in args]
        for name, value in env.items():
            assert seen["env"][name.encode()] == os.fsencode(value)
        assert not cwd_canary.exists() and not (base / "CANARY").exists()
        assert os.listdir(run.eggs) == []


# --- egg cache ----------------------------------------------------------------------------

def test_egg_cache_is_fresh_private_and_removed_after_success(run):
    run.run(run.spec())
    seen = run.seen()
    egg = Path(os.fsdecode(seen["env"][b"PYTHON_EGG_CACHE"]))
    assert egg.parent == run.eggs and egg.name.startswith(EGG_CACHE_PREFIX)
    assert len(egg.name) == len(EGG_CACHE_PREFIX) + 32
    assert seen["egg_mode"] == 0o700
    assert not egg.exists()


def test_egg_cache_is_made_and_removed_by_programs_where_bash_has_no_loadables(
        run, monkeypatch):
    monkeypatch.setattr(wrapper, "LOADABLE_DIRS", ())
    script = render_wrapper(run.spec())
    assert "_pilotid_loadables=()" in script
    run.run(run.spec())
    assert run.seen()["egg_mode"] == 0o700
    assert os.listdir(run.eggs) == []


def test_loadables_are_only_root_files_nobody_else_may_write(tmp_path, monkeypatch):
    """The shared object runs inside the wrapper as the target: a file of anybody else's,
    or one others may replace, is never loaded."""
    writable = tmp_path / "writable"
    foreign = tmp_path / "foreign"
    for directory in (writable, foreign):
        directory.mkdir()
        for name in wrapper.LOADABLE_BUILTINS:
            (directory / name).write_bytes(b"\x7fELF")
            (directory / name).chmod(0o644)
    writable.chmod(0o777)
    if os.geteuid() == 0:
        os.chown(foreign / "mkdir", 65534, 65534)
        os.chown(foreign / "rm", 0, 0)
        (foreign / "rm").chmod(0o664)
        os.chown(foreign / "stat", 0, 0)
        (foreign / "stat").chmod(0o646)
    monkeypatch.setattr(wrapper, "LOADABLE_DIRS", (writable, foreign))
    assert wrapper.bash_loadables() == ()


def test_egg_cache_names_differ_between_runs(run, tmp_path):
    names = set()
    for i in range(3):
        base = tmp_path / f"r{i}"
        base.mkdir()
        r = Run(base)
        r.run(r.spec(egg_cache_base=run.eggs))
        names.add(r.seen()["env"][b"PYTHON_EGG_CACHE"])
    assert len(names) == 3


def test_egg_cache_is_removed_after_failure(run):
    result = run.run(run.spec(env={"DUMP_EXIT": "3"}))
    assert result.returncode == 3
    assert os.listdir(run.eggs) == []


def test_egg_cache_is_not_under_tmpdir(run):
    other = run.base / "tmpdir"
    other.mkdir()
    run.run(run.spec(env={"TMPDIR": str(other)}))
    assert os.fsdecode(run.seen()["env"][b"PYTHON_EGG_CACHE"]).startswith(str(run.eggs))
    assert run.seen()["env"][b"TMPDIR"] == os.fsencode(other)


@pytest.mark.parametrize("make_base", ["missing", "file"])
def test_egg_cache_that_cannot_be_made_stops_the_wrapper(run, make_base):
    """The branch a pre-existing egg cache takes (``mkdir`` without ``-p`` fails): the
    wrapper stops, the payload never runs."""
    base = run.base / "egg-base"
    if make_base == "file":
        base.write_text("not a directory")
    result = run.run(run.spec(egg_cache_base=base))
    assert result.returncode == WRAPPER_FAILURE_STATUS
    assert b"egg cache" in result.stderr and b"never reused" in result.stderr
    assert without_egg(read_marker(run.marker)) == WrapperMarker(os.geteuid(), error="egg-cache")
    assert not run.dump.exists()


# --- signals ------------------------------------------------------------------------------

def test_sigterm_reaches_the_payload_and_its_status_is_reported(run):
    ready = run.base / "ready"
    payload = ["/bin/bash", "-c", f"trap 'echo term > {run.base}/got; exit 7' TERM; "
               f"echo \"$PYTHON_EGG_CACHE\" > {run.base}/egg; touch {ready}; "
               "sleep 30 & wait"]
    process = run.start(run.spec(argv=payload))
    wait_for(ready)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 7
    assert (run.base / "got").read_text() == "term\n"
    assert without_egg(read_marker(run.marker)) == WrapperMarker(os.geteuid(), 7)
    assert os.listdir(run.eggs) == []


def test_payload_killed_by_sigterm_is_reported_as_that_signal(run):
    ready = run.base / "ready"
    payload = [sys.executable, "-c", f"import time; open({str(ready)!r}, 'w').close(); "
               "time.sleep(30)"]
    process = run.start(run.spec(argv=payload))
    wait_for(ready)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 128 + signal.SIGTERM
    assert re.fullmatch(f"uid={os.geteuid()}\negg=[0-9a-f]{{32}}\nstatus=143\nsignal=15\n",
                        run.marker_text())
    assert without_egg(read_marker(run.marker)) == WrapperMarker(os.geteuid(), 143, signal=15)
    assert os.listdir(run.eggs) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_sigint_and_sighup_are_forwarded(run, signum):
    name = signal.Signals(signum).name[3:]
    ready = run.base / "ready"
    payload = ["/bin/bash", "-c", f"trap 'echo {name} > {run.base}/got; exit 5' {name}; "
               f"touch {ready}; sleep 30 & wait"]
    process = run.start(run.spec(argv=payload))
    wait_for(ready)
    process.send_signal(signum)
    assert process.wait(timeout=20) == 5
    assert (run.base / "got").read_text() == f"{name}\n"


def test_signal_reaches_the_payloads_whole_process_group(run):
    ready = run.base / "ready"
    # the child says it is ready once its trap is set: a signal before that is no test
    child = (f"trap 'echo child > {run.base}/child-got; exit 0' TERM; touch {ready}; "
             "sleep 30 & wait")
    payload = ["/bin/bash", "-c", f"/bin/bash -c \"{child}\" & wait"]
    process = run.start(run.spec(argv=payload))
    wait_for(ready)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)
    wait_for(run.base / "child-got")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != b"Z"


def test_processes_the_payload_left_in_its_group_end_with_it(run):
    pidfile = run.base / "straggler"
    payload = ["/bin/bash", "-c", f"sleep 300 </dev/null >/dev/null 2>&1 & echo $! > {pidfile}"]
    done = run.run(run.spec(argv=payload))
    assert done.returncode == 0, done.stderr
    straggler = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(straggler) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(straggler), "the payload's background child outlived the wrapper"
    assert without_egg(read_marker(run.marker)) == WrapperMarker(os.geteuid(), 0)


def test_signal_reaching_wrapper_and_payload_at_once_leaves_a_valid_marker(tmp_path):
    """A batch system signals every process of the job: the payload may end while the
    wrapper's trap runs, when bash 5.2 can lose its status (``wait`` answers -1)."""
    for attempt in range(12):
        (tmp_path / str(attempt)).mkdir()
        run = Run(tmp_path / str(attempt))
        ready = run.base / "ready"
        payload = ["/bin/bash", "-c",
                   f"trap 'exit 7' TERM; echo $$ > {ready}.tmp; mv {ready}.tmp {ready}; "
                   "sleep 30 & wait"]
        process = run.start(run.spec(argv=payload))
        wait_for(ready)
        payload_group = int(ready.read_text())
        os.killpg(payload_group, signal.SIGTERM)  # alive until this: no lookup error
        os.kill(process.pid, signal.SIGTERM)  # our child: at worst a zombie
        status = process.wait(timeout=20)
        marker = read_marker(run.marker)
        assert marker is not None, f"attempt {attempt}: marker {run.marker_text()!r}"
        assert marker.payload_status in (7, 143) and status == marker.payload_status


def test_sigterm_during_setup_stops_before_the_payload_and_cleans_up(run):
    ready = run.base / "ready"
    process = run.start(run.spec(setup=(f"touch {ready}; sleep 1",)))
    wait_for(ready)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 143
    assert without_egg(read_marker(run.marker)) == \
        WrapperMarker(os.geteuid(), signal=15, error="interrupted")
    assert not run.dump.exists()
    assert os.listdir(run.eggs) == []


# --- marker, proxy hand-over, work directory ----------------------------------------------

def test_existing_marker_makes_the_wrapper_fail_loudly(run):
    run.marker.write_text("uid=0\nstatus=0\n")
    result = run.run(run.spec())
    assert result.returncode == WRAPPER_FAILURE_STATUS
    assert b"cannot create the marker" in result.stderr
    assert run.marker_text() == "uid=0\nstatus=0\n"
    assert not run.dump.exists()


def test_marker_symlink_is_not_followed(run):
    target = run.base / "target"
    run.marker.symlink_to(target)
    result = run.run(run.spec())
    assert result.returncode == WRAPPER_FAILURE_STATUS
    assert not target.exists()


def test_proxy_from_stdin_becomes_a_private_file_and_stdin_is_closed(run):
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    result = run.run(run.spec(from_stdin=True), stdin=pem)
    assert result.returncode == 0, result.stderr
    assert run.proxy.read_bytes() == pem
    assert stat.S_IMODE(run.proxy.stat().st_mode) == 0o600
    seen = run.seen()
    assert seen["env"][b"X509_USER_PROXY"] == os.fsencode(run.proxy)
    assert seen["stdin"] == ""


def test_proxy_from_stdin_is_never_stored_directly_in_the_work_directory(run):
    """There the work directory's default ACL would name the pilot on the user's copy."""
    spec = run.spec(from_stdin=True)
    spec = replace(spec, handover=ProxyHandover(run.work / "payload-proxy", True))
    with pytest.raises(ValueError, match="handover directory"):
        render_wrapper(spec)


def test_existing_payload_proxy_is_never_overwritten(run):
    run.proxy.write_text("planted")
    result = run.run(run.spec(from_stdin=True), stdin=b"PEM")
    assert result.returncode == WRAPPER_FAILURE_STATUS
    assert run.proxy.read_text() == "planted"
    assert read_marker(run.marker).error == "proxy"
    assert not run.dump.exists()


def test_empty_stdin_is_no_proxy(run):
    result = run.run(run.spec(from_stdin=True), stdin=b"")
    assert result.returncode == WRAPPER_FAILURE_STATUS
    assert b"no proxy arrived" in result.stderr


def test_missing_work_directory_stops_the_wrapper(run):
    spec = run.spec()
    run.work.rename(run.base / "gone")
    run.marker = run.base / "gone" / "marker"
    spec = WrapperSpec(command=spec.command, workdir=run.work, handover=spec.handover,
                       marker=run.marker, environment=spec.environment,
                       egg_cache_base=spec.egg_cache_base)
    result = run.run(spec)
    assert result.returncode == WRAPPER_FAILURE_STATUS
    assert b"cannot enter the work directory" in result.stderr
    assert read_marker(run.marker).error == "workdir"


# --- site setup lines ---------------------------------------------------------------------

def test_setup_lines_run_in_the_wrapper_shell_before_the_payload(run):
    run.run(run.spec(setup=("export FROM_SETUP='set up'", "FROM_SETUP2=$FROM_SETUP; "
                            "export FROM_SETUP2")))
    seen = run.seen()["env"]
    assert seen[b"FROM_SETUP"] == b"set up" and seen[b"FROM_SETUP2"] == b"set up"


def test_setup_cannot_move_the_payload_change_its_umask_or_its_proxy(run):
    result = run.run(run.spec(setup=("cd /", "umask 0077", "export X509_USER_PROXY=/other",
                                     "export PYTHON_EGG_CACHE=/other", "set -e -o pipefail"),
                              env={"DUMP_EXIT": "4"}))
    assert result.returncode == 4
    seen = run.seen()
    assert seen["cwd"] == str(run.work) and seen["umask"] == 0o022
    assert seen["env"][b"X509_USER_PROXY"] == os.fsencode(run.proxy)
    assert os.fsdecode(seen["env"][b"PYTHON_EGG_CACHE"]).startswith(str(run.eggs))
    assert read_marker(run.marker).payload_status == 4


def test_setup_functions_and_aliases_do_not_replace_the_wrappers_commands(run):
    setup = ("wait() { return 0; }; kill() { return 0; }; printf() { :; }; exit() { :; }; "
             "cd() { :; }; umask() { :; }", "shopt -s expand_aliases; alias builtin=false")
    result = run.run(run.spec(setup=setup, env={"DUMP_EXIT": "6"}))
    assert result.returncode == 6
    assert without_egg(read_marker(run.marker)) == WrapperMarker(os.geteuid(), 6)
    assert run.seen()["cwd"] == str(run.work)


def test_failing_setup_line_stops_the_wrapper(run):
    result = run.run(run.spec(setup=("true", "false")))
    assert result.returncode == WRAPPER_FAILURE_STATUS
    assert b"site setup line 2 failed with status 1" in result.stderr
    assert read_marker(run.marker).error == "setup"
    assert not run.dump.exists()
    assert os.listdir(run.eggs) == []


def test_setup_line_that_exits_is_recorded_as_a_setup_failure(run):
    result = run.run(run.spec(setup=("exit 3",)))
    assert result.returncode == 3
    assert without_egg(read_marker(run.marker)) == WrapperMarker(os.geteuid(), error="setup")
    assert os.listdir(run.eggs) == []


def test_setup_line_with_a_syntax_error_is_a_setup_failure(run):
    result = run.run(run.spec(setup=("if then fi (",)))
    assert result.returncode == WRAPPER_FAILURE_STATUS
    assert read_marker(run.marker).error == "setup"


def test_what_the_payload_left_in_its_group_ends_with_it(run):
    leftover = run.base / "leftover.pid"
    child = "( trap '' TERM; exec sleep 60 ) >/dev/null 2>&1"
    payload = ["/bin/bash", "-c", f"{child} & echo $! > {leftover}"]
    run.run(run.spec(argv=payload))
    pid = int(leftover.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid), "the payload's background child outlived the wrapper"
    assert "status=0" in run.marker_text()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --- the bearer token from stdin (issue 15) -------------------------------------------------

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _with_token(run: Run, spec: WrapperSpec, carries_proxy: bool = True) -> WrapperSpec:
    return replace(spec, handover=ProxyHandover(
        run.proxy, True, payload_token=run.proxy.parent / "bt", carries_proxy=carries_proxy))


def test_proxy_and_token_from_stdin_become_two_private_files(run):
    result = run.run(_with_token(run, run.spec(from_stdin=True)), stdin=PEM + b"\0tok.en.x")
    assert result.returncode == 0, result.stderr
    token = run.proxy.parent / "bt"
    assert run.proxy.read_bytes() == PEM and token.read_bytes() == b"tok.en.x\n"
    assert {stat.S_IMODE(p.stat().st_mode) for p in (run.proxy, token)} == {0o600}
    seen = run.seen()
    assert seen["env"][b"X509_USER_PROXY"] == os.fsencode(run.proxy)
    assert seen["env"][b"BEARER_TOKEN_FILE"] == os.fsencode(token)
    assert b"BEARER_TOKEN" not in seen["env"] and seen["stdin"] == ""


def test_a_token_only_job_gets_no_proxy_variable(run):
    spec = _with_token(run, run.spec(from_stdin=True, env={"BEARER_TOKEN": "pilots-own"}),
                       carries_proxy=False)
    result = run.run(spec, stdin=b"tok.en.x")
    assert result.returncode == 0, result.stderr
    seen = run.seen()
    assert b"X509_USER_PROXY" not in seen["env"] and b"BEARER_TOKEN" not in seen["env"]
    assert seen["env"][b"BEARER_TOKEN_FILE"] == os.fsencode(run.proxy.parent / "bt")
    assert not run.proxy.exists()


@pytest.fixture(params=["loadable", "program"])
def copy_stat(request, monkeypatch) -> str:
    """How the wrapper reads a copy's device and inode: bash's loadable ``stat`` (skipped
    where the node has none), or the program where no loadable is trusted."""
    if request.param == "program":
        monkeypatch.setattr(wrapper, "LOADABLE_DIRS", ())
    elif not any(Path(p).name == "stat" for p in wrapper.bash_loadables()):
        pytest.skip("no trusted loadable stat on this node (Debian: bash-builtins)")
    return request.param


def test_marker_notes_the_device_and_inode_of_both_copies(run, copy_stat):
    """The pilot finds the copies the payload renamed by these."""
    result = run.run(_with_token(run, run.spec(from_stdin=True)), stdin=PEM + b"\0tok.en.x")
    assert result.returncode == 0, result.stderr
    copies = (os.lstat(run.proxy), os.lstat(run.proxy.parent / "bt"))
    assert read_marker(run.marker).copies == tuple((c.st_dev, c.st_ino) for c in copies)


def test_a_copy_is_identified_as_lstat_sees_it_never_through_a_symlink(run, copy_stat):
    """As the program ``stat`` without ``-L``: the loadable's own ``-L`` means lstat."""
    script = render_wrapper(_with_token(run, run.spec(from_stdin=True)))
    functions = script[:script.index("_pilotid_reap() {")]
    target, link = run.base / "target", run.base / "link"
    target.write_text("x")
    link.symlink_to(target)
    done = subprocess.run(["bash", "-c", functions + '_pilotid_identify "$1" && '
                           'builtin printf %s "$_pilotid_copy"', "identify", str(link)],
                          capture_output=True, text=True, check=True)
    assert done.stdout == f"{os.lstat(link).st_dev}:{os.lstat(link).st_ino}"


def test_no_token_on_stdin_stops_before_the_payload(run):
    spec = _with_token(run, run.spec(from_stdin=True), carries_proxy=False)
    result = run.run(spec, stdin=b"")
    assert result.returncode == WRAPPER_FAILURE_STATUS
    assert read_marker(run.marker).error == "token"
    assert not run.dump.exists()
