"""Two running hubs with one SECMON_HUB_NAME: each would disconnect the other's nodes, so one stops."""

from __future__ import annotations

from conftest import WAIT, Hub


def test_a_second_hub_with_a_hub_s_name_makes_it_stop_with_one_line(hub_group):
    first = hub_group.start_hub("a")
    twin = Hub({**hub_group.env, "SECMON_SOCKET": str(hub_group.workdir / "twin.sock"), "SECMON_HUB_NAME": "a"})
    hub_group.daemons.append(twin)
    # the first to hear the other stops (here the first, at the twin's start): the other goes on alone
    first.wait_for(r"another hub runs with this hub's name 'a'")
    assert first.process.wait(WAIT) == 2
    assert twin.process.poll() is None
