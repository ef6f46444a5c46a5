#!/usr/bin/env bash
# Runs the whole pipeline on this machine: ingress, admin API (with the operator console) and one of
# each worker role (more can be started beside them), against the local RabbitMQ and PostgreSQL
# unless RESULTBUS_* variables say otherwise. Without a real iTEP endpoint configured, a fake iTEP
# (devkit/fake_itep.py) takes the orders, so that `make demo` shows an order turn into a result; a
# fake OneRoster gradebook and Caliper endpoint (devkit/) receive `make demo`'s grades.
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

# RESULTBUS_METRICS_PORT is a base here: each process serves /metrics, /healthz and /readyz on a port
# of its own, base+0 ingress, +1 router, +2 delivery, +3 checker, +4 admin, +5 fulfillment,
# +6 retention (a second copy of a role from +7 on). The ingress runs RESULTBUS_INGRESS_PROCESSES
# processes on its port (default: one per CPU), its base+0 answering for all of them.
metrics_base=${RESULTBUS_METRICS_PORT:-}
unset RESULTBUS_METRICS_PORT
if [[ -n "$metrics_base" && ! "$metrics_base" =~ ^[0-9]+$ ]]; then
  echo "run-local: RESULTBUS_METRICS_PORT: expected a port number, got '$metrics_base'" >&2
  exit 2
fi
declare -A offsets=([ingress]=0 [router]=1 [delivery]=2 [checker]=3 [admin]=4 [fulfillment]=5 [retention]=6)
declare -A taken=()
next_offset=7
ports=()

start() {  # role command...
  local role=$1
  shift
  if [[ -z "$metrics_base" ]]; then
    "$@" &
  else
    # A role started twice (RESULTBUS_ROLES="router router") takes the next free offset.
    local offset=${offsets[$role]:-}
    if [[ -z "$offset" || -n "${taken[$offset]:-}" ]]; then
      offset=$next_offset
      next_offset=$((next_offset + 1))
    fi
    taken[$offset]=1
    RESULTBUS_METRICS_PORT=$((metrics_base + offset)) "$@" &
    ports+=("$role=http://${RESULTBUS_METRICS_HOST:-127.0.0.1}:$((metrics_base + offset))/metrics")
  fi
  pids+=($!)
}

if [[ -z "${RESULTBUS_ITEP_ENDPOINT:-}" ]]; then
  "$PY" -m devkit.fake_itep --port "${RESULTBUS_FAKE_ITEP_PORT:-8090}" --api-key "$ITEP_API_KEY" \
    --results-url "http://${RESULTBUS_INGRESS_HOST:-127.0.0.1}:${RESULTBUS_INGRESS_PORT:-8080}/hooks/itep-demo" \
    --results-user itep --results-password "$RESULTBUS_DEMO_ITEP_PASSWORD" &
  pids+=($!)
  export RESULTBUS_ITEP_ENDPOINT="http://127.0.0.1:${RESULTBUS_FAKE_ITEP_PORT:-8090}/requests/ecommerce_webhook.php"
  export RESULTBUS_ITEP_SIGNATURE_HEADER_GTX=${RESULTBUS_ITEP_SIGNATURE_HEADER_GTX:-X-Itep-Gtx-Signature}
  export RESULTBUS_ITEP_SIGNATURE_HEADER_STX=${RESULTBUS_ITEP_SIGNATURE_HEADER_STX:-X-Itep-Stx-Signature}
  echo "run-local: fake iTEP on $RESULTBUS_ITEP_ENDPOINT (set RESULTBUS_ITEP_ENDPOINT for a real one)"
fi
export RESULTBUS_ITEP_TRACK=${RESULTBUS_ITEP_TRACK:-DEMO}

# A OneRoster 1.2 gradebook and a Caliper 1.2 endpoint (devkit/), for `make demo`'s gradebook
# destinations; the delivery workers read their credentials from the variables of deploy/demo.env.
"$PY" -m devkit.oneroster --port "${RESULTBUS_FAKE_GRADEBOOK_PORT:-8092}" \
  --client-secret "$RESULTBUS_DEMO_GRADEBOOK_SECRET" &
pids+=($!)
"$PY" -m devkit.caliper --port "${RESULTBUS_FAKE_CALIPER_PORT:-8093}" --token "$RESULTBUS_DEMO_CALIPER_TOKEN" &
pids+=($!)

for role in ${RESULTBUS_ROLES:-router delivery checker fulfillment retention}; do
  start "$role" "$PY" -m workers "$role"
done
start ingress "$PY" -m ingress
start admin "$PY" -m admin

echo "run-local: admin API on http://${RESULTBUS_ADMIN_HOST:-127.0.0.1}:${RESULTBUS_ADMIN_PORT:-8081} (Bearer \$RESULTBUS_ADMIN_TOKEN)"
echo "run-local: operator console on http://${RESULTBUS_ADMIN_HOST:-127.0.0.1}:${RESULTBUS_ADMIN_PORT:-8081}/console/ (sign in with the token: $RESULTBUS_ADMIN_TOKEN)"
echo "run-local: ingress on http://${RESULTBUS_INGRESS_HOST:-127.0.0.1}:${RESULTBUS_INGRESS_PORT:-8080}/hooks/<source>, ${RESULTBUS_INGRESS_PROCESSES:-auto} processes (RESULTBUS_INGRESS_PROCESSES; auto: one per CPU); try 'make demo'"
[[ -n "$metrics_base" ]] && echo "run-local: metrics ${ports[*]}"
# Any process exiting stops the rest: a half-running pipeline is worse than a stopped one.
wait -n "${pids[@]}" || true
stop
