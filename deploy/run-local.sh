#!/usr/bin/env bash
# Runs the whole pipeline on this machine: one ingress and one router (more can be started beside
# them), against the local RabbitMQ and PostgreSQL unless RESULTBUS_* variables say otherwise.
# Ctrl-C (or SIGTERM) stops every process gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

# Demo secrets for the example sources, only where the variable is not already set.
while IFS='=' read -r name value; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  [[ -z "${!name:-}" ]] && export "$name=$value"
done < deploy/demo.env
export RESULTBUS_SOURCES=${RESULTBUS_SOURCES:-deploy/sources.example.toml}

pids=()
stopped=
stop() {
  trap - INT TERM
  [[ -n "$stopped" ]] && return
  stopped=1
  echo "run-local: stopping ${#pids[@]} processes"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM

# Local only: subscriber endpoints on this machine are allowed, and the admin API gets a fixed token.
export RESULTBUS_ALLOW_PRIVATE_ENDPOINTS=${RESULTBUS_ALLOW_PRIVATE_ENDPOINTS:-1}
export RESULTBUS_ADMIN_TOKEN=${RESULTBUS_ADMIN_TOKEN:-local-admin-token-change-me}

for role in ${RESULTBUS_ROLES:-router delivery checker}; do
  "$PY" -m workers "$role" &
  pids+=($!)
done
"$PY" -m ingress &
pids+=($!)
"$PY" -m admin &
pids+=($!)

echo "run-local: admin API on http://${RESULTBUS_ADMIN_HOST:-127.0.0.1}:${RESULTBUS_ADMIN_PORT:-8081} (Bearer \$RESULTBUS_ADMIN_TOKEN)"
echo "run-local: ingress on http://${RESULTBUS_INGRESS_HOST:-127.0.0.1}:${RESULTBUS_INGRESS_PORT:-8080}/hooks/<source>; try 'make demo'"
# Any process exiting stops the rest: a half-running pipeline is worse than a stopped one.
wait -n "${pids[@]}" || true
stop
