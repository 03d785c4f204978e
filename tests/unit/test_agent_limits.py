"""The agent's child taking over the client's limits and nice value (``pilotid.agent.limits``).

The kernel's side is faked here (an unprivileged process's rules: a hard limit is never
raised, a nice value never lowered); ``tests/unit/test_agent.py`` checks the real limits
of a payload run through a real agent.
"""

from __future__ import annotations

import logging
import resource
from typing import Dict, Tuple

import pytest

from pilotid.agent import limits

INFINITY = resource.RLIM_INFINITY


class UnprivilegedKernel:
    """Resource limits and a nice value as the kernel keeps them for an unprivileged process."""

    def __init__(self, limits: Dict[int, Tuple[int, int]], nice: int) -> None:
        self.limits, self.nice = dict(limits), nice

    def getrlimit(self, limit: int) -> Tuple[int, int]:
        if limit not in self.limits:
            raise ValueError("invalid resource specified")
        return self.limits[limit]

    def setrlimit(self, limit: int, values: Tuple[int, int]) -> None:
        soft, hard = values
        own_hard = self.getrlimit(limit)[1]
        if not _at_most(hard, own_hard):
            raise ValueError("not allowed to raise maximum limit")
        if not _at_most(soft, hard):
            raise ValueError("current limit exceeds maximum limit")
        self.limits[limit] = values

    def getpriority(self, which: int, who: int) -> int:
        return self.nice

    def setpriority(self, which: int, who: int, nice: int) -> None:
        if nice < self.nice:
            raise PermissionError(13, "Permission denied")
        self.nice = nice


def _at_most(value: int, bound: int) -> bool:
    return bound == INFINITY or (value != INFINITY and value <= bound)


@pytest.fixture
def kernel(monkeypatch) -> UnprivilegedKernel:
    fake = UnprivilegedKernel({resource.RLIMIT_NOFILE: (1024, 4096),
                               resource.RLIMIT_CPU: (INFINITY, INFINITY)}, nice=5)
    monkeypatch.setattr(limits.resource, "getrlimit", fake.getrlimit)
    monkeypatch.setattr(limits.resource, "setrlimit", fake.setrlimit)
    monkeypatch.setattr(limits.os, "getpriority", fake.getpriority)
    monkeypatch.setattr(limits.os, "setpriority", fake.setpriority)
    return fake


def test_lower_limits_are_taken_over_exactly(kernel, caplog):
    wanted = {resource.RLIMIT_NOFILE: (100, 200), resource.RLIMIT_CPU: (60, 120)}
    limits.take_over_limits(wanted)
    assert kernel.limits == wanted
    assert caplog.records == []


def test_a_hard_limit_above_the_agents_keeps_the_agents_and_says_so(kernel, caplog):
    limits.take_over_limits({resource.RLIMIT_NOFILE: (2048, 8192)})
    assert kernel.limits[resource.RLIMIT_NOFILE] == (2048, 4096)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "RLIMIT_NOFILE (8192) is above the agent's (4096)" in record.getMessage()


def test_an_unlimited_client_soft_limit_is_brought_to_the_agents_hard_one(kernel, caplog):
    limits.take_over_limits({resource.RLIMIT_NOFILE: (INFINITY, INFINITY)})
    assert kernel.limits[resource.RLIMIT_NOFILE] == (4096, 4096)
    assert "(unlimited) is above the agent's (4096)" in caplog.records[0].getMessage()


def test_a_limit_this_platform_does_not_have_is_ignored_with_a_warning(kernel, caplog):
    limits.take_over_limits({99: (1, 1)})
    assert "resource limit 99 is not one of this platform's" in caplog.records[0].getMessage()


def test_a_higher_nice_value_is_taken_over(kernel, caplog):
    limits.take_over_nice(10)
    assert kernel.nice == 10
    assert caplog.records == []


def test_a_lower_nice_value_keeps_the_agents_and_says_so(kernel, caplog):
    limits.take_over_nice(0)
    assert kernel.nice == 5
    assert "nice value 0 is below the agent's (5)" in caplog.records[0].getMessage()


def test_every_limit_of_the_platform_has_its_name():
    names = limits.limit_names()
    assert names[resource.RLIMIT_NOFILE] == "RLIMIT_NOFILE"
    assert set(names) == {getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_")}


def test_the_client_sends_every_limit_of_the_platform():
    from pilotid.agent.client import _limits

    assert _limits() == {limit: resource.getrlimit(limit) for limit in limits.limit_names()}
