#!/usr/bin/env bash
# Refreshes `.sqlx/`, the query data the `sqlx::query!` family of macros
# checks SQL against when it compiles offline (SQLX_OFFLINE=true, as
# scripts/test.sh and the Dockerfile build). Run it after adding or
# changing a query or a migration, and commit `.sqlx/` with the change:
#
#   scripts/sqlx-prepare.sh            # rewrite .sqlx/
#   scripts/sqlx-prepare.sh --check    # fail if .sqlx/ is not current (scripts/test.sh)
#
# It needs no sqlx-cli: it creates a scratch database on the local
# PostgreSQL (SQLX_PREPARE_SERVER, default postgres://postgres@127.0.0.1:5432),
# applies migrations/ with psql, and type-checks the workspace online with
# SQLX_OFFLINE_DIR set: the macros then write the data of every query they
# expand to that folder (sqlx-macros-core, `query/mod.rs`: live data is
# saved to `SQLX_OFFLINE_DIR`), which replaces or is compared with `.sqlx/`.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=write
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

server="${SQLX_PREPARE_SERVER:-postgres://postgres@127.0.0.1:5432}"
database="shadowbox_sqlx_prepare_$$"
out=$(mktemp -d)
cleanup() {
  rm -rf "$out"
  psql "$server/postgres" -qXc "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql "$server/postgres" -qXc "CREATE DATABASE \"$database\"" >/dev/null
for migration in migrations/*.sql; do
  psql "$server/$database" -qX -v ON_ERROR_STOP=1 -1 -f "$migration" >/dev/null
done

# The macros run only when their crate is compiled: touch every file that
# holds one, so each query is expanded (and its data written) again.
grep -rlE 'sqlx::query(_as|_scalar)?!' --include='*.rs' crates src tests | xargs -r touch
SQLX_OFFLINE=false DATABASE_URL="$server/$database" SQLX_OFFLINE_DIR="$out" \
  cargo check --workspace --all-targets --quiet

if [ "$mode" = check ]; then
  if ! diff -r .sqlx "$out" >/dev/null 2>&1; then
    echo ".sqlx/ is not current: run scripts/sqlx-prepare.sh and commit .sqlx/" >&2
    diff -rq .sqlx "$out" >&2 || true
    exit 1
  fi
  echo ".sqlx/ is current ($(ls "$out" | wc -l) queries)"
else
  rm -rf .sqlx
  mkdir .sqlx
  cp "$out"/query-*.json .sqlx/ 2>/dev/null || true
  echo ".sqlx/ holds $(ls .sqlx | wc -l) queries"
fi
