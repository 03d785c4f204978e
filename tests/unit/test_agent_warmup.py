"""The agent's warm-up fills the per-process caches a first run fills, probing nothing."""

from __future__ import annotations

import subprocess

from pilotid.agent import warmup
from pilotid.identity import dn
from pilotid.payloads import wrapper


def test_the_warm_up_parses_the_template_and_a_throwaway_proxy():
    wrapper._template.cache_clear()
    dn._slash_dn.cache_clear()
    warmup.fill_caches()
    assert wrapper._template.cache_info().currsize == 1
    assert dn._slash_dn.cache_info().currsize >= 2  # the warm-up CA's name and its user's


def test_the_warm_up_runs_no_switch(monkeypatch):
    """The only command it starts is ``/bin/true``, as the agent itself: no sudo, no gLExec."""
    started = []
    real_run = subprocess.run

    def recording_run(argv, *args, **kwargs):
        started.append(list(argv))
        return real_run(argv, *args, **kwargs)
    monkeypatch.setattr(warmup.subprocess, "run", recording_run)
    warmup.fill_caches()
    assert started == [["/bin/true"]]
