#!/usr/bin/env bash
# The whole loop on this machine: start shadowbox on the local PostgreSQL
# and Mosquitto, create a tenant, a key and devices, change desired state,
# watch the retained message arrive, let simulated devices report back
# until they are in sync, and show the outbox status.
#
# Needs curl, jq and mosquitto_sub. Uses its own database (shadowbox_demo,
# recreated each run) and DEMO_HTTP_ADDR (default 127.0.0.1:18080).
# SHADOWBOX_BIN runs an already built binary instead of building a release
# one (scripts/test.sh runs the demo with the test build).
set -euo pipefail
cd "$(dirname "$0")/.."

HTTP_ADDR=${DEMO_HTTP_ADDR:-127.0.0.1:18080}
B="http://$HTTP_ADDR"
export DATABASE_URL=${DEMO_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/shadowbox_demo}
export MQTT_URL=${MQTT_URL:-mqtt://127.0.0.1:1883}
export SHADOWBOX_ADMIN_TOKEN=demo-admin-token
export RUST_LOG=${RUST_LOG:-warn}
TENANT=demo
BIN=${SHADOWBOX_BIN:-}
LOGS=$(mktemp -d)

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
pids=()
# The broker may be shared: a client id and a share group of this run's own,
# so that no session another client left there (say a stopped ingester in
# the default group `shadowbox`, whose queue would take its share of the
# reports) changes what the demo sees.
RUN=$$-$RANDOM
INGEST_ID=shadowbox-demo-ingest-$RUN
SHARE_GROUP=shadowbox-demo-$RUN
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # The ingester keeps a persistent session so that nothing is lost while it
  # restarts; the demo is done for good, so discard the session (a clean
  # connect with its client id), or the broker keeps queueing for it.
  mosquitto_sub -h 127.0.0.1 -p "${MQTT_URL##*:}" -i "$INGEST_ID" -t shadowbox/demo/cleanup -E 2>/dev/null || true
}
trap cleanup EXIT

if [ -z "$BIN" ]; then
  step "build"
  cargo build --release --quiet --bin shadowbox
  BIN=target/release/shadowbox
fi

step "fresh demo database"
# The database DEMO_DATABASE_URL names, never another one.
psql -q "${DATABASE_URL%/*}/postgres" -c "DROP DATABASE IF EXISTS \"${DATABASE_URL##*/}\" WITH (FORCE)"

step "start shadowbox serve on $HTTP_ADDR (logs in $LOGS)"
SHADOWBOX_HTTP_ADDR=$HTTP_ADDR SHADOWBOX_INGEST_CLIENT_ID=$INGEST_ID \
  SHADOWBOX_INGEST_SHARE_GROUP=$SHARE_GROUP \
  "$BIN" serve >"$LOGS/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -fs "$B/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$B/readyz"; echo

step "tenant, API key, three devices"
A="Authorization: Bearer $SHADOWBOX_ADMIN_TOKEN"
curl -fsS -X PUT -H "$A" "$B/v1/tenants/$TENANT"; echo
KEY=$(curl -fsS -X POST -H "$A" "$B/v1/tenants/$TENANT/api-keys" | jq -r .secret)
K="Authorization: Bearer $KEY"
echo "tenant key: ${KEY:0:40}..."
for d in sim-00000 sim-00001 sim-00002; do
  curl -fsS -X POST -H "$K" -H 'Content-Type: application/json' \
    -d "{\"device_id\":\"$d\",\"desired\":{\"rate\":1}}" "$B/v1/tenants/$TENANT/devices" |
    jq -c '{device_id, desired, desired_version}'
done

step "PATCH desired state of sim-00000 (JSON merge patch)"
curl -fsS -X PATCH -H "$K" -H 'Content-Type: application/merge-patch+json' -H 'If-Match: "1"' \
  -d '{"rate":5,"mode":"eco"}' "$B/v1/tenants/$TENANT/devices/sim-00000/desired" |
  jq -c '{desired, desired_version, in_sync}'

step "the retained desired message, as a device connecting now receives it"
mosquitto_sub -h 127.0.0.1 -p "${MQTT_URL##*:}" -t "tenant/$TENANT/device/sim-00000/shadow/desired" -C 1 -W 10 -v

step "simulated devices apply it and report back (they refuse mode=turbo)"
"$BIN" simulate --tenant "$TENANT" --devices 3 --report-every 1s \
  --reject-when mode=turbo >"$LOGS/simulate.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  synced=$(curl -fsS -H "$K" "$B/v1/tenants/$TENANT/devices?in_sync=true" | jq '.items | length')
  [ "$synced" = 3 ] && break
  sleep 0.2
done
curl -fsS -H "$K" "$B/v1/tenants/$TENANT/devices/sim-00000" |
  jq -c '{desired_version, reported, reported_version, delta, in_sync, delivery: .delivery.status}'
[ "$synced" = 3 ] || { echo "devices did not get in sync" >&2; exit 1; }
echo "all 3 devices in sync"

step "sim-00001 refuses version 2 (mode=turbo): the device says why"
curl -fsS -X PATCH -H "$K" -H 'Content-Type: application/merge-patch+json' \
  -d '{"mode":"turbo"}' "$B/v1/tenants/$TENANT/devices/sim-00001/desired" | jq -c '{desired_version}'
for _ in $(seq 100); do
  rejected=$(curl -fsS -H "$K" "$B/v1/tenants/$TENANT/devices/sim-00001" | jq -r '.rejection.version // empty')
  [ "$rejected" = 2 ] && break
  sleep 0.2
done
curl -fsS -H "$K" "$B/v1/tenants/$TENANT/devices/sim-00001" |
  jq -c '{desired_version, reported_version, in_sync, applied_at, rejection}'
[ "$rejected" = 2 ] || { echo "the rejection did not show" >&2; exit 1; }
echo "sim-00001 rejected version 2"
"$BIN" devices lagging --tenant "$TENANT" --older-than 0ms

step "decommission sim-00002: its retained message is cleared"
curl -fsS -X POST -H "$K" "$B/v1/tenants/$TENANT/devices/sim-00002/decommission" | jq -c '{status}'

step "shadowbox outbox status"
sleep 1
"$BIN" outbox status
step "done"
