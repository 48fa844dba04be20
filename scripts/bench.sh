#!/usr/bin/env bash
# End-to-end benchmark: builds the release binaries, then measures every
# headline figure of shadowbox beside the same machine's limit, measured in
# the same run, against a private PostgreSQL and a private Mosquitto.
#
#   scripts/bench.sh            # full suite (5-6 minutes on 2 cores)
#   scripts/bench.sh --quick    # every figure at small sizes (CI; under 2 minutes)
#
# Prints one table row per figure; JSON goes to target/bench/*.json.
# Needs pgbench, initdb/pg_ctl (PostgreSQL) and mosquitto on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in pgbench initdb pg_ctl mosquitto; do
  command -v "$tool" >/dev/null 2>&1 || {
    # Debian keeps initdb and pg_ctl out of PATH.
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    if [ -n "$pg_bin" ] && [ -x "$pg_bin/$tool" ]; then
      export PATH="$pg_bin:$PATH"
    else
      echo "missing: $tool (apt-get install postgresql postgresql-contrib mosquitto)" >&2
      exit 1
    fi
  }
done

cargo build --release --quiet -p shadowbox -p shadowbox-bench --bin shadowbox --bin shadowbox-bench
exec target/release/shadowbox-bench "$@"
