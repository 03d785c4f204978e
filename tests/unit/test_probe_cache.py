"""ProbeCache: successful probe answers kept for a while, never failures."""

from __future__ import annotations

from pilotid.strategies.probecache import PILOT_PROBE_CACHE, ProbeCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_is_returned_until_it_is_max_age_old():
    clock = Clock()
    cache = ProbeCache(clock)
    cache.put("alice", "answer")
    clock.now += 59.9
    assert cache.get("alice", 60) == "answer"
    clock.now += 0.1
    assert cache.get("alice", 60) is None
    assert cache.get("alice") is None, "an expired answer is dropped, whatever is asked next"


def test_without_max_age_an_answer_is_kept_for_the_pilots_lifetime():
    clock = Clock()
    cache = ProbeCache(clock)
    cache.put("alice", "answer")
    clock.now += 10 ** 9
    assert cache.get("alice") == "answer"


def test_max_age_zero_never_answers():
    cache = ProbeCache(Clock())
    cache.put("alice", "answer")
    assert cache.get("alice", 0) is None


def test_forget_drops_one_answer_and_clear_all():
    cache = ProbeCache(Clock())
    cache.put("alice", 1)
    cache.put("bob", 2)
    cache.forget("alice")
    cache.forget("nobody")
    assert (cache.get("alice"), cache.get("bob")) == (None, 2)
    cache.clear()
    assert cache.get("bob") is None


def test_switchers_share_one_cache_per_pilot_process():
    assert isinstance(PILOT_PROBE_CACHE, ProbeCache)
