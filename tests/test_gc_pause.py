"""The cyclic collector is paused only for the bulk post-processing phases and always comes back."""

from __future__ import annotations

import gc
import threading

import pytest
from medbench.harness.run.gc_pause import gc_paused, without_gc


@pytest.fixture(autouse=True)
def _collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_paused_inside_and_back_after_an_error():
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("a grader failed")
    assert gc.isenabled()  # a failed phase must not leave the process without its collector


def test_nested_phases_restore_only_at_the_outermost():
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner phase's end does not switch it back on under the outer one
    assert gc.isenabled()


def test_a_caller_that_disabled_the_collector_keeps_it_off():
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_overlapping_phases_in_two_threads():
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with gc_paused():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=other)
    t.start()
    inside.wait(5)
    with gc_paused():
        pass
    assert not gc.isenabled()  # the other thread's phase is still running
    release.set()
    t.join(5)
    assert gc.isenabled()


def test_the_bulk_phases_run_paused():
    from medbench.harness.cli.report import render_runs
    from medbench.harness.run.rundir import RunWriter
    from medbench.harness.run.runner import finalize
    from medbench.harness.run.sample_rows import rows_from_samples
    from medbench.harness.stats.metrics import compute_metrics

    wrapper_code = without_gc(lambda: None).__code__
    for fn in (rows_from_samples, finalize, compute_metrics, render_runs, RunWriter.write_pair,
               RunWriter.done_rows, RunWriter.write_samples):
        assert fn.__code__ is wrapper_code, f"{fn.__qualname__} is not wrapped in without_gc"

    seen = []
    without_gc(lambda: seen.append(gc.isenabled()))()
    assert seen == [False] and gc.isenabled()
