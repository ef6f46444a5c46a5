#!/usr/bin/env bash
# Makes sure the local PostgreSQL and RabbitMQ are up, starting them if they are not.
# Used by `make run`, `make test` and CI; a no-op where both already answer.
set -euo pipefail

PGHOST=${RESULTBUS_PGHOST:-127.0.0.1}
PGPORT=${RESULTBUS_PGPORT:-5432}
AMQP_PORT=${RESULTBUS_AMQP_PORT:-5672}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() {  # name host port seconds
  local deadline=$((SECONDS + $4))
  until port_open "$2" "$3"; do
    if ((SECONDS > deadline)); then echo "ensure-services: $1 did not come up on $2:$3" >&2; exit 1; fi
    sleep 1
  done
}

if ! port_open "$PGHOST" "$PGPORT"; then
  echo "ensure-services: starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  else
    echo "ensure-services: PostgreSQL is not reachable on $PGHOST:$PGPORT and cannot be started here" >&2
    exit 1
  fi
fi
wait_for PostgreSQL "$PGHOST" "$PGPORT" 60

if ! port_open 127.0.0.1 "$AMQP_PORT"; then
  echo "ensure-services: starting RabbitMQ"
  if command -v rabbitmq-server >/dev/null; then
    rabbitmq-server -detached
  else
    echo "ensure-services: RabbitMQ is not reachable on 127.0.0.1:$AMQP_PORT and cannot be started here" >&2
    exit 1
  fi
fi
wait_for RabbitMQ 127.0.0.1 "$AMQP_PORT" 120
# The port opens before the broker accepts AMQP sessions; wait until it answers a ping.
if command -v rabbitmq-diagnostics >/dev/null; then
  for _ in $(seq 1 60); do
    rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break
    sleep 1
  done
fi
