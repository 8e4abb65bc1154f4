"""Alerts through both chat notifiers at once: a real hub and nodes, secmon-tg and secmon-dc as
processes, the local Bot API and webhook servers.

Node down and back, mute rules from the CLI and from Telegram, GeoIP context, first-seen
flags, fleet-wide failure summaries, quiet hours and the command audit: what an operator
reads in each chat, and what must not arrive there.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import sys
import time
from datetime import UTC, datetime

import anyio
import pytest
from conftest import WAIT, Daemon, start_telegram_bot, wait_until
from fakes import FakeTelegram

from secmon.client import HubClient

OWNER = 4242
IDENTITY = f"telegram:{OWNER}"  # the fake Bot API's user has no @username


# --- the two notifiers --------------------------------------------------------------------


def start_bot(cluster, fake, *modes, **extra) -> Daemon:
    return start_telegram_bot(cluster, fake, OWNER, *modes, **{"SECMON_FOLD_WINDOW": "0", **extra})


def start_dc(cluster, fake, **extra) -> Daemon:
    env = {**cluster.env, "DISCORD_WEBHOOK_URL": fake.url, "SECMON_FOLD_WINDOW": "0", "TIMEZONE": "UTC", **extra}
    daemon = Daemon([sys.executable, "-m", "secmon_discord"], env, "secmon-dc")
    cluster.daemons.append(daemon)
    daemon.wait_for("following the hub's updates after seq")
    return daemon


def texts(fake) -> list[str]:
    """What the Telegram user reads: markup removed, entities decoded."""
    return fake.texts(OWNER)


def cards(fake) -> list[str]:
    """Each Discord embed as the text a reader sees: title, description, fields; escapes undone."""
    shown = []
    for e in fake.embeds():
        parts = [e.get("title", ""), e.get("description", "")]
        parts += [f"{f['name']}: {f['value']}" for f in e.get("fields", [])]
        shown.append(re.sub(r"\\(.)", r"\1", "\n".join(parts)).replace("\u200b", "").replace("**", ""))
    return shown


def both(telegram, discord, pattern: str, what: str) -> tuple[str, str]:
    """Wait until a Telegram message and a Discord embed match ``pattern``; the two."""
    regex = re.compile(pattern)

    def found(items):
        return next((item for item in items if regex.search(item)), None)

    tg = wait_until(lambda: found(texts(telegram)), what=f"{what} in Telegram")
    dc = wait_until(lambda: found(cards(discord)), what=f"{what} in Discord")
    return tg, dc


def mentions(telegram, discord, text: str) -> tuple[int, int]:
    return sum(text in t for t in texts(telegram)), sum(text in c for c in cards(discord))


# --- the monitored side -------------------------------------------------------------------


def write_auth(log, *messages) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    with log.open("a") as f:
        for i, message in enumerate(messages):
            f.write(f"{stamp} web sshd[{100 + i}]: {message}\n")


def followed_node(cluster, workdir, hostname: str = "web-1", **extra) -> tuple[Daemon, object]:
    """A node following its own empty auth log; the node and the log's path."""
    log = workdir / f"auth-{hostname}.log"
    log.write_text("")
    node = cluster.start_node("auth", hostname=hostname, AUTH_LOG=str(log), **extra)
    cluster.wait_auth_ok(hostname)
    return node, log


def hub_call(cluster, call):
    """Run ``call(hub)`` on a HubClient connected to the test's hub; its answer."""

    async def main():
        with anyio.fail_after(WAIT):
            async with HubClient.connect(cluster.env["SECMON_SOCKET"]) as hub:
                return await call(hub)

    return anyio.run(main)


def mute_from_cli(cluster, *words: str, duration: str | None = None, reason: str = "") -> int:
    """`secmon mute add WORDS [--for DURATION] --reason REASON --json`; the new rule's id."""
    extra = ["--for", duration] if duration is not None else []
    result = cluster.cli("mute", "add", *words, *extra, "--reason", reason, "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    return int((answer[0] if isinstance(answer, list) else answer)["id"])


def audit(cluster) -> list[dict]:
    """`secmon audit --json`: the command records, oldest first."""
    result = cluster.cli("audit", "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]  # one record a line


# --- the tests ----------------------------------------------------------------------------

NODE_DOWN_AFTER = 1.0


def test_a_killed_node_is_down_within_its_limit_and_back_when_restarted(cluster, fake_telegram, fake_discord):
    cluster.start_hub(NODE_DOWN_AFTER=str(NODE_DOWN_AFTER))
    node = cluster.start_node("who", hostname="web-1")
    start_bot(cluster, fake_telegram, "upd")
    start_dc(cluster, fake_discord)
    killed = time.monotonic()
    node.signal(signal.SIGKILL)
    tg, dc = both(fake_telegram, fake_discord, r"^🔴 Node down\nNode: web-1 #1 \(127\.0\.0\.1\)", "node down")
    assert time.monotonic() - killed < NODE_DOWN_AFTER + 5
    assert "Silent since" in tg and "(more than 1 s)" in tg and "Silent since" in dc
    cluster.start_node("who", hostname="web-1")
    tg, dc = both(fake_telegram, fake_discord, r"^🟢 Node back\nNode: web-1 #1", "node back")
    assert re.search(r"Away \d+ s", tg) and "Delivered 0 events written while away" in tg
    assert mentions(fake_telegram, fake_discord, "Node down") == (1, 1)  # one notice per outage


def test_a_mute_rule_from_the_cli_silences_matching_events_in_both(cluster, hub, workdir, fake_telegram, fake_discord):
    _, log = followed_node(cluster, workdir)
    start_bot(cluster, fake_telegram, "upd")
    start_dc(cluster, fake_discord)
    rule = mute_from_cli(cluster, "198.51.100.0/24", "user:root", reason="lab <scanner> @everyone")
    tg, dc = both(fake_telegram, fake_discord, rf"^🔇 Mute rule added\nRule #{rule}: 198\.51\.100\.0/24 user:root",
                  "the rule's notice")  # fmt: skip
    assert "reason: lab <scanner> @everyone" in tg and "reason: lab <scanner> @everyone" in dc
    assert "@everyone" not in json.dumps(fake_discord.posts)  # the mention is broken
    write_auth(
        log,
        "Failed password for root from 198.51.100.7 port 1000 ssh2",  # muted
        "Failed password for admin from 198.51.100.7 port 1001 ssh2",  # another user: told
        "Failed password for root from 203.0.113.7 port 1002 ssh2",  # another source: told
    )
    both(fake_telegram, fake_discord, r"root from 203\.0\.113\.7|From: 203\.0\.113\.7", "the unmuted source")
    both(fake_telegram, fake_discord, r"admin from 198\.51\.100\.7|User: admin", "the unmuted user")
    assert mentions(fake_telegram, fake_discord, "198.51.100.7:1000") == (0, 0)
    # The event reached the hub's subscribers, marked muted: only the notifiers skip it.
    listed = cluster.cli("events", "--user", "root", "--json").stdout.splitlines()
    events = [json.loads(line) for line in listed if line.strip()]
    assert [e["context"]["muted"] for e in events if e["event"]["port"] == 1000] == [[rule]]


def test_an_expired_cli_rule_stops_silencing_both(cluster, hub, workdir, fake_telegram, fake_discord):
    _, log = followed_node(cluster, workdir)
    start_bot(cluster, fake_telegram, "upd")
    start_dc(cluster, fake_discord)
    rule = mute_from_cli(cluster, "user:root", duration="2s")
    write_auth(
        log,
        "Failed password for root from 198.51.100.7 port 1000 ssh2",  # muted while the rule lasts
        "Failed password for admin from 198.51.100.7 port 1001 ssh2",  # told: written after the muted one
    )
    both(fake_telegram, fake_discord, r"admin from 198\.51\.100\.7|User: admin", "the unmuted user")
    assert mentions(fake_telegram, fake_discord, "198.51.100.7:1000") == (0, 0)
    tg, dc = both(fake_telegram, fake_discord, rf"^🔊 Mute rule expired\nRule #{rule}: user:root", "the expiry")
    assert "By: the hub (expired)" in tg and "By: the hub (expired)" in dc
    write_auth(log, "Failed password for root from 198.51.100.7 port 1002 ssh2")
    both(fake_telegram, fake_discord, r"198\.51\.100\.7:1002", "the same failure after the expiry")
    assert mentions(fake_telegram, fake_discord, "198.51.100.7:1000") == (0, 0)
    listed = [json.loads(line) for line in cluster.cli("events", "--user", "root", "--json").stdout.splitlines()]
    muted = [(e["event"]["port"], (e["context"] or {}).get("muted") or []) for e in listed]
    assert muted == [(1000, [rule]), (1002, [])]  # the hub marked the first alone


def test_geoip_context_and_first_seen_flags(cluster, workdir, fake_telegram, fake_discord):
    from geoip import build_asn_db, build_city_db

    city, asn = workdir / "city.mmdb", workdir / "asn.mmdb"
    build_city_db(city, {"203.0.113.0/24": ("DE", "Germany", "Berlin <Mitte>")})
    build_asn_db(asn, {"203.0.113.0/24": (64496, "Example *Net* & @everyone")})
    cluster.start_hub(GEOIP_CITY_DB=str(city), GEOIP_ASN_DB=str(asn))
    _, log = followed_node(cluster, workdir)
    start_bot(cluster, fake_telegram, "upd")
    start_dc(cluster, fake_discord)
    write_auth(log, "Accepted password for alice from 203.0.113.5 port 4000 ssh2")
    where = "Germany (DE), Berlin <Mitte> · AS64496 Example *Net* & @everyone"
    tg, dc = both(fake_telegram, fake_discord, r"203\.0\.113\.5:4000", "the first login")
    flag = r"🆕 New (host|ASN|country), (?!\1)(host|ASN|country), (?!\1|\2)(host|ASN|country) for alice"
    assert re.match(rf"{flag}\n✅ SSH login accepted alice", tg) and f"🌍 {where}" in tg
    assert re.match(rf"✅ SSH login accepted\n{flag}", dc) and f"Where: {where}" in dc
    assert "@everyone" not in json.dumps(fake_discord.posts)
    write_auth(log, "Accepted password for alice from 203.0.113.5 port 4001 ssh2")
    tg, dc = both(fake_telegram, fake_discord, r"203\.0\.113\.5:4001", "the second login")
    assert tg.startswith("✅ SSH login accepted alice") and "🆕" not in tg and f"🌍 {where}" in tg
    assert "🆕" not in dc and f"Where: {where}" in dc


def test_failures_from_one_source_over_three_nodes_are_one_summary(cluster, workdir, fake_telegram, fake_discord):
    cluster.start_hub(SECMON_FLEET_FAILURES="3", SECMON_FLEET_NODES="3")
    logs = [followed_node(cluster, workdir, f"web-{i}")[1] for i in (1, 2, 3)]
    start_bot(cluster, fake_telegram, "upd")
    start_dc(cluster, fake_discord)
    source = "198.51.100.66"
    # One failure on each node in turn: the third crosses the limit (3 failures over 3 nodes).
    for number, log in enumerate(logs[:2], start=1):
        write_auth(log, f"Failed password for root from {source} port {number} ssh2")
        both(fake_telegram, fake_discord, rf"{source}:{number}\b|From: {source}:{number}\b", f"failure {number}")
    write_auth(logs[2], f"Failed password for root from {source} port 3 ssh2")
    tg, dc = both(fake_telegram, fake_discord, r"^🚨 Failures from one source across the fleet", "the summary")
    assert f"Source: {source}" in tg and "3 failures on 3 nodes, 1 user tried" in tg and "Users: root" in tg
    assert f"Source: {source}" in dc and "on 3 nodes" in dc
    # The other 27 are covered by the summary; a login from elsewhere on each node, written after
    # them, shows that all were seen and none was sent.
    for i, log in enumerate(logs):
        write_auth(log, *[f"Failed password for user{n} from {source} port {100 + n} ssh2" for n in range(9)])
        write_auth(log, f"Accepted password for marker{i} from 192.0.2.50 port 22 ssh2")
    for i in range(3):
        both(fake_telegram, fake_discord, rf"marker{i}", f"the marker on node {i + 1}")
    assert mentions(fake_telegram, fake_discord, source) == (3, 3)  # two single failures and the summary
    assert sum("Failures from one source" in t for t in texts(fake_telegram)) == 1


def test_quiet_hours_hold_back_and_then_digest(cluster, hub, workdir, fake_telegram, fake_discord):
    _, log = followed_node(cluster, workdir)
    write_auth(log, "Accepted password for alice from 192.0.2.10 port 1 ssh2")  # seen before the window
    wait_until(lambda: hub_call(cluster, lambda h: h.events()).events, what="the first login in the history")
    # The window opens once both notifiers run: a lead long enough for them to start, doubled and
    # tried again when a loaded machine takes longer (a window that opened before they ran would
    # not be the one under test).
    for lead in (8, 16, 32):
        start = int(time.time()) + lead
        window = f"{_hms(start)}-{_hms(start + 6)}"
        bot = start_bot(cluster, fake_telegram, "upd", QUIET_HOURS=window)
        dc = start_dc(cluster, fake_discord, QUIET_HOURS=window)
        if time.time() < start:
            break
        bot.stop()
        dc.stop()
    else:
        pytest.fail("the notifiers took more than 32 s to start, three times")
    wait_until(lambda: time.time() >= start, timeout=10, what="the quiet window to open")
    write_auth(
        log,
        "Accepted password for alice from 192.0.2.10 port 2 ssh2",  # seen before: held
        *[f"Failed password for root from 203.0.113.{n} port 3 ssh2" for n in (1, 1, 1, 2)],  # held
        "Accepted password for bob from 192.0.2.11 port 4 ssh2",  # new for bob: critical, told at once
    )
    bot.wait_for("quiet hours .* holding back")
    dc.wait_for("quiet hours .* holding back")
    assert mentions(fake_telegram, fake_discord, "203.0.113.1") == (0, 0)
    tg, dc_digest = both(fake_telegram, fake_discord, r"^🌙 Quiet hours", "the digest")
    assert time.time() >= start + 6
    # The login new for bob was told at once, inside the window, before the digest.
    pushed = texts(fake_telegram)
    bob = [i for i, t in enumerate(pushed) if "New host for bob" in t]
    assert len(bob) == 1 and bob[0] < pushed.index(tg)
    assert any("New host for bob" in c for c in cards(fake_discord)[: cards(fake_discord).index(dc_digest)])
    assert "5 messages held back (5 auth events)" in tg and "5 messages held back" in dc_digest
    assert "SSH password failed: 4" in tg and "SSH login accepted: 1" in tg
    assert "Top sources: 203.0.113.1 (3), 192.0.2.10 (1), 203.0.113.2 (1)" in tg
    assert "SSH password failed: 4" in dc_digest and "Top sources: 203.0.113.1 (3)" in dc_digest
    assert mentions(fake_telegram, fake_discord, "Quiet hours") == (1, 1)
    assert not any(t.startswith("❌") for t in texts(fake_telegram))  # no failure was sent one by one
    write_auth(log, "Failed password for root from 203.0.113.9 port 5 ssh2")  # after the window: at once
    both(fake_telegram, fake_discord, r"203\.0\.113\.9", "a failure after the window")


def _hms(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%H:%M:%S")


def test_a_mute_from_telegram_silences_both_and_names_the_telegram_user(
    cluster, hub, workdir, fake_telegram, fake_discord
):
    _, log = followed_node(cluster, workdir)
    start_bot(cluster, fake_telegram, "upd")
    start_dc(cluster, fake_discord)
    fake_telegram.send_text(OWNER, "/mute user:mallory for 2h reason <b>noisy</b> & co")
    reply = wait_until(lambda: next((t for t in texts(fake_telegram) if t.startswith("🔇 Mute rule added:")), None),
                       what="the /mute reply")  # fmt: skip
    assert "user:mallory · until" in reply and "reason: <b>noisy</b> & co" in reply
    (rule,) = hub_call(cluster, lambda h: h.mutes())
    assert rule.user == "mallory" and rule.by.startswith(f"{IDENTITY} via ") and rule.reason == "<b>noisy</b> & co"
    assert rule.expires is not None and 7100 < rule.expires - rule.created <= 7200
    tg, dc = both(fake_telegram, fake_discord, rf"^🔇 Mute rule added\nRule #{rule.id}: user:mallory", "its notice")
    assert f"By: {IDENTITY} via " in tg and f"By: {IDENTITY} via " in dc
    write_auth(
        log,
        "Failed password for mallory from 192.0.2.66 port 1 ssh2",  # muted
        "Failed password for trent from 192.0.2.66 port 2 ssh2",
        "Accepted password for mallory from 192.0.2.68 port 3 ssh2",  # new for mallory: only kind: mutes that
    )
    both(fake_telegram, fake_discord, r"trent", "the unmuted failure")
    both(fake_telegram, fake_discord, r"(?m)^🆕 New host for mallory", "the login new for the muted user")
    assert mentions(fake_telegram, fake_discord, "192.0.2.66:1") == (0, 0)
    fake_telegram.send_text(OWNER, "/mutes")
    wait_until(lambda: any(t.startswith("🔇 1 mute rule") for t in texts(fake_telegram)), what="the /mutes list")
    fake_telegram.send_text(OWNER, f"/unmute {rule.id}")
    wait_until(lambda: any(t.startswith("🔊 Mute rule removed:") for t in texts(fake_telegram)), what="/unmute")
    assert hub_call(cluster, lambda h: h.mutes()) == []
    for words in ("/unmute 999", "/mute user:a user:b"):  # an unknown id; a field given twice
        warnings = sum(t.startswith("⚠️ ") for t in texts(fake_telegram))
        fake_telegram.send_text(OWNER, words)
        wait_until(
            lambda n=warnings: sum(t.startswith("⚠️ ") for t in texts(fake_telegram)) > n, what=f"{words} refused"
        )
    assert any(t.startswith("⚠️ user: given twice") for t in texts(fake_telegram)), texts(fake_telegram)


def test_audit_lists_a_command_from_telegram_and_one_from_the_cli_each_with_who(
    cluster, hub, workdir, fake_telegram, fake_discord
):
    allow = cluster.allowlist("hi=echo hello\n")
    labels = workdir / "bot-labels"
    labels.write_text("hi\n")
    cluster.start_node(hostname="web-1", COMMAND_ALLOWLIST_FILE=str(allow))
    start_bot(cluster, fake_telegram, "upd", "exec", COMMAND_ALLOWLIST_FILE=str(labels))
    start_dc(cluster, fake_discord)
    fake_telegram.send_text(OWNER, "web-1 hi")
    wait_until(lambda: "✅ web-1: success\nhello\n" in texts(fake_telegram), what="the command's result")
    tg, dc = both(fake_telegram, fake_discord, r"^▶️ Command run\nLabel: hi on web-1", "the command's notice")
    assert f"By: {IDENTITY} via " in tg and "web-1: success" in tg and f"By: {IDENTITY} via " in dc
    cli = cluster.cli("web-1", "hi")  # the same command from the CLI: the hub knows its uid
    assert cli.returncode == 0 and cli.stdout == "hello\n", cli.stderr

    def both_finished() -> list[dict] | None:
        records = audit(cluster)
        return records if len(records) == 2 and all(r["finished"] for r in records) else None

    bot, shell = wait_until(both_finished, what="two finished records in `secmon audit --json`")
    me = {"uid": os.getuid(), "user": pwd.getpwuid(os.getuid()).pw_name}
    assert bot["requester"] == {**me, "on_behalf": IDENTITY}  # the bot's process, acting for its user
    assert shell["requester"] == {**me, "on_behalf": None}
    for record in (bot, shell):
        assert (record["label"], record["target"]) == ("hi", "web-1")
        assert [(o["hostname"], o["status"], o["exit_code"]) for o in record["outcomes"]] == [("web-1", "success", 0)]


@pytest.mark.parametrize(
    ("env", "message"),
    [({"QUIET_HOURS": "late"}, "QUIET_HOURS must be a time range"), ({"TIMEZONE": "Mars/Base"}, "TIMEZONE must be")],
)
def test_bad_quiet_hours_or_zone_are_one_line_errors(base_env, env, message):
    import subprocess

    tg_env = {**base_env, "TELEGRAM_BOT_TOKEN": FakeTelegram.TOKEN, "TELEGRAM_USER_ID": "1", **env}
    dc_env = {**base_env, "DISCORD_WEBHOOK_URL": "http://127.0.0.1:9/api/webhooks/1/x", **env}
    for module, run_env in (("secmon_telegram", tg_env), ("secmon_discord", dc_env)):
        result = subprocess.run([sys.executable, "-m", module], env=run_env, capture_output=True, text=True,
                                timeout=WAIT)  # fmt: skip
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
