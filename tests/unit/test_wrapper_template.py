"""The wrapper's template (``pilotid/payloads/wrapper.sh``) renders the very script pilotid
wrote before the bash moved out of Python strings, byte for byte.

The golden files in ``tests/data/wrapper/`` were written by the renderer that built the
script from Python strings, for the specs below; the template must reproduce them.  They
are rewritten, reviewed line by line, where the wrapper changes on purpose (the marker's
``egg=`` line; ``world.sh``: the wrapper's own directory in world mode).
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Dict

import pytest

from pilotid.payloads import wrapper
from pilotid.payloads.job import PayloadCommand
from pilotid.payloads.wrapper import WrapperSpec, render_wrapper
from pilotid.values import ProxyHandover

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "wrapper"
LOADABLES = ("/usr/lib/bash/mkdir", "/usr/lib/bash/rm", "/usr/lib/bash/stat")

SPECS: Dict[str, WrapperSpec] = {
    # No switch: no environment, no setup, the proxy a file, no reaper, no loadables.
    "bare": WrapperSpec(
        command=PayloadCommand(argv=("/bin/true",)),
        workdir=Path("/srv/pilot/work"),
        handover=ProxyHandover(Path("/srv/pilot/work/x509up_u1000")),
        marker=Path("/srv/pilot/work/.pilotid-marker"),
        environment=(),
    ),
    # sudo-like: the proxy on standard input, a reaper, setup lines, awkward values.
    "sudo": WrapperSpec(
        command=PayloadCommand(
            argv=("/usr/bin/python3", "runAthena", "--inputs='a b'", "caf\u00e9", "$HOME"),
            environment=(("ATHENA_PROC_NUMBER", "8"), ("QUOTED", "it's \"here\"\nnext")),
            setup=("source /cvmfs/atlas.cern.ch/setup.sh", "export X=1; alias ls=false"),
        ),
        workdir=Path("/srv/pilot/work dir"),
        handover=ProxyHandover(Path("/srv/pilot/work dir/.handover-1f/x509up"),
                               from_stdin=True),
        marker=Path("/srv/pilot/work dir/.marker"),
        environment=(("PATH", "/usr/bin:/bin"), ("LANG", "C.UTF-8"),
                     ("LD_PRELOAD", "/evil.so"), ("X509_USER_PROXY", "/tmp/x509up_u0"),
                     ("SITE_NOTE", "\udcff bytes"), ("SECRET_TOKEN", "s3cr3t")),
        umask=0o077,
        egg_cache_base=Path("/var/tmp"),
        extra_deny=("SECRET_*",), extra_pass=("SITE_*", "SECRET_*"),
        reaper_pid=4242, strip_leftover_modes=True,
    ),
    # gLExec-like: the proxy a file, a reaper, no setup, the queue's umask.
    "glexec": WrapperSpec(
        command=PayloadCommand(argv=("./buildJob", "-l", "out.tgz"),
                               environment=(("PANDA_SITE", "ANALY_TEST"),)),
        workdir=Path("/pool/job-7"),
        handover=ProxyHandover(Path("/pool/job-7/user.proxy")),
        marker=Path("/pool/job-7/.marker"),
        environment=(("HOME", "/home/pilot"), ("TMPDIR", "/pool/tmp")),
        umask=0o022,
        reaper_pid=77, strip_leftover_modes=True,
    ),
    # sudo in world mode: the marker and the proxy in the wrapper's own directory.
    "world": WrapperSpec(
        command=PayloadCommand(argv=("./runGen", "--seed=1")),
        workdir=Path("/scratch/job-9"),
        handover=ProxyHandover(Path("/scratch/job-9/.pilotid-proxy-1002-ab/x509up"),
                               from_stdin=True),
        marker=Path("/scratch/job-9/.pilotid-marker-9-ab"),
        environment=(("PATH", "/usr/bin:/bin"),),
        umask=0,
        reaper_pid=99, strip_leftover_modes=True,
        target_directory=Path("/scratch/job-9/.pilotid-target-9-ab-"),
    ),
}


@pytest.fixture(autouse=True)
def fixed_loadables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loadable builtins are the node's: fix them, as the golden files were written."""
    monkeypatch.setattr(wrapper, "bash_loadables", lambda: LOADABLES)
    monkeypatch.setattr(wrapper, "_max_signal", lambda: 64)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_template_renders_the_script_pilotid_wrote_before(name: str) -> None:
    assert render_wrapper(SPECS[name]) == (GOLDEN / f"{name}.sh").read_text("ascii")


@pytest.mark.parametrize("name", sorted(SPECS))
def test_rendered_script_is_valid_bash(name: str, tmp_path: Path) -> None:
    script = tmp_path / "wrapper.sh"
    script.write_text(render_wrapper(SPECS[name]), "ascii")
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_a_value_that_looks_like_a_placeholder_is_written_as_it_is() -> None:
    """One pass: what a value holds is never searched for placeholders."""
    spec = replace(SPECS["bare"], marker=Path("/srv/__PROXY__/__ARGV__/@REAPER@"),
                   environment=(("NOTE", "__WORKDIR__"),), extra_pass=("NOTE",))
    script = render_wrapper(spec)
    assert "_pilotid_marker=/srv/__PROXY__/__ARGV__/@REAPER@\n" in script
    assert "builtin export NOTE=__WORKDIR__\n" in script


@pytest.mark.parametrize("name", sorted(SPECS))
def test_no_template_line_or_placeholder_reaches_the_script(name: str) -> None:
    script = render_wrapper(SPECS[name])
    assert not [line for line in script.splitlines() if line.startswith("#@")]
    assert not wrapper._PLACEHOLDER.search(script)


def test_only_a_switched_wrapper_walks_the_work_directory_for_leftover_modes() -> None:
    """Stripping setuid and world-write needs the target's rights and a walk of the tree:
    done where the wrapper runs as another account, never paid for by a job without one."""
    assert "find -P" in render_wrapper(SPECS["sudo"])
    assert "find -P" not in render_wrapper(SPECS["bare"])


def test_the_template_is_package_data_of_pilotid_payloads() -> None:
    """setup.py ships it; a non-editable install reads it from the installed package."""
    assert (Path(wrapper.__file__).parent / "wrapper.sh").is_file()
    assert '"wrapper.sh"' in (GOLDEN.parent.parent.parent / "setup.py").read_text()


def write_golden() -> None:
    """Write the golden files from the current renderer (run by hand, reviewed in git)."""
    wrapper.bash_loadables = lambda: LOADABLES  # type: ignore[assignment]
    wrapper._max_signal = lambda: 64  # type: ignore[assignment]
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name, spec in SPECS.items():
        (GOLDEN / f"{name}.sh").write_text(render_wrapper(spec), "ascii")


if __name__ == "__main__":
    write_golden()


def test_in_world_mode_a_proxy_the_switch_copies_stays_where_the_switch_put_it() -> None:
    """gLExec writes the target's proxy copy itself: in world mode the wrapper keeps
    X509_USER_PROXY on that copy, not on a file in its own directory nobody writes; a proxy
    on standard input (sudo) goes to the wrapper's own directory."""
    glexec_world = replace(SPECS["glexec"],
                           target_directory=Path("/pool/job-7/.pilotid-target-7-ab-"))
    script = render_wrapper(glexec_world)
    assert "_pilotid_proxy=/pool/job-7/user.proxy\n" in script
    assert "_pilotid_proxy=$_pilotid_own/x509up" not in script
    assert 'X509_USER_PROXY="$_pilotid_proxy"' in script
    assert "_pilotid_proxy=$_pilotid_own/x509up\n" in render_wrapper(SPECS["world"])
