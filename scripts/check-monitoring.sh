#!/usr/bin/env bash
# Checks the monitoring files with promtool: the Prometheus config and the
# alerting rules (`promtool check config`, `promtool check rules`), the
# rules' own tests (`promtool test rules`), and every query of the Grafana
# dashboards (each parsed as a recording rule). scripts/test.sh runs it;
# it needs no database or broker and takes seconds.
#
# promtool comes from Debian's `prometheus` package. When it is not on the
# PATH, only the promtool binary is unpacked from that package into
# target/tools/ (a 19 MB download, 48 MB on disk), after an `apt-get update`
# when the package lists lack it (as root). Installing the package instead
# would also install a Prometheus server with 11 packages for its web UI
# (34 more with recommends, among them a node exporter), and start it on a
# machine run by systemd.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Downloads Debian's prometheus package into $work and unpacks promtool to $1.
unpack_promtool() {
  command -v apt-get >/dev/null 2>&1 || {
    echo "missing: promtool (a distribution's prometheus package, or https://prometheus.io/download/)" >&2
    exit 1
  }
  # As root, apt downloads as the `_apt` user, who cannot write to $work.
  download() { (cd "$work" && apt-get -q -o APT::Sandbox::User="$(id -un)" download prometheus); }
  if ! download; then
    [ "$(id -u)" -eq 0 ] || {
      echo "missing: promtool (as root: apt-get update; or apt-get install --no-install-recommends prometheus)" >&2
      exit 1
    }
    say "apt-get update (the package lists do not have prometheus)"
    apt-get -q update
    download
  fi
  mkdir -p "$(dirname "$1")"
  dpkg-deb --fsys-tarfile "$work"/prometheus_*.deb | tar -xO ./usr/bin/promtool >"$1.part"
  chmod +x "$1.part"
  mv "$1.part" "$1"
}

promtool=$(command -v promtool || true)
if [ -z "$promtool" ]; then
  promtool=target/tools/promtool
  if [ ! -x "$promtool" ]; then
    say "promtool is missing: unpacking it from Debian's prometheus package into target/tools/"
    unpack_promtool "$promtool"
  fi
fi
say "$("$promtool" --version 2>&1 | head -n1)"

say "promtool check config, check rules and test rules (deploy/prometheus/)"
"$promtool" check config deploy/prometheus/prometheus.yml
"$promtool" check rules deploy/prometheus/alerts.yml
"$promtool" test rules deploy/prometheus/alerts.test.yml

say "every dashboard query parses (deploy/grafana/dashboards/)"
for dashboard in deploy/grafana/dashboards/*.json; do
  # Grafana's own variables ($__rate_interval, ...) become a fixed range.
  queries="$work/$(basename "$dashboard" .json)-queries.yml"
  jq '{groups: [{name: "dashboard", rules: [.. | objects | select(has("expr")) | .expr
        | gsub("\\$__[a-z_]+"; "1m")]
        | to_entries | map({record: "dashboard_query_\(.key)", expr: .value})}]}' \
    "$dashboard" >"$queries"
  "$promtool" check rules "$queries"
done
