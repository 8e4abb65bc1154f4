"""HUB_ADDRS: reading the list of hubs, the order a node tries them in, and what `secmon check` says.

Plain function calls; the daemons moving between real hubs are in tests/e2e/test_failover.py.
"""

from __future__ import annotations

import errno

import pytest

from secmon.check import check_configuration, configuration_notes
from secmon.config import (
    MAX_HUB_ADDRS,
    HubAddress,
    NodeSettings,
    hub_addresses,
    ignored_hub_variables,
    parse_hub_addrs,
)
from secmon.errors import ConfigError
from secmon.node.reconnect import Backoff, HubRotation, describe_failure

# --- reading HUB_ADDRS --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "hubs"),
    [
        ("10.0.0.1:9992", [("10.0.0.1", 9992)]),
        ("a:1,b:2", [("a", 1), ("b", 2)]),
        (" hub-1.example.com:9992 , 10.0.0.2:65535 ", [("hub-1.example.com", 9992), ("10.0.0.2", 65535)]),
        ("Hub1.Example.COM.:9992", [("hub1.example.com.", 9992)]),
        ("[::1]:9992,[2001:DB8:0::7]:9993", [("::1", 9992), ("2001:db8::7", 9993)]),
        ("web_1:08", [("web_1", 8)]),
    ],
)
def test_hub_addrs_are_read_in_order_with_ipv6_in_brackets(raw, hubs):
    assert parse_hub_addrs(raw) == tuple(HubAddress(host, port) for host, port in hubs)


def test_an_address_is_named_as_it_is_written_to_be_dialled():
    assert [str(hub) for hub in parse_hub_addrs("[::1]:9992,a:1")] == ["[::1]:9992", "a:1"]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("a:1,,b:2", "item 2 of 3 is empty"),
        ("a:1,", "item 2 of 2 is empty"),
        (",a:1", "item 1 of 2 is empty"),
        ("a:1,hub2", "'hub2' has no port"),
        ("a:0", "'a:0' has no valid port"),
        ("a:65536", "'a:65536' has no valid port"),
        ("a:http", "'a:http' has no valid port"),
        ("a:", "'a:' has no valid port"),
        ("a:-1", "'a:-1' has no valid port"),
        ("a:１２", "'a:１２' has no valid port"),  # fullwidth digits: isdigit() alone would let them through
        (":9992", "':9992' has no host"),
        ("::1:9992", "'::1:9992' looks like an IPv6 address: put it in brackets"),
        ("[::1]", "'[::1]' has no port"),
        ("[::1]9992", "'[::1]9992' has no port"),
        ("[::1:9992", "'[::1:9992' has no closing bracket"),
        ("[10.0.0.1]:9992", "'[10.0.0.1]:9992' has no IPv6 address between its brackets"),
        ("bad host:1", "'bad host:1' has no valid host name"),
        ("-lead:1", "'-lead:1' has no valid host name"),
        ("a..b:1", "'a..b:1' has no valid host name"),
        ("a:1,b:2,A:1", "'A:1' is listed twice (as a:1)"),
        ("[::1]:5,[0:0::1]:5", "'[0:0::1]:5' is listed twice (as [::1]:5)"),
    ],
)
def test_a_bad_item_is_one_line_naming_it(raw, words):
    with pytest.raises(ConfigError) as caught:
        parse_hub_addrs(raw)
    text = str(caught.value)
    assert text.startswith("HUB_ADDRS: ") and words in text and "\n" not in text
    assert caught.value.variable == "HUB_ADDRS" and caught.value.exit_code == 2


def test_the_same_host_on_two_ports_is_two_hubs():
    assert len(parse_hub_addrs("a:1,a:2")) == 2


def test_a_list_longer_than_any_fleet_needs_is_refused():
    raw = ",".join(f"h{i}:9992" for i in range(MAX_HUB_ADDRS + 1))
    with pytest.raises(ConfigError, match=f"HUB_ADDRS lists {MAX_HUB_ADDRS + 1} hubs; at most {MAX_HUB_ADDRS}"):
        parse_hub_addrs(raw)


def test_hub_ip_and_hub_port_still_work_and_hub_addrs_wins_when_both_are_set():
    assert hub_addresses({}) == (HubAddress("127.0.0.1", 9992),)
    assert hub_addresses({"HUB_IP": "10.0.0.1", "HUB_PORT": "7"}) == (HubAddress("10.0.0.1", 7),)
    assert hub_addresses({"HUB_IP": "::1"}) == (HubAddress("::1", 9992),)
    both = {"HUB_IP": "10.0.0.1", "HUB_PORT": "7", "HUB_ADDRS": "b:2,c:3"}
    assert hub_addresses(both) == (HubAddress("b", 2), HubAddress("c", 3))
    assert ignored_hub_variables(both) == ["HUB_IP", "HUB_PORT"]
    assert ignored_hub_variables({"HUB_ADDRS": "b:2", "HUB_PORT": "7"}) == ["HUB_PORT"]
    assert ignored_hub_variables({"HUB_IP": "10.0.0.1"}) == []
    assert ignored_hub_variables({"HUB_ADDRS": " ", "HUB_IP": "10.0.0.1"}) == []  # blank is unset


def test_node_settings_say_where_their_hubs_came_from():
    assert NodeSettings.from_env({"HUB_ADDRS": "a:1,b:2"}).hubs_variable == "HUB_ADDRS"
    assert NodeSettings.from_env({"HUB_IP": "10.0.0.1"}).hubs_variable == "HUB_IP"


# --- what `secmon check` says --------------------------------------------------------------


@pytest.fixture
def node_env(tmp_path) -> dict[str, str]:
    log = tmp_path / "auth.log"
    log.write_text("")
    return {"AUTH_LOG": str(log)}


def test_check_says_hub_ip_and_hub_port_are_ignored_beside_hub_addrs(node_env):
    assert check_configuration({**node_env, "HUB_ADDRS": "a:1,b:2"}, ["node"]) == []
    env = {**node_env, "HUB_ADDRS": "a:1,b:2", "HUB_IP": "10.0.0.1", "HUB_PORT": "9992"}
    assert check_configuration(env, ["node"]) == []  # the configuration works: a note, not a problem
    assert configuration_notes(env, ["node"]) == [
        "HUB_IP and HUB_PORT ignored: HUB_ADDRS is set and lists the hubs to use"
    ]
    assert configuration_notes(env, ["hub"]) == []


def test_check_names_the_bad_item_of_hub_addrs_with_the_other_problems(node_env):
    env = {**node_env, "HUB_ADDRS": "a:1,a:1", "SECMON_FOLLOW_INTERVAL": "0"}
    problems = check_configuration(env, ["node"])
    assert problems[0] == "HUB_ADDRS: 'a:1' is listed twice (as a:1)"
    assert problems[1].startswith("SECMON_FOLLOW_INTERVAL ") and len(problems) == 2


# --- the order of attempts -----------------------------------------------------------------

A, B, C = HubAddress("a", 1), HubAddress("b", 2), HubAddress("c", 3)


def no_jitter(low: float, high: float) -> float:
    return high


def rotation(*hubs: HubAddress) -> HubRotation:
    return HubRotation(hubs, Backoff(maximum=4.0, minimum=0.5, uniform=no_jitter))


def test_failed_attempts_go_round_the_hubs_at_once_and_wait_between_rounds():
    r = rotation(A, B, C)
    assert r.current == A
    steps = [r.failed(f"no {hub.host}") for hub in (A, B, C, A, B, C)]
    assert [(s.hub, s.wait, s.round_over) for s in steps] == [
        (B, 0.0, False),
        (C, 0.0, False),
        (A, 0.5, True),  # a whole round without a hub: the backoff
        (B, 0.0, False),
        (C, 0.0, False),
        (A, 1.0, True),  # and it grows from round to round
    ]
    assert steps[2].reasons == ("no a", "no b", "no c")


def test_a_healthy_link_that_ends_starts_a_fresh_round_with_the_next_hub():
    r = rotation(A, B, C)
    for _ in range(3):
        r.failed("down")  # the backoff has grown to 1.0
    assert r.current == A
    step = r.lost("lost a", healthy=True)
    assert (step.hub, step.wait, step.round_over) == (B, 0.0, False)
    # B and C fail too: the lost hub had its turn already, so the round is over, with the shortest wait again
    r.failed("no b")
    step = r.failed("no c")
    assert (step.hub, step.wait, step.round_over) == (A, 0.5, True)
    assert step.reasons == ("lost a", "no b", "no c")


def test_nodes_that_moved_on_do_not_go_back_to_a_hub_that_returns():
    r = rotation(A, B, C)
    r.lost("lost a", healthy=True)
    assert r.current == B  # welcomed by B: the node stays until that link ends
    step = r.lost("lost b", healthy=True)
    assert step.hub == C  # next in turn, not back to the first
    assert r.lost("lost c", healthy=True).hub == A


def test_a_link_that_ends_unhealthy_counts_as_a_failed_attempt():
    # Hubs that welcome and drop us at once, over and over, must not spin the node without a wait.
    r = rotation(A, B)
    assert (r.lost("dropped by a", healthy=False).wait, r.current) == (0.0, B)
    step = r.lost("dropped by b", healthy=False)
    assert (step.hub, step.wait, step.round_over) == (A, 0.5, True)
    assert r.lost("dropped by a", healthy=False).wait == 0.0
    assert r.lost("dropped by b", healthy=False).wait == 1.0


def test_one_hub_keeps_the_single_hub_rule():
    r = rotation(A)
    assert [(s.hub, s.wait, s.round_over) for s in (r.failed("x"), r.failed("x"))] == [(A, 0.5, True), (A, 1.0, True)]
    step = r.lost("lost a", healthy=True)  # a healthy link: the shortest wait again, then the same hub
    assert (step.hub, step.wait, step.round_over, step.reasons) == (A, 0.5, True, ("lost a",))


def test_a_rotation_needs_a_hub():
    with pytest.raises(ValueError):
        HubRotation((), Backoff(1.0))


# --- the words of a failure name the variable to fix ----------------------------------------


def test_a_refused_connection_names_the_variable_the_address_came_from():
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    from_list = describe_failure(refused, "b:2", tls=False, variable="HUB_ADDRS")
    assert from_list.startswith("cannot reach the hub at b:2: connection refused (")
    assert "is this address in HUB_ADDRS right?" in from_list and "HUB_IP" not in from_list
    alone = describe_failure(refused, "b:2", tls=False)
    assert "are HUB_IP and HUB_PORT right?" in alone
    unreachable = OSError(errno.EHOSTUNREACH, "unreachable")
    assert "check this address in HUB_ADDRS and the network" in describe_failure(
        unreachable, "b:2", tls=False, variable="HUB_ADDRS"
    )
