"""The parts of `make bench` that need no cluster, so that the bench does not rot between runs."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_bench_times_building_the_model_of_the_default_inventory():
    sys.path.insert(0, str(ROOT / "tests" / "bench"))
    import bench

    timings = bench.model_build_seconds(repeat=1)
    assert len(timings) == 1 and 0 < timings[0] < 1
