"""The wrapper's egg cache is gone after the job on every path, failed ones included
(docs/wrapper.rst).  Each test runs the real wrapper with its egg cache base in a test
directory and looks at what is left there."""

from __future__ import annotations

import dataclasses
import os

from tests.unit.test_wrapper import Run, run  # noqa: F401 - the fixture


def test_wrapper_that_reaps_as_the_pilots_own_account_removes_its_egg_cache(run):  # noqa: F811
    """The wrapper runs as the pilot's uid (a probe that named another account, a switch
    that did not happen) and reaps the pilot's children of its uid: it is one of them, and
    must not kill itself before the clean-up."""
    spec = dataclasses.replace(run.spec(argv=["/bin/true"]), reaper_pid=os.getpid())
    done = run.run(spec)
    assert done.returncode == 0, done.stderr
    assert "status=0" in run.marker_text()
    assert list(run.eggs.iterdir()) == []
