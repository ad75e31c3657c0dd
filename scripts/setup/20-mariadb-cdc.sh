#!/usr/bin/env bash
# MariaDB configured for change data capture (tidelake cdc mysql and its
# tests): the binary log on, row-based with full row images and full row
# metadata (column names in TABLE_MAP events), a server id. Writes a config
# file and restarts mariadbd only when the running server lacks a setting.
set -euo pipefail

conf_dir=/etc/mysql/mariadb.conf.d
conf_file=$conf_dir/60-tidelake-cdc.cnf
my_cnf=/etc/mysql/my.cnf

mysql_query() {
  mysql -uroot -h127.0.0.1 -N -B -e "$1" 2>/dev/null
}

settings_active() {
  local got
  got=$(mysql_query "SELECT CONCAT_WS(',', @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@server_id > 0)") || return 1
  [ "$got" = "1,ROW,FULL,FULL,1" ] || [ "$got" = "ON,ROW,FULL,FULL,1" ]
}

if ! command -v mysql >/dev/null 2>&1; then
  echo "20-mariadb-cdc: the mysql client is not installed (apt-get install mariadb-client)" >&2
  exit 1
fi

if settings_active; then
  exit 0
fi

mkdir -p "$conf_dir"
cat > "$conf_file" <<'CNF'
# Written by tidelake scripts/setup/20-mariadb-cdc.sh: the binlog settings
# that tidelake cdc mysql needs.
[mariadbd]
log-bin = mysql-bin
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
server_id = 1
expire_logs_days = 3
CNF
# Debian's my.cnf includes this directory; a hand-written one may not.
if [ -f "$my_cnf" ] && ! grep -q "^!includedir $conf_dir" "$my_cnf"; then
  printf '\n!includedir %s/\n' "$conf_dir" >> "$my_cnf"
fi

if mysql_query "SELECT 1" >/dev/null; then
  mysqladmin -uroot -h127.0.0.1 shutdown
  for _ in $(seq 1 60); do
    pidof mariadbd >/dev/null || break
    sleep 1
  done
fi
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
for _ in $(seq 1 60); do
  if mysql_query "SELECT 1" >/dev/null; then
    break
  fi
  sleep 1
done
if ! settings_active; then
  echo "20-mariadb-cdc: MariaDB does not run with the CDC settings of $conf_file (see /var/log/mysql/error.log)" >&2
  exit 1
fi
