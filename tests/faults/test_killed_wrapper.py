"""Issue 16, item 8: a wrapper killed outright (SIGKILL to the wrapper itself, which no trap
sees) leaves no egg cache behind: the session removes it as the target after the job."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.security.scene import processes_with


def wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("switcher", ["sudo", "noop"])
def test_a_wrapper_killed_outright_leaves_no_egg_cache(scene, switcher):
    scene.transformation("runAthena", "#!/bin/bash\n"
                         "echo \"$PYTHON_EGG_CACHE\" > egg.txt.new && mv egg.txt.new egg.txt\n"
                         "exec sleep 60\n")
    job = scene.job()
    started = time.monotonic()
    grid_mapfile = None if switcher == "noop" else str(scene.mapfile)
    process, workdir, _ = scene.start(job, switcher=switcher, grid_mapfile=grid_mapfile)
    try:
        wait_for(workdir / "egg.txt")
        egg = Path((workdir / "egg.txt").read_text().strip())
        assert egg.is_dir()
        (wrapper,) = [line for line in processes_with(str(workdir))
                      if line.split()[2] in ("/bin/bash", "bash")]
        os.kill(int(wrapper.split()[0]), signal.SIGKILL)
        run = scene.finish(process, job, workdir, started, timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert run.result is not None, run.why()
    assert run.outcome != "succeeded", run.why()
    assert not os.path.lexists(egg), f"the egg cache {egg} was left behind: {run.why()}"
