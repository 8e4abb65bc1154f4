#!/bin/sh
# Install SecMon from this checkout as systemd services (docs/install.md walks through it).
#
#   deploy/install.sh hub [http] [telegram] [discord]   on the hub's server
#   deploy/install.sh node                               on every monitored server
#
# Debian and Ubuntu refuse `pip install` into the system Python (PEP 668), so the
# packages go into a virtual environment at /opt/secmon, which the units in
# /etc/systemd/system run; settings live in /etc/secmon. Running it again upgrades
# the environment from the checkout and keeps every settings file already there.
#
# With DESTDIR=/some/dir every file goes under that directory and the running
# system is left alone (no user is created, systemd is not told): a dry run that
# still builds the real environment. PYTHON picks the interpreter (python3).
set -eu

usage() {
	echo "usage: $0 hub|node|http|telegram|discord ..." >&2
	exit 2
}

[ $# -gt 0 ] || usage
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${DESTDIR:-}
python=${PYTHON:-python3}
venv=/opt/secmon

core="$repo/packages/core"
packages=""
units=""
service_user=no
for component in "$@"; do
	case $component in
	hub) core="$repo/packages/core[fast]" units="$units secmon-hub" service_user=yes ;;
	node) units="$units secmon-node" ;;
	http) packages="$packages $repo/packages/http" units="$units secmon-http" service_user=yes ;;
	telegram) packages="$packages $repo/packages/telegram" units="$units secmon-tg" service_user=yes ;;
	discord) packages="$packages $repo/packages/discord" units="$units secmon-dc" service_user=yes ;;
	*) echo "install.sh: unknown component '$component'" >&2 && usage ;;
	esac
done

if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
	echo "install.sh: run it as root (or set DESTDIR for a dry run)" >&2
	exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
	echo "install.sh: $python must be Python 3.11 or newer (set PYTHON=...)" >&2
	exit 1
fi
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
	echo "install.sh: $python cannot create virtual environments; install python3-venv" >&2
	exit 1
fi

echo "== virtual environment $root$venv"
"$python" -m venv "$root$venv"
# Core always comes from the checkout too, never from an index under the same name.
# shellcheck disable=SC2086 # one argument per package
"$root$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$core" $packages

# `secmon` on the PATH, talking to the service's socket unless told otherwise.
install -d -m 755 "$root/usr/local/bin"
cat >"$root/usr/local/bin/secmon" <<EOF
#!/bin/sh
: "\${SECMON_SOCKET:=/run/secmon/secmon.sock}"
export SECMON_SOCKET
exec $venv/bin/secmon "\$@"
EOF
chmod 755 "$root/usr/local/bin/secmon"

if [ "$service_user" = yes ]; then
	if [ -n "$root" ]; then
		echo "== DESTDIR set: not creating the system user secmon"
	elif ! getent passwd secmon >/dev/null; then
		echo "== system user secmon"
		useradd --system --user-group --home-dir /var/lib/secmon --no-create-home \
			--shell /usr/sbin/nologin secmon
	fi
fi

echo "== settings in $root/etc/secmon"
install -d -m 755 "$root/etc/secmon"
# new_file NAME MODE: install the text on stdin as /etc/secmon/NAME unless it exists.
new_file() {
	if [ -e "$root/etc/secmon/$1" ]; then
		cat >/dev/null
		echo "   kept $root/etc/secmon/$1"
	else
		(umask 077 && cat >"$root/etc/secmon/$1")
		chmod "$2" "$root/etc/secmon/$1"
		echo "   wrote $root/etc/secmon/$1"
	fi
}
for unit in $units; do
	case $unit in
	secmon-hub)
		new_file hub.env 600 <<'EOF'
# secmon-hub settings (KEY=value). Off loopback, set TLS or a token: docs/install.md.
# BIND_IP=10.0.0.1
# SECMON_TLS_CERT=/etc/secmon/hub.pem
# SECMON_TLS_KEY=/etc/secmon/hub.key
# SECMON_TLS_CA=/etc/secmon/ca.pem
# SECMON_TOKEN_FILE=/etc/secmon/token
EOF
		;;
	secmon-node)
		new_file node.env 600 <<'EOF'
# secmon-node settings (KEY=value): where the hub is, and how to reach it safely.
# HUB_IP=10.0.0.1
# or several hubs, used in turn: HUB_ADDRS=10.0.0.1:9992,10.0.0.2:9992
# SECMON_TLS_CA=/etc/secmon/ca.pem
# SECMON_TOKEN_FILE=/etc/secmon/token
EOF
		new_file allowlist 600 <"$repo/deploy/allowlist.example"
		;;
	secmon-tg)
		new_file telegram.env 600 <<'EOF'
# secmon-tg settings (KEY=value): the bot's token from @BotFather, your numeric user id.
TELEGRAM_BOT_TOKEN=
TELEGRAM_USER_ID=
EOF
		new_file telegram-labels 644 <<'EOF'
# Labels the Telegram bot may run, one a line; each node's own allowlist still decides.
uptime
EOF
		;;
	secmon-dc)
		new_file discord.env 600 <<'EOF'
# secmon-dc settings (KEY=value): the channel's webhook URL.
DISCORD_WEBHOOK_URL=
EOF
		;;
	esac
done

echo "== units in $root/etc/systemd/system"
install -d -m 755 "$root/etc/systemd/system"
for unit in $units; do
	install -m 644 "$repo/deploy/$unit.service" "$root/etc/systemd/system/$unit.service"
done
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
fi

echo "== done. Edit the settings above, then: systemctl enable --now$units"
