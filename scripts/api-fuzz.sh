#!/usr/bin/env bash
# Property-based API testing against the OpenAPI document: schemathesis
# (from PyPI, pinned, in a venv under target/) sends requests generated
# from every operation of /openapi.json to the real `shadowbox api` binary
# on a free loopback port, against a scratch database holding a tenant, a
# key and a device, and fails on any server error, any answer that breaks
# the document (status, content type, headers, body schema), any request
# the document allows that the server refuses, or any it forbids that the
# server accepts. Streaming routes (the event stream) are left out.
#
# Needs python3 (venv), curl, jq, and PostgreSQL on DATABASE_ADMIN_URL
# (default postgres://postgres@127.0.0.1:5432/postgres). SHADOWBOX_BIN runs
# an already built binary; API_FUZZ_MAX_TIME (seconds, default 120) bounds
# the run; extra arguments go to `st run`.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=target/schemathesis-$SCHEMATHESIS_VERSION
ADMIN_URL=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=shadowbox_apifuzz_$$
ADMIN_TOKEN=api-fuzz-admin-token
LOGS=$(mktemp -d)

say() { printf '==> %s\n' "$*"; }

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

BIN=${SHADOWBOX_BIN:-}
if [ -z "$BIN" ]; then
  say "build"
  cargo build --quiet --bin shadowbox
  BIN=target/debug/shadowbox
fi

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
B="http://127.0.0.1:$PORT"
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" || true
  rm -rf "$LOGS"
}
trap cleanup EXIT

say "shadowbox api on $B, database $DB (logs in $LOGS)"
DATABASE_URL="${ADMIN_URL%/*}/$DB" SHADOWBOX_HTTP_ADDR=127.0.0.1:$PORT \
  SHADOWBOX_ADMIN_TOKEN=$ADMIN_TOKEN RUST_LOG=${RUST_LOG:-warn} \
  "$BIN" api >"$LOGS/api.log" 2>&1 &
pid=$!
for _ in $(seq 150); do
  curl -fs "$B/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$B/healthz" >/dev/null || { cat "$LOGS/api.log" >&2; exit 1; }

say "tenant acme, a key, device d1"
A="Authorization: Bearer $ADMIN_TOKEN"
curl -fsS -o /dev/null -X PUT -H "$A" "$B/v1/tenants/acme"
KEY=$(curl -fsS -X POST -H "$A" "$B/v1/tenants/acme/api-keys" | jq -r .secret)
curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"device_id":"d1","desired":{"rate":1}}' "$B/v1/tenants/acme/devices"

say "schemathesis $SCHEMATHESIS_VERSION against $B/openapi.json"
status=0
# Run from target/api-fuzz, where schemathesis keeps its cache and the
# examples that failed before (tried first on the next run).
root=$(pwd)
mkdir -p target/api-fuzz
(
  cd target/api-fuzz
  PYTHONPATH=$root/scripts SCHEMATHESIS_HOOKS=api_fuzz_hooks \
    "$root/$VENV/bin/st" --config-file "$root/scripts/api-fuzz.toml" run "$B/openapi.json" \
    --header "Authorization: Bearer $ADMIN_TOKEN" \
    --exclude-path-regex '/events$' \
    --checks all \
    --max-time "${API_FUZZ_MAX_TIME:-120}" \
    --no-color \
    "$@"
) || status=$?
if [ "$status" != 0 ]; then
  say "the server's log"
  tail -n 50 "$LOGS/api.log"
fi
exit "$status"
