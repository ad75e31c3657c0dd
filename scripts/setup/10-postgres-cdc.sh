#!/usr/bin/env bash
# PostgreSQL for the CDC tests: logical replication (wal_level = logical) and
# enough slots and senders for tests that run in parallel. Idempotent: the
# server is restarted only when a setting changed.
set -euo pipefail

PSQL=(psql -h 127.0.0.1 -U postgres -d postgres -tAqX)

if ! "${PSQL[@]}" -c 'SELECT 1' >/dev/null 2>&1; then
    echo "10-postgres-cdc: PostgreSQL is not reachable at 127.0.0.1:5432 as user postgres" >&2
    exit 1
fi

restart=no
want() {
    local name=$1 value=$2 current
    current=$("${PSQL[@]}" -c "SHOW $name")
    if [ "$current" != "$value" ]; then
        "${PSQL[@]}" -c "ALTER SYSTEM SET $name = '$value'" >/dev/null
        restart=yes
        echo "10-postgres-cdc: $name = $current -> $value"
    fi
}
want wal_level logical
want max_replication_slots 64
want max_wal_senders 64

if [ "$restart" = yes ]; then
    version=$(ls /etc/postgresql | sort -n | tail -1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main restart
    for _ in $(seq 1 60); do
        "${PSQL[@]}" -c 'SELECT 1' >/dev/null 2>&1 && break
        sleep 1
    done
fi
level=$("${PSQL[@]}" -c 'SHOW wal_level')
if [ "$level" != logical ]; then
    echo "10-postgres-cdc: wal_level is still '$level' after the restart" >&2
    exit 1
fi
