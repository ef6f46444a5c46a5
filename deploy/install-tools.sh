#!/usr/bin/env bash
# The ecosystem's own validators that `make test` runs on the deployment artefacts: promtool (alert
# rules), the AsyncAPI CLI (docs/asyncapi.yaml) and docker-compose (docker-compose.yml). Run by
# `make test` (`make tools`). Idempotent and quick when done (the AsyncAPI CLI's first install from npm
# takes a few minutes); a tool that cannot be installed is reported here, and its test is skipped
# saying so.
# kubernetes-validate comes with the Python `dev` extra.
set -uo pipefail
cd "$(dirname "$0")/.."

ASYNCAPI_CLI=4.1.1  # the last release that runs on Node 20
apt_updated=""

apt_install() {
  [ -n "$apt_updated" ] || { apt-get update -qq && apt_updated=1; }
  # No service may start from a package's install script (Debian's prometheus would start a server).
  local policy=/usr/sbin/policy-rc.d added=""
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  local rc=$?
  [ -z "$added" ] || rm -f "$policy"
  return $rc
}

if ! command -v promtool >/dev/null; then
  apt_install prometheus || echo "install-tools: could not install prometheus (promtool): alert rule checks will skip" >&2
fi

if ! command -v docker-compose >/dev/null && ! docker compose version >/dev/null 2>&1; then
  apt_install docker-compose || echo "install-tools: could not install docker-compose: the compose check will skip" >&2
fi

if [[ "$(.tools/node_modules/.bin/asyncapi --version 2>/dev/null)" != "@asyncapi/cli/$ASYNCAPI_CLI "* ]]; then
  if command -v npm >/dev/null; then
    # Scripts and optional packages are only the CLI's extras (telemetry, browsers): not needed to validate.
    echo "install-tools: installing @asyncapi/cli $ASYNCAPI_CLI into .tools/ (npm; a few minutes, once)" >&2
    npm install --prefix .tools --no-audit --no-fund --loglevel=error --omit=optional --ignore-scripts \
      "@asyncapi/cli@$ASYNCAPI_CLI" >/dev/null \
      || echo "install-tools: could not install @asyncapi/cli: the AsyncAPI check will skip" >&2
  else
    echo "install-tools: no npm here: the AsyncAPI check will skip" >&2
  fi
fi
exit 0
