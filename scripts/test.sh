#!/usr/bin/env bash
# The single test command: checks the monitoring files (fetching promtool
# when it is missing), makes sure PostgreSQL and Mosquitto answer on
# 127.0.0.1:5432 and 127.0.0.1:1883 (starting them when they do not), then
# installs nats-server when it is missing (the NATS cluster tests), then
# checks that `.sqlx/` is current and runs formatting, clippy, the
# unused-dependency check and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# Every SQL query is checked when it compiles, against the committed
# `.sqlx/` (never a live database): scripts/sqlx-prepare.sh refreshes it.
export SQLX_OFFLINE=true

say() { printf '==> %s\n' "$*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "missing: $1 ($2)" >&2
    exit 1
  }
}

need cargo "install Rust with rustup"
need mosquitto "apt-get install mosquitto mosquitto-clients"
need mosquitto_sub "apt-get install mosquitto-clients"
need pg_ctl "apt-get install postgresql (tests run private clusters with initdb/pg_ctl)"
need initdb "apt-get install postgresql"
need psql "apt-get install postgresql-client"
need curl "apt-get install curl"
need jq "apt-get install jq"
need pgbench "apt-get install postgresql-contrib (scripts/bench.sh --quick)"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || {
  echo "missing: python3 with venv (apt-get install python3-venv; scripts/api-fuzz.sh installs schemathesis into one)" >&2
  exit 1
}

# The NATS cluster tests (tests/brokers.rs) run Debian's nats-server on
# private ports (never the machine's own NATS); they skip, saying so,
# without it. Installed here when missing and apt-get may be used.
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  say "nats-server is missing; installing Debian's package (the NATS cluster tests)"
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq nats-server || true
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n apt-get install -y -qq nats-server || true
  fi
  [ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null 2>&1 ||
    echo "could not install nats-server (apt-get install nats-server): the NATS cluster tests will skip" >&2
fi

say "scripts/check-monitoring.sh (Prometheus config, alerting rules and their tests, dashboard queries)"
scripts/check-monitoring.sh

if ! port_open 5432; then
  say "PostgreSQL is not answering on 127.0.0.1:5432; starting it"
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  else
    echo "start PostgreSQL on 127.0.0.1:5432 (trust auth for user postgres) and run again" >&2
    exit 1
  fi
  for _ in $(seq 50); do port_open 5432 && break; sleep 0.2; done
fi
if ! port_open 1883; then
  say "Mosquitto is not answering on 127.0.0.1:1883; starting it"
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    mkdir -p /run/mosquitto && chown mosquitto: /run/mosquitto 2>/dev/null || true
    mosquitto -d -c /etc/mosquitto/mosquitto.conf
  else
    mosquitto -d -p 1883
  fi
  for _ in $(seq 50); do port_open 1883 && break; sleep 0.2; done
fi
port_open 5432 || { echo "PostgreSQL still not answering on 127.0.0.1:5432" >&2; exit 1; }
port_open 1883 || { echo "Mosquitto still not answering on 127.0.0.1:1883" >&2; exit 1; }

say "scripts/sqlx-prepare.sh --check (.sqlx/ matches every query and the migrations)"
scripts/sqlx-prepare.sh --check
say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
# Unused dependencies: cargo-machete searches each crate's sources for the
# crates its manifest names (about 3 s). Installed once per machine, from
# source (a few minutes on 2 cores), only when missing.
if ! command -v cargo-machete >/dev/null 2>&1; then
  say "installing cargo-machete (once per machine)"
  cargo install --locked --quiet --version 0.9.2 cargo-machete
fi
say "cargo machete (unused dependencies)"
cargo machete
say "cargo test"
test_log=$(mktemp)
trap 'rm -f "$test_log"' EXIT
cargo test --workspace "$@" 2>&1 | tee "$test_log"
say "scripts/demo.sh (the whole loop, with the test build)"
SHADOWBOX_BIN=target/debug/shadowbox scripts/demo.sh
say "scripts/api-fuzz.sh (schemathesis against /openapi.json and the real binary, about 2 minutes)"
SHADOWBOX_BIN=target/debug/shadowbox scripts/api-fuzz.sh
say "scripts/bench.sh --quick (every figure at small sizes, so the suite cannot rot; no timing is asserted)"
scripts/bench.sh --quick

# The test count last, where CI reads it.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$test_log"
