"""The bench's per-(checkpoint, task) progress line: an ETA a person can trust."""

from __future__ import annotations

import io

import pytest
from medbench.harness.run import progress as P


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _progress(monkeypatch: pytest.MonkeyPatch) -> tuple[P.PairProgress, Clock]:
    clock = Clock()
    monkeypatch.setattr(P.time, "monotonic", clock)
    return P.PairProgress(label="[1/3] base [1/1] medbench_pubmedqa", stream=io.StringIO()), clock


def test_no_eta_from_the_first_early_finisher_of_a_batch(monkeypatch):
    """Seen on the H200: a continuously batched task showed 'ETA 39m48s' after its first answer, at 19 s, and
    finished 2 s later. One request of 128 says nothing about the rest."""
    pr, clock = _progress(monkeypatch)
    pr.start(total=128)
    clock.now += 19
    pr.advance()
    assert pr.eta() is None
    assert pr.line().endswith("ETA ?")


def test_eta_extrapolates_once_enough_requests_finished(monkeypatch):
    pr, clock = _progress(monkeypatch)
    pr.start(total=100)
    clock.now += 10
    pr.set_done(25)
    assert pr.eta() == pytest.approx(30.0)  # 25 in 10 s: 75 left take 30 s
    assert "25/100 requests  25%" in pr.line() and pr.line().endswith("ETA 30s")


def test_cached_requests_are_left_out_of_the_rate_and_the_threshold(monkeypatch):
    pr, clock = _progress(monkeypatch)
    pr.start(total=200, cached=100)  # a resumed run: half from the cache, done at once
    clock.now += 10
    pr.set_done(104)  # 4 fresh of 100 fresh: under the 5% needed
    assert pr.eta() is None
    pr.set_done(110)
    assert pr.eta() == pytest.approx(90.0)  # 10 fresh in 10 s: 90 left take 90 s
