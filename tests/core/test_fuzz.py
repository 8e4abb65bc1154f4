"""The mutation fuzzer runs in CI for a bounded number of cases, with fixed and fresh seeds."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzz"))

from fuzz_protocol import LIMIT, run


def test_fixed_seed_explores_both_outcomes():
    counts = run(cases=50_000, seed=1)
    assert counts["cases"] == 50_000
    assert counts["messages"] > 0 and counts["protocol_errors"] > 0  # the mutations reach both ends
    assert counts["max_buffered"] <= LIMIT + 4


def test_a_fresh_seed_each_run():
    """A failure names its seed, whatever fails: an assertion or exception inside the fuzzer too."""
    seed = random.randrange(2**32)
    replay = f"replay: python fuzz/fuzz_protocol.py --cases 50000 --seed {seed}"
    print(replay)  # pytest shows a failing test's output
    try:
        counts = run(cases=50_000, seed=seed)
        assert counts["cases"] == 50_000
        assert counts["max_buffered"] <= LIMIT + 4
    except BaseException as exc:
        exc.add_note(replay)
        raise
