"""secmon-tg as a process: a real hub and node, the real library, a local Bot API server."""

from __future__ import annotations

import subprocess
import sys

import anyio
from conftest import WAIT, Daemon, start_telegram_bot, wait_until
from fakes import FakeTelegram

from secmon.client import HubClient

OWNER = 4242
STRANGER = 666


def start_bot(cluster, fake, *modes, **extra) -> Daemon:
    return start_telegram_bot(cluster, fake, OWNER, *modes, **{"SECMON_FOLD_WINDOW": "2", **extra})


def texts(fake, chat=OWNER) -> list[str]:
    """What the user reads: markup removed, entities decoded."""
    return fake.texts(chat)


def ask(fake, text, count_before=None):
    before = len(texts(fake)) if count_before is None else count_before
    fake.send_text(OWNER, text)
    wait_until(lambda: len(texts(fake)) > before, what=f"a reply to {text!r}")
    return texts(fake)[before:]


def test_only_the_owner_is_answered_and_commands_are_registered(cluster, hub, fake_telegram):
    cluster.start_node("who", hostname="web-1")
    bot = start_bot(cluster, fake_telegram)
    assert [c["command"] for c in fake_telegram.commands] == ["start", "help", "list", "mute", "mutes", "unmute"]
    fake_telegram.send_text(STRANGER, "list")
    fake_telegram.send_text(STRANGER, "web-1")
    bot.wait_for(f"ignoring messages from user {STRANGER}")
    (reply,) = ask(fake_telegram, "/start")
    assert "list" in reply and "NODE LABEL" in reply
    assert fake_telegram.messages_to(STRANGER) == []
    assert bot.count(f"ignoring messages from user {STRANGER}") == 1  # logged once per user


def test_each_message_form(cluster, hub, fake_telegram, workdir):
    allow = cluster.allowlist("hi=echo hello <world> & co\nbad=false\n")
    labels = workdir / "bot-labels"
    labels.write_text("hi\nbad\n")
    for name in ("web-1", "db-1"):
        cluster.start_node("who", hostname=name, COMMAND_ALLOWLIST_FILE=str(allow))
    start_bot(cluster, fake_telegram, "exec", COMMAND_ALLOWLIST_FILE=str(labels))
    for word in ("list", "-", "/list"):
        (nodes,) = ask(fake_telegram, word)
        assert nodes.splitlines() == [
            "Nodes",
            "🟢 db-1 #2 127.0.0.1 · sessions: 0",
            "🟢 web-1 #1 127.0.0.1 · sessions: 0",
        ]
    (one,) = ask(fake_telegram, "web-1")
    assert one.startswith("web-1 #1 127.0.0.1\n🟢 connected") and "Commands bad, hi" in one
    (unknown,) = ask(fake_telegram, "nosuch")
    assert unknown == "⚠️ no node matches 'nosuch'"
    before = len(texts(fake_telegram))
    fake_telegram.send_text(OWNER, "web-1 hi")
    wait_until(lambda: len(texts(fake_telegram)) >= before + 2)
    running, result = texts(fake_telegram)[before : before + 2]
    assert running == "⏳ running hi on web-1…"
    assert result == "✅ web-1: success\nhello <world> & co\n"
    before = len(texts(fake_telegram))
    fake_telegram.send_text(OWNER, "- bad")
    wait_until(lambda: len(texts(fake_telegram)) >= before + 3)
    results = sorted(texts(fake_telegram)[before + 1 : before + 3])
    assert results == ["❌ db-1: failure (exit 1)", "❌ web-1: failure (exit 1)"]


def hub_call(cluster, call):
    """Run ``call(hub)`` on a HubClient connected to the test's hub; its answer."""

    async def main():
        with anyio.fail_after(WAIT):
            async with HubClient.connect(cluster.env["SECMON_SOCKET"]) as hub:
                return await call(hub)

    return anyio.run(main)


def test_an_edited_message_never_acts(cluster, hub, fake_telegram, workdir):
    """Editing an old "web-1 hi", "/mute" or "/unmute" runs nothing and changes no rule: the bot says edits
    are ignored (after every other handler has passed the edit by, so by then any act would be done)."""
    allow = cluster.allowlist("hi=echo hello\n")
    labels = workdir / "bot-labels"
    labels.write_text("hi\n")
    cluster.start_node(hostname="web-1", COMMAND_ALLOWLIST_FILE=str(allow))
    start_bot(cluster, fake_telegram, "exec", COMMAND_ALLOWLIST_FILE=str(labels))
    run = fake_telegram.send_text(OWNER, "web-1 hi")
    wait_until(lambda: "✅ web-1: success\nhello\n" in texts(fake_telegram), what="the command's result")
    sent = {}
    for user in ("rooot", "keep", "gone"):
        sent[user] = fake_telegram.send_text(OWNER, f"/mute user:{user}")
        wait_until(lambda u=user: any(f"user:{u}" in t for t in texts(fake_telegram)), what=f"the rule for {user}")
    ids = {rule.user: rule.id for rule in hub_call(cluster, lambda h: h.mutes())}
    unmute = fake_telegram.send_text(OWNER, f"/unmute {ids['gone']}")
    wait_until(lambda: any(t.startswith("🔊 Mute rule removed") for t in texts(fake_telegram)), what="/unmute")
    before = (hub_call(cluster, lambda h: h.audit()).records, hub_call(cluster, lambda h: h.mutes()))
    assert len(before[0]) == 1 and [r.user for r in before[1]] == ["rooot", "keep"]

    fake_telegram.send_edited(OWNER, run, "web-1 hi")  # the same words again
    fake_telegram.send_edited(OWNER, sent["rooot"], "/mute user:root")  # a typo fixed
    fake_telegram.send_edited(OWNER, unmute, f"/unmute {ids['keep']}")  # another rule named

    def settled():
        after = (hub_call(cluster, lambda h: h.audit()).records, hub_call(cluster, lambda h: h.mutes()))
        ignored = sum(t.startswith("✏️ Edits are ignored") for t in texts(fake_telegram))
        return after if after != before or ignored == 3 else None

    audit, mutes = wait_until(settled, what="the three edits answered")
    assert len(audit) == 1, f"an edit ran the command again: {len(audit)} audit records"
    assert [r.user for r in mutes] == ["rooot", "keep"], f"an edit changed the rules: {[r.user for r in mutes]}"


def test_exec_needs_the_mode_and_both_allowlists(cluster, hub, fake_telegram, workdir):
    allow = cluster.allowlist("hi=echo hello\n")
    labels = workdir / "bot-labels"
    labels.write_text("hi\nnodehasnot\n")
    cluster.start_node(hostname="web-1", COMMAND_ALLOWLIST_FILE=str(allow))
    start_bot(cluster, fake_telegram, "exec", COMMAND_ALLOWLIST_FILE=str(labels))
    (refused,) = ask(fake_telegram, "web-1 uptime")
    assert refused == "⛔ uptime is not in this bot's allowlist."
    replies = ask(fake_telegram, "web-1 nodehasnot")
    wait_until(lambda: len(texts(fake_telegram)) >= 3)
    assert "not_allowed" in texts(fake_telegram)[-1] and "not in this node's allowlist" in texts(fake_telegram)[-1]
    assert replies[0].startswith("⏳")


def test_without_exec_no_command_runs(cluster, hub, fake_telegram, workdir):
    allow = cluster.allowlist("hi=echo hello\n")
    labels = workdir / "bot-labels"
    labels.write_text("hi\n")
    cluster.start_node(hostname="web-1", COMMAND_ALLOWLIST_FILE=str(allow))
    start_bot(cluster, fake_telegram, COMMAND_ALLOWLIST_FILE=str(labels))
    (reply,) = ask(fake_telegram, "web-1 hi")
    assert reply.startswith("Commands are off")


def write_auth(log, *messages):
    with log.open("a") as f:
        for i, message in enumerate(messages):
            f.write(f"2026-11-29T02:09:0{i % 10}+00:00 web sshd[{100 + i}]: {message}\n")


def followed_node(cluster, workdir):
    """A node "web-1" following an empty auth log; the log's path."""
    log = workdir / "auth.log"
    log.write_text("")
    cluster.start_node("auth", hostname="web-1")
    cluster.wait_auth_ok("web-1")
    return log


def three_logins_arrive_in_order(log, fake) -> None:
    write_auth(log, *[f"Accepted publickey for user{i} from 192.0.2.{i} port 22 ssh2" for i in range(3)])
    wait_until(lambda: len(texts(fake)) == 3, what="all three pushes")
    assert [t.split(" from ")[0].split()[-1] for t in texts(fake)] == ["user0", "user1", "user2"]  # the user


def test_pushes_escape_hostile_names_and_fold_bursts(cluster, hub, fake_telegram, workdir):
    log = followed_node(cluster, workdir)
    start_bot(cluster, fake_telegram, "upd")
    write_auth(
        log, "Invalid user <b>x</b> from 203.0.113.5 port 1111", "Accepted password for & from 192.0.2.9 port 22 ssh2"
    )
    wait_until(lambda: len(texts(fake_telegram)) >= 2, what="two pushes")
    invalid, accepted = texts(fake_telegram)[:2]
    assert invalid.startswith("❌ SSH invalid user <b>x</b> from 203.0.113.5:1111")
    flag, accepted = accepted.split("\n", 1)  # the first login of & from there: flagged new, on top
    assert flag == "🆕 New host for &" and accepted.startswith("✅ SSH login accepted & from 192.0.2.9:22 (password)")
    assert "web-1 (127.0.0.1)" in accepted
    raw = [m["text"] for m in fake_telegram.messages_to(OWNER)][:2]
    assert "&lt;b&gt;x&lt;/b&gt;" in raw[0] and "<code>&amp;</code>" in raw[1]
    write_auth(log, *[f"Failed password for root from 198.51.100.77 port {3000 + i} ssh2" for i in range(30)])
    wait_until(lambda: any("more failures" in t for t in texts(fake_telegram)), what="the folded burst")
    burst = [t for t in texts(fake_telegram) if "198.51.100.77" in t]
    assert len(burst) == 2 and burst[1].startswith("❌ 29 more failures from 198.51.100.77 on web-1")


def test_a_429_is_waited_out_and_the_message_arrives(cluster, hub, fake_telegram, workdir):
    log = followed_node(cluster, workdir)
    bot = start_bot(cluster, fake_telegram, "upd", SECMON_FOLD_WINDOW="0")
    fake_telegram.fail_next(
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 1",
            "parameters": {"retry_after": 1},
        },
    )
    three_logins_arrive_in_order(log, fake_telegram)
    bot.wait_for("Telegram rate limit: waiting 1.0 s")


def test_network_errors_are_retried_and_nothing_is_lost(cluster, hub, fake_telegram, workdir):
    log = followed_node(cluster, workdir)
    bot = start_bot(cluster, fake_telegram, "upd", SECMON_FOLD_WINDOW="0")
    fake_telegram.fail_next(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
    fake_telegram.drop_next()  # then a connection cut without an answer
    three_logins_arrive_in_order(log, fake_telegram)
    assert bot.count("Telegram unreachable") >= 2 and len(fake_telegram.refused) == 2


def test_ipv4only_keeps_the_bot_off_ipv6(cluster, hub):
    ipv6_only = FakeTelegram(host="::1").start()  # a Bot API reachable over IPv6 alone
    try:
        bot = start_bot(cluster, ipv6_only)  # by default the bot reaches it
        bot.stop()
        calls = len(ipv6_only.calls)
        assert calls > 0
        env = {
            **cluster.env,
            "TELEGRAM_BOT_TOKEN": FakeTelegram.TOKEN,
            "TELEGRAM_USER_ID": str(OWNER),
            "TELEGRAM_API_URL": ipv6_only.api_url,
            "IPV4ONLY": "true",
        }
        result = subprocess.run(
            [sys.executable, "-m", "secmon_telegram"], env=env, capture_output=True, text=True, timeout=WAIT
        )
        assert result.returncode == 1 and "Telegram: httpx.ConnectError" in result.stderr
        assert "Traceback" not in result.stderr and len(ipv6_only.calls) == calls  # nothing went over IPv6
    finally:
        ipv6_only.stop()


def test_hub_restart_is_resumed(cluster, hub, fake_telegram, workdir):
    log = followed_node(cluster, workdir)
    start_bot(cluster, fake_telegram, "upd", SECMON_FOLD_WINDOW="0")
    cluster.restart_hub()
    cluster.start_node("auth", hostname="web-2")
    cluster.wait_auth_ok("web-2")
    write_auth(log, "Accepted password for afterrestart from 192.0.2.1 port 22 ssh2")
    wait_until(lambda: any("afterrestart" in t for t in texts(fake_telegram)), what="the push after the restart")


def test_missing_or_malformed_settings_are_one_line(base_env):
    cases = [
        ({}, "TELEGRAM_BOT_TOKEN is required"),
        ({"TELEGRAM_BOT_TOKEN": "nope"}, "does not look like a bot token"),
        ({"TELEGRAM_BOT_TOKEN": FakeTelegram.TOKEN}, "TELEGRAM_USER_ID is required"),
        ({"TELEGRAM_BOT_TOKEN": FakeTelegram.TOKEN, "TELEGRAM_USER_ID": "me"}, "TELEGRAM_USER_ID must be a number"),
        (
            {"TELEGRAM_BOT_TOKEN": FakeTelegram.TOKEN, "TELEGRAM_USER_ID": "1", "TIMEZONE": "Mars/Base"},
            "TIMEZONE must be",
        ),
    ]
    env = {k: v for k, v in base_env.items() if not k.startswith("TELEGRAM_")}
    for extra, message in cases:
        result = subprocess.run(
            [sys.executable, "-m", "secmon_telegram"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_burst_still_folding_at_stop_is_sent(cluster, hub, fake_telegram, workdir):
    log = followed_node(cluster, workdir)
    bot = start_bot(cluster, fake_telegram, "upd", SECMON_FOLD_WINDOW="3600")  # no window closes by itself
    burst = [f"Failed password for root from 198.51.100.77 port {3000 + i} ssh2" for i in range(21)]
    write_auth(log, *burst, "Accepted password for alice from 192.0.2.9 port 22 ssh2")
    # The login passes at once, and it comes after the burst: by then all 20 are being folded.
    wait_until(lambda: len(texts(fake_telegram)) >= 2, what="the first failure and the login")
    assert bot.stop(timeout=WAIT) == 0
    pushed = texts(fake_telegram)
    assert len(pushed) == 3 and pushed[2].startswith("❌ 20 more failures from 198.51.100.77 on web-1")
