#!/usr/bin/env bash
# make dashboard-picture: draws config/monitoring/grafana-dashboard.json
# from a real run into docs/dashboard.png. A local 3-instance cluster
# (hack/dashboard/cluster.yaml) is scraped by Debian's Prometheus, run as
# its own user with the local scrape configuration of docs/operations.md
# (TLS 1.3, the pgward-metrics client certificate), while pgbench writes
# at a fixed rate; halfway the primary's postmaster is killed (kill -9) and
# pgward fails over; the writes go on against the new primary. Then
# hack/dashboard/render.mjs queries Prometheus for every panel over the
# whole run and headless Chromium (Debian's, driven by playwright-core,
# as an unprivileged user with its sandbox) takes the picture.
#
# Needs: Debian's prometheus and chromium, Node.js and npm (playwright-core
# and uPlot, pinned in hack/dashboard/package.json, go to
# ~/.cache/pgward/dashboard, never into the repository), PostgreSQL 15's
# pgbench. Not part of make test or CI (Chromium is big).
#
#   OUT=docs/dashboard.png PHASE_SECONDS=60 RATE=150 hack/dashboard-picture.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-docs/dashboard.png}
PHASE_SECONDS=${PHASE_SECONDS:-60}
RATE=${RATE:-150}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
for c in prometheus node npm /usr/bin/chromium "$PGBIN/pgbench" setpriv; do
  command -v "$c" >/dev/null || { echo "dashboard-picture: $c missing (apt-get install prometheus chromium nodejs npm)" >&2; exit 1; }
done

cache=${XDG_CACHE_HOME:-$HOME/.cache}/pgward/dashboard
mkdir -p "$cache"
cp hack/dashboard/package.json "$cache/"
(cd "$cache" && npm install --no-audit --no-fund --silent)

work=$(mktemp -d /tmp/pgward-dashboard-XXXXXX)
chmod 0711 "$work"
dir=$work/cluster
prom_pid=
cleanup() {
  set +e
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
  bin/pgward local down --purge --dir "$dir" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# Unprivileged users for Prometheus and for the browser.
if [ "$(id -u)" -eq 0 ]; then
  as_prom=(setpriv --reuid=prometheus --regid=prometheus --init-groups)
  as_render=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
  prom_owner=prometheus render_owner=nobody:nogroup
else
  as_prom=() as_render=() prom_owner=$(id -un) render_owner=$(id -un)
fi

bin/pgward local up -f hack/dashboard/cluster.yaml --dir "$dir"
status=$(bin/pgward local status -o json --dir "$dir")

# Prometheus' directory as docs/operations.md sets it up, and its config.
pd=$work/prometheus
install -d -o "$prom_owner" -m 0700 "$pd" "$pd/pgward" "$pd/data"
S=$dir/secrets
install -o "$prom_owner" -m 0600 "$S/cluster-example-ca/ca.crt" "$pd/pgward/ca.crt"
install -o "$prom_owner" -m 0600 "$S/cluster-example-metrics/tls.crt" "$S/cluster-example-metrics/tls.key" "$pd/pgward/"
node -e '
const st = JSON.parse(process.argv[1]), d = process.argv[2];
const lines = ["global: {scrape_interval: 2s, scrape_timeout: 2s, evaluation_interval: 2s}", "scrape_configs:",
  "  - job_name: pgward", "    scheme: https", "    metrics_path: /metrics", "    tls_config:",
  `      ca_file: ${d}/pgward/ca.crt`, `      cert_file: ${d}/pgward/tls.crt`, `      key_file: ${d}/pgward/tls.key`,
  "      server_name: localhost", "      min_version: TLS13", "    static_configs:"];
for (const i of st.instances) {
  lines.push(`      - targets: ["${new URL(i.metricsURL).host}"]`, `        labels: {pgward_cluster: cluster-example, instance: ${i.name}}`);
}
process.stdout.write(lines.join("\n") + "\n");
' "$status" "$pd" > "$pd/prometheus.yml"
chown "$prom_owner" "$pd/prometheus.yml"; chmod 0600 "$pd/prometheus.yml"
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
"${as_prom[@]}" prometheus --config.file="$pd/prometheus.yml" --storage.tsdb.path="$pd/data" \
  --web.listen-address="127.0.0.1:$port" --web.console.templates= --web.console.libraries= --log.level=warn \
  >"$work/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 60); do
  up=$(curl -fsS "http://127.0.0.1:$port/api/v1/query?query=sum(up)" 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).data.result[0].value[1])}catch{console.log(0)}})' || true)
  [ "$up" = 3 ] && break
  sleep 1
done
[ "$up" = 3 ] || { echo "dashboard-picture: Prometheus did not get 3 targets up:" >&2; cat "$work/prometheus.log" >&2; exit 1; }
echo "dashboard-picture: Prometheus scrapes 3 instances over TLS (127.0.0.1:$port)"

uri=$(bin/pgward local uri app --dir "$dir")
start=$(date +%s)
"$PGBIN/pgbench" -q -i -s 5 "$uri" >/dev/null 2>&1
echo "dashboard-picture: writing ${RATE} tx/s for ${PHASE_SECONDS}s"
"$PGBIN/pgbench" -n -c 4 -R "$RATE" -T "$PHASE_SECONDS" "$uri" >"$work/pgbench1.log" 2>&1 || true
primary=$(bin/pgward local status -o json --dir "$dir" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).currentPrimary))')
pid=$(head -n 1 "$dir/instances/$primary/data/postmaster.pid")
failover_at=$(date +%s)
kill -9 "$pid"
echo "dashboard-picture: kill -9 of $primary's postmaster ($pid)"
for _ in $(seq 60); do
  now=$(bin/pgward local status -o json --dir "$dir" 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const j=JSON.parse(s);console.log(j.instances.some(i=>i.name===j.currentPrimary&&i.role==="primary"&&i.state==="running")?j.currentPrimary:"")}catch{console.log("")}})' || true)
  [ -n "$now" ] && [ "$now" != "$primary" ] && break
  sleep 0.5
done
[ -n "$now" ] && [ "$now" != "$primary" ] || { echo "dashboard-picture: no new primary 30 s after the kill" >&2; exit 1; }
echo "dashboard-picture: the new primary is $now; writing for ${PHASE_SECONDS}s more"
"$PGBIN/pgbench" -n -c 4 -R "$RATE" -T "$PHASE_SECONDS" "$uri" >"$work/pgbench2.log" 2>&1 || true
sleep 10
end=$(date +%s)

# Render as an unprivileged user with Chromium's sandbox: the page, the
# dashboard and the modules copied where that user can read them.
rd=$work/render
mkdir -p "$rd"
cp hack/dashboard/page.html hack/dashboard/page.js hack/dashboard/render.mjs config/monitoring/grafana-dashboard.json "$rd/"
cp -r "$cache/node_modules" "$rd/"
chown -R "$render_owner" "$rd"
(cd "$rd" && "${as_render[@]}" env HOME="$rd" TMPDIR="$rd" node render.mjs --prometheus "http://127.0.0.1:$port" \
  --dashboard "$rd/grafana-dashboard.json" --cluster cluster-example --start "$start" --end "$end" --step 2 \
  --note "pgbench ${RATE} tx/s; kill -9 of ${primary}'s postmaster at $(date -u -d "@$failover_at" +%H:%M:%S), new primary ${now}" \
  --out "$rd/dashboard.png")
cp "$rd/dashboard.png" "$OUT"
echo "dashboard-picture: wrote $OUT"
