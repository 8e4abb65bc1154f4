"""secmon-dc as a process, against a real hub and node and a local webhook server."""

from __future__ import annotations

import subprocess
import sys

from conftest import WAIT, Daemon, wait_until

LINE = "2026-11-29T02:09:0{s}+00:00 web sshd[{pid}]: {message}\n"


def start_dc(cluster, fake, **extra) -> Daemon:
    env = {**cluster.env, "DISCORD_WEBHOOK_URL": fake.url, "SECMON_FOLD_WINDOW": "2", **extra}
    daemon = Daemon([sys.executable, "-m", "secmon_discord"], env, "secmon-dc")
    cluster.daemons.append(daemon)
    daemon.wait_for("following the hub's updates after seq")
    return daemon


def write(log, *messages):
    with log.open("a") as f:
        for i, message in enumerate(messages):
            f.write(LINE.format(s=i % 10, pid=100 + i, message=message))


def setup(cluster, workdir):
    log = workdir / "auth.log"
    log.write_text("")
    cluster.start_node("auth", hostname="web-1")
    cluster.wait_auth_ok("web-1")
    return log


def test_events_arrive_as_escaped_embeds_that_ping_nobody(cluster, hub, workdir, fake_discord):
    log = setup(cluster, workdir)
    start_dc(cluster, fake_discord, DISCORD_MESSAGE_CONTENT="SecMon alert")
    write(
        log,
        "Accepted publickey for alice from 192.0.2.7 port 5151 ssh2: ED25519 SHA256:x",
        "Invalid user @everyone from 203.0.113.9 port 4242",
    )
    wait_until(lambda: len(fake_discord.embeds()) >= 2, what="two embeds")
    accepted, invalid = fake_discord.embeds()[:2]
    assert accepted["title"] == "✅ SSH login accepted"
    assert {"name": "From", "value": "192.0.2.7\\:5151", "inline": True} in accepted["fields"]
    assert {"name": "Node", "value": "web\\-1 \\(127.0.0.1\\)", "inline": False} in accepted["fields"]
    assert invalid["title"] == "❌ SSH invalid user"
    assert {"name": "User", "value": "@\u200beveryone", "inline": True} in invalid["fields"]
    for post in fake_discord.posts:
        assert post["allowed_mentions"] == {"parse": []} and post["content"] == "SecMon alert"


def test_a_burst_folds_into_one_embed_with_a_count(cluster, hub, workdir, fake_discord):
    log = setup(cluster, workdir)
    start_dc(cluster, fake_discord)
    write(log, *[f"Failed password for invalid user u{i} from 203.0.113.66 port {4000 + i} ssh2" for i in range(50)])
    wait_until(lambda: len(fake_discord.embeds()) >= 2, what="the first failure and the folded rest")
    first, folded = fake_discord.embeds()[:2]
    assert first["title"] == "❌ SSH password failed"
    assert folded["title"] == "❌ 49 more failures from 203.0.113.66"
    assert len(fake_discord.embeds()) == 2


def test_429_500_and_cut_connections_are_retried_and_nothing_is_lost(cluster, hub, workdir, fake_discord):
    log = setup(cluster, workdir)
    fake_discord.fail_next(429, {"message": "You are being rate limited.", "retry_after": 0.3, "global": False})
    fake_discord.fail_next(500, {"message": "oops"})
    fake_discord.fail_next(502, {"message": "bad gateway"})
    fake_discord.drop_next()
    dc = start_dc(cluster, fake_discord, SECMON_FOLD_WINDOW="0")
    write(log, *[f"Accepted password for user{i} from 192.0.2.{i} port 22 ssh2" for i in range(5)])
    wait_until(lambda: len(fake_discord.embeds()) == 5, what="all five embeds")
    users = [next(f["value"] for f in e["fields"] if f["name"] == "User") for e in fake_discord.embeds()]
    assert users == [f"user{i}" for i in range(5)]  # in order, none lost
    assert len(fake_discord.refused) == 4
    assert fake_discord.accepted_at[0] - fake_discord.refused[0] >= 0.3  # retry_after was honoured
    dc.wait_for("Discord rate limit: waiting 0.30 s")


def test_a_hub_restart_is_resumed(cluster, hub, workdir, fake_discord):
    log = setup(cluster, workdir)
    start_dc(cluster, fake_discord, SECMON_FOLD_WINDOW="0")
    write(log, "Accepted password for before from 192.0.2.1 port 22 ssh2")
    wait_until(lambda: len(fake_discord.embeds()) == 1)
    cluster.restart_hub()
    cluster.start_node("auth", hostname="web-2")
    cluster.wait_auth_ok("web-2")
    write(log, "Accepted password for after from 192.0.2.2 port 22 ssh2")
    wait_until(lambda: len(fake_discord.embeds()) == 2, what="the event after the restart")
    assert fake_discord.embeds()[1]["fields"][0]["value"] == "after"


def test_test_command_reports_discords_answer(fake_discord, base_env):
    result = subprocess.run(
        [sys.executable, "-m", "secmon_discord", "test"],
        env={**base_env, "DISCORD_WEBHOOK_URL": fake_discord.url},
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stderr
    assert "Discord accepted the test message (id 1001 in channel 42)" in result.stdout
    assert fake_discord.embeds()[0]["title"] == "✅ SecMon test message"


def test_missing_or_bad_webhook_is_a_clear_error(base_env):
    for value, message in [
        ("", "DISCORD_WEBHOOK_URL is required"),
        ("ftp://x/api/webhooks/1/2", "must be a webhook URL"),
        ("http://discord.com/api/webhooks/1/2", "must use https"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "secmon_discord"],
            env={**base_env, "DISCORD_WEBHOOK_URL": value},
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_a_burst_still_folding_at_stop_is_delivered(cluster, hub, workdir, fake_discord):
    log = setup(cluster, workdir)
    dc = start_dc(cluster, fake_discord, SECMON_FOLD_WINDOW="3600")  # the window will not close by itself
    burst = [f"Failed password for root from 203.0.113.66 port {4000 + i} ssh2" for i in range(31)]
    write(log, *burst, "Accepted publickey for alice from 192.0.2.7 port 5151 ssh2: ED25519 SHA256:x")
    # The login passes at once, and it comes after the burst: by then all 30 are being folded.
    wait_until(lambda: len(fake_discord.embeds()) >= 2, what="the first failure and the login")
    assert [e["title"] for e in fake_discord.embeds()] == ["❌ SSH password failed", "✅ SSH login accepted"]
    assert dc.stop(timeout=WAIT) == 0
    assert [e["title"] for e in fake_discord.embeds()][2:] == ["❌ 30 more failures from 203.0.113.66"]
