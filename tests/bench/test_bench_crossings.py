"""The fast-path comparison in quick mode: each path really ran in its own child, every
measure reported with its ratio (structure only: no figure is asserted)."""

from __future__ import annotations

import pytest

from vino.bench import crossings
from vino.graft import fastpath


@pytest.mark.skipif(fastpath.native() is None,
                    reason=f"no native fast path: {fastpath.fallback_reason}")
def test_quick_crossings_measure_both_paths_in_their_own_children() -> None:
    r = crossings.run(1, child_rounds=1, batch_s=0.0005, thread_run_s=0.005)
    # _child refuses a child that ran the other path, so both were really measured.
    assert set(r["figures"]) == set(crossings.MEASURES)
    for name, f in r["figures"].items():
        if name == "callable_us":  # a difference of two quick figures: it may come out 0
            assert f["ctypes"] >= 0 and f["native"] >= 0
            assert f["native_over_ctypes"] is None or f["native_over_ctypes"] >= 0
        else:
            assert f["ctypes"] > 0 and f["native"] > 0 and f["native_over_ctypes"] > 0
    text = crossings.render(r)
    assert all(label in text for label in crossings.LABELS.values())
