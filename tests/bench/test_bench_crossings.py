"""The fast-path comparison in quick mode: each path really ran in its own child, every
measure reported with its ratio (structure only: no figure is asserted)."""

from __future__ import annotations

import pytest

from vino.bench import crossings
from vino.graft import fastpath


@pytest.mark.skipif(fastpath.native() is None,
                    reason=f"no native fast path: {fastpath.PART.reason}")
def test_quick_crossings_measure_every_path_in_its_own_child() -> None:
    r = crossings.run(1, child_rounds=1, batch_s=0.0005, thread_run_s=0.005, samples=False)
    # _child refuses a child that ran another path, so each was really measured.
    assert set(r["figures"]) == set(crossings.MEASURES)
    for name, f in r["figures"].items():
        ratios = (f["native_over_ctypes"], f["native_over_crossings"])
        if name == "callable_us":  # a difference of two quick figures: it may come out 0
            assert all(f[p] >= 0 for p in crossings.PATHS)
            assert all(x is None or x >= 0 for x in ratios)
        else:
            assert all(f[p] > 0 for p in crossings.PATHS) and all(x > 0 for x in ratios)
    text = crossings.render(r)
    assert all(label in text for label in crossings.LABELS.values())
