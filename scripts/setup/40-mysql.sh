#!/usr/bin/env bash
# A real MySQL server (Oracle's, not MariaDB) for the MySQL GTID tests of
# tidelake-cdc: 127.0.0.1:3307, root without a password, gtid_mode=ON and
# the row-based binlog settings CDC needs.
#
# Debian bookworm ships no MySQL server; sid does. Its mysqld and every
# library it links (sid's glibc among them) are fetched with apt-get
# download against a private copy of sid's package index, unpacked with
# dpkg-deb -x into a prefix under the user's cache, and run through that
# prefix's own dynamic loader: the system's apt sources and libraries stay
# untouched. Idempotent and quick once done: nothing happens when the
# server answers with the expected settings; a stopped server is started
# again from the unpacked files and the existing datadir.
set -euo pipefail

prefix=${TIDELAKE_MYSQL_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/tidelake-mysql}
port=${TIDELAKE_MYSQL_PORT:-3307}
suite=${TIDELAKE_MYSQL_SUITE:-sid}
root=$prefix/root
lib=$root/usr/lib/x86_64-linux-gnu
loader=$lib/ld-linux-x86-64.so.2
run=$prefix/run
datadir=$prefix/data
cnf=$prefix/my.cnf

say() { echo "40-mysql: $*" >&2; }

# A program of the prefix, run by the prefix's loader on the prefix's
# libraries (sid's binaries need a newer glibc than bookworm's).
in_prefix() {
  local program=$1
  shift
  "$loader" --library-path "$lib" "$root/usr/$program" "$@"
}

mysql_query() {
  in_prefix bin/mysql --no-defaults -uroot -h127.0.0.1 -P"$port" --ssl-mode=DISABLED \
    -N -B -e "$1" 2>/dev/null
}

settings_active() {
  local got
  got=$(mysql_query "SELECT CONCAT_WS(',', @@gtid_mode, @@enforce_gtid_consistency, @@log_bin, \
    @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@server_id > 0)") || return 1
  [ "$got" = "ON,ON,1,ROW,FULL,FULL,1" ]
}

if [ -x "$loader" ] && [ -f "$prefix/.unpacked" ] && settings_active; then
  exit 0
fi

if [ "$(uname -m)" != x86_64 ]; then
  say "only x86_64 is supported (the packages fetched are amd64)"
  exit 1
fi

# 1. The packages: mysqld and mysql's client, and the closure of their
# dependencies (libraries only: scripts, perl, debconf are not needed to
# run the binaries). Skipped when unpacked already.
apt_options=(
  -o "Dir::Etc::sourcelist=$prefix/apt/sources.list"
  -o Dir::Etc::sourceparts=-
  -o "Dir::State::Lists=$prefix/apt/lists"
  -o "Dir::Cache=$prefix/apt/cache"
  -o Debug::NoLocking=1
  -o APT::Sandbox::User=root
)
if [ ! -f "$prefix/.unpacked" ]; then
  for tool in apt-get apt-cache dpkg-deb; do
    command -v "$tool" >/dev/null 2>&1 || { say "$tool is needed"; exit 1; }
  done
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$keyring" ] || { say "$keyring is missing (apt-get install debian-archive-keyring)"; exit 1; }
  rm -rf "$prefix/apt" "$prefix/debs" "$root"
  mkdir -p "$prefix/apt/lists/partial" "$prefix/apt/cache/archives/partial" "$prefix/debs" "$root"
  echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main" >"$prefix/apt/sources.list"
  say "fetching Debian $suite's package index"
  apt-get "${apt_options[@]}" update -q >/dev/null
  # Breadth first, one apt-cache call per level (one per package is slow).
  declare -A seen=()
  level=(mysql-server-core mysql-client-core)
  while [ ${#level[@]} -gt 0 ]; do
    for package in "${level[@]}"; do seen[$package]=1; done
    # First alternative of each dependency, without versions or :any.
    deps=$(apt-cache "${apt_options[@]}" show --no-all-versions "${level[@]}" \
      | sed -n -E 's/^(Pre-)?Depends: //p' | tr ',' '\n' \
      | sed -E 's/\|.*//; s/\(.*\)//; s/:any//; s/[[:space:]]//g' | sort -u)
    level=()
    for dep in $deps; do
      [ -n "${seen[$dep]:-}" ] && continue
      case $dep in
        perl | perl-base | debconf | debconf-2.0 | mysql-common | mariadb-common | adduser | \
          passwd | libc-bin | tzdata | ucf | lsb-base | init-system-helpers) ;;
        *) level+=("$dep") ;;
      esac
    done
  done
  say "downloading ${#seen[@]} packages"
  (cd "$prefix/debs" && apt-get "${apt_options[@]}" download -q "${!seen[@]}" >/dev/null 2>&1) \
    || (cd "$prefix/debs" && apt-get "${apt_options[@]}" download "${!seen[@]}")
  for deb in "$prefix"/debs/*.deb; do
    dpkg-deb -x "$deb" "$root"
  done
  if ! in_prefix sbin/mysqld --version >/dev/null; then
    say "the unpacked mysqld does not run: $(in_prefix sbin/mysqld --version 2>&1 | tail -1)"
    exit 1
  fi
  # The .debs are not needed once unpacked (they are ~55 MB).
  rm -rf "$prefix/debs" "$prefix/apt/cache"
  in_prefix sbin/mysqld --version >"$prefix/.unpacked"
fi

# 2. The configuration, written each time (cheap, and a changed script
# takes effect at the next start).
mkdir -p "$run"
user_line=
[ "$(id -u)" = 0 ] && user_line="user = root"
cat >"$cnf" <<CNF
# Written by tidelake scripts/setup/40-mysql.sh.
[mysqld]
$user_line
basedir = $root/usr
lc-messages-dir = $root/usr/share/mysql
plugin-dir = $root/usr/lib/mysql/plugin
datadir = $datadir
socket = $run/mysqld.sock
pid-file = $run/mysqld.pid
log-error = $prefix/error.log
bind-address = 127.0.0.1
port = $port
mysqlx = OFF
secure-file-priv = NULL
server-id = 1
log-bin = binlog
gtid-mode = ON
enforce-gtid-consistency = ON
binlog-format = ROW
binlog-row-image = FULL
binlog-row-metadata = FULL
binlog-expire-logs-seconds = 259200
# A test server: small buffers, no fsync per commit.
innodb-buffer-pool-size = 64M
innodb-redo-log-capacity = 64M
innodb-flush-log-at-trx-commit = 2
sync-binlog = 0
performance-schema = OFF
max-connections = 300
CNF

# 3. A running server is stopped first: it does not answer with the CDC
# settings, and a datadir must never be replaced under a live mysqld (it
# would go on writing to the deleted files, which hold their space).
if [ -f "$run/mysqld.pid" ] && kill -0 "$(cat "$run/mysqld.pid")" 2>/dev/null; then
  say "stopping the running mysqld (it does not answer with the CDC settings)"
  in_prefix bin/mysqladmin --no-defaults -uroot -h127.0.0.1 -P"$port" --ssl-mode=DISABLED shutdown \
    2>/dev/null || kill "$(cat "$run/mysqld.pid")"
  for _ in $(seq 1 60); do
    [ -f "$run/mysqld.pid" ] && kill -0 "$(cat "$run/mysqld.pid")" 2>/dev/null || break
    sleep 1
  done
fi
# 4. The datadir, initialised once (root@localhost without a password).
if [ ! -f "$prefix/.initialised" ]; then
  rm -rf "$datadir"
  say "initialising $datadir"
  if ! in_prefix sbin/mysqld --defaults-file="$cnf" --initialize-insecure; then
    say "mysqld --initialize-insecure failed; see $prefix/error.log"
    tail -20 "$prefix/error.log" >&2 || true
    exit 1
  fi
  touch "$prefix/.initialised"
fi

# 5. The server.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  say "port $port is taken by another program; set TIDELAKE_MYSQL_PORT"
  exit 1
fi
say "starting mysqld on 127.0.0.1:$port"
setsid "$loader" --library-path "$lib" "$root/usr/sbin/mysqld" --defaults-file="$cnf" \
  </dev/null >/dev/null 2>&1 &
for _ in $(seq 1 90); do
  settings_active && break
  sleep 1
done
if ! settings_active; then
  say "mysqld does not answer on 127.0.0.1:$port with the CDC settings; see $prefix/error.log"
  tail -20 "$prefix/error.log" >&2 || true
  exit 1
fi
say "ready: $(mysql_query 'SELECT VERSION()') on 127.0.0.1:$port"
