#!/usr/bin/env bash
# Makes sure the PostgreSQL and RabbitMQ the processes will use are up: it probes the addresses of
# RESULTBUS_DATABASE_URL and RESULTBUS_AMQP_URL (the defaults when unset), and starts the local
# service when one of them is on this machine and down. Used by `make run`, `make test` and CI; a
# no-op where both already answer.
set -euo pipefail

DATABASE_URL=${RESULTBUS_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/resultbus}
AMQP_URL=${RESULTBUS_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}

# "host port" of each address of a URL (several for a comma-separated broker list), no password.
addresses() {  # url default-port
  python3 - "$1" "$2" <<'PY'
import sys
from urllib.parse import urlsplit

for url in sys.argv[1].split(","):
    if url.strip():
        parts = urlsplit(url.strip())
        print(parts.hostname or "127.0.0.1", parts.port or sys.argv[2])
PY
}

# A connection within 3 s (an address that drops packets must not hang `make run`).
port_open() { timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }
local_host() { [[ "$1" == 127.* || "$1" == localhost || "$1" == ::1 ]]; }

wait_for() {  # name host port seconds
  local deadline=$((SECONDS + $4))
  until port_open "$2" "$3"; do
    if ((SECONDS > deadline)); then echo "ensure-services: $1 did not come up on $2:$3" >&2; exit 1; fi
    sleep 1
  done
}

# up NAME VARIABLE START-COMMAND... : true once one address of the service answers (starting the
# local service if an address is on this machine), else one line naming the variable.
up() {
  local name=$1 variable=$2 url=$3 default_port=$4 seconds=$5
  shift 5
  local host port local_address=
  while read -r host port; do
    port_open "$host" "$port" && return 0
    local_host "$host" && local_address="$host $port"
  done < <(addresses "$url" "$default_port")
  if [[ -z "$local_address" ]]; then
    local where
    where=$(addresses "$url" "$default_port" | awk '{printf "%s%s:%s", sep, $1, $2; sep = ", "}')
    echo "ensure-services: $name is not reachable at $where ($variable), and is not on this machine to start" >&2
    exit 1
  fi
  read -r host port <<<"$local_address"
  if ! command -v "$1" >/dev/null; then
    echo "ensure-services: $name is not reachable on $host:$port ($variable) and cannot be started here ($1 not found)" >&2
    exit 1
  fi
  echo "ensure-services: starting $name (nothing answers on $host:$port, $variable)"
  if ! "$@"; then
    echo "ensure-services: $name does not answer on $host:$port ($variable), and starting it here failed (above)" >&2
    exit 1
  fi
  wait_for "$name" "$host" "$port" "$seconds"
}

start_postgres() { pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start; }
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then pg_start=start_postgres; else pg_start=pg_ctlcluster; fi
up PostgreSQL RESULTBUS_DATABASE_URL "$DATABASE_URL" 5432 60 "$pg_start"
if up RabbitMQ RESULTBUS_AMQP_URL "$AMQP_URL" 5672 120 rabbitmq-server -detached; then
  # The port opens before the broker accepts AMQP sessions; wait until it answers a ping.
  if command -v rabbitmq-diagnostics >/dev/null; then
    for _ in $(seq 1 60); do
      rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break
      sleep 1
    done
  fi
fi
