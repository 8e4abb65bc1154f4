"""`secmon status` on a hub alone: no cluster, said plainly, and null in JSON."""

from __future__ import annotations

import json


def test_a_hub_alone_says_it_is_in_no_cluster(cluster, hub):
    cluster.start_node("auth", hostname="solo")
    text = cluster.cli("status")
    assert text.returncode == 0, text.stderr
    assert "nodes connected to this hub: 1" in text.stdout
    assert "cluster: none" in text.stdout
    assert json.loads(cluster.cli("status", "--json").stdout) == {"nodes": 1, "cluster": None}
    listed = json.loads(cluster.cli("list", "--json").stdout)
    assert [n["hub"] for n in listed] == [""]
    assert "HUB" not in cluster.cli("list").stdout


def test_status_has_its_help_and_is_in_the_overview(cluster):
    helped = cluster.cli("status", "--help")
    assert helped.returncode == 0 and "usage: secmon status" in helped.stdout
    assert "secmon status" in cluster.cli("help").stdout
