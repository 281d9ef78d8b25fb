#!/usr/bin/env bash
# soak-ofrep.sh: an OFREP soak on one server while the rules change every
# second. It starts feature-info serve on loopback (SQLite, or DSN=... for
# PostgreSQL), stores 100 flags, and runs
#   wrk -t2 -c64 -d60s --latency
# with requests cycling through a single static flag, a single flag with a
# condition and the bulk answer, while a loop replaces the rules through the
# API every second (each change flips one flag's value). It prints the
# requests made, errors (non-2xx/3xx answers and socket errors), p99 and
# the server's resident memory at the start and the end.
#
# Environment: DURATION (60s), CONNS (64), PORT (18641), DSN (a SQLite
# file in a temporary directory).
set -euo pipefail
DURATION=${DURATION:-60s}
CONNS=${CONNS:-64}
PORT=${PORT:-18641}
GO=${GO:-go}
for tool in wrk curl; do
	command -v "$tool" >/dev/null || { echo "soak-ofrep: $tool is not installed (Debian: apt-get install $tool)" >&2; exit 1; }
done
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/soak-ofrep.XXXXXX")
server= changer=
cleanup() {
	for p in $changer $server; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
(cd "$root" && "$GO" build -o "$work/feature-info" ./cmd/feature-info)
fi="$work/feature-info"
db=${DSN:-$work/soak.db}
admin=sf_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

rules() { # $1: the value of static.flag00
	printf 'static.flag00 default 0 %s\n' "$1"
	for i in $(seq -w 1 49); do printf 'static.flag%s default 0 true\n' "$i"; done
	for i in $(seq -w 0 39); do printf 'cond.flag%s default 10 premium\n    when plan == "pro"\ncond.flag%s default 0 basic\n' "$i" "$i"; done
	for i in $(seq -w 0 9); do printf 'roll.flag%s default 10 true\n    when percent(10)\n' "$i"; done
}
rules true >"$work/soak.rules"
SCOPEFLAGS_ADMIN_KEY=$admin "$fi" serve -db "$db" -addr "127.0.0.1:$PORT" >"$work/serve.out" 2>"$work/serve.log" &
server=$!
base="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
put() { curl -fsS -X PUT "$base/api/v1/rules?comment=soak" -H "Authorization: Bearer $admin" -H 'If-Match: *' -H 'Content-Type: text/plain' --data-binary "@$1" >/dev/null; }
put "$work/soak.rules"
sleep 0.5
rss() { awk '/VmRSS/ {print $2/1024 " MB"}' "/proc/$server/status"; }
rss_start=$(rss)

(
	v=true
	while sleep 1; do
		if [ $v = true ]; then v=false; else v=true; fi
		rules $v >"$work/change.rules"
		put "$work/change.rules" || echo "soak-ofrep: a rule change failed" >&2
	done
) &
changer=$!

cat >"$work/soak.lua" <<'LUA'
local paths = {"/ofrep/v1/evaluate/flags/static.flag00", "/ofrep/v1/evaluate/flags/cond.flag07", "/ofrep/v1/evaluate/flags"}
local body = '{"context":{"targetingKey":"user-123","plan":"pro","country":"US"}}'
local n = 0
request = function()
	n = n + 1
	return wrk.format("POST", paths[n % 3 + 1], {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("OFREP_KEY")}, body)
end
LUA
OFREP_KEY=$admin wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$work/soak.lua" "$base" >"$work/wrk.out"
kill "$changer"; wait "$changer" 2>/dev/null || true; changer=
rss_end=$(rss)
revision=$(curl -fsS -H "Authorization: Bearer $admin" "$base/api/v1/rules" -o /dev/null -w '%header{etag}')
cat "$work/wrk.out"
errors=$(awk '/Non-2xx or 3xx responses/ {n+=$NF} /Socket errors/ {gsub(/,/,""); n+=$4+$6+$8+$10} END {print n+0}' "$work/wrk.out")
p99=$(awk '$1=="99%" {print $2}' "$work/wrk.out")
echo
echo "soak: $DURATION, $CONNS connections, rules changed every second (last revision $revision)"
echo "errors: $errors; p99: $p99; resident memory: $rss_start at the start, $rss_end at the end"
[ "$errors" = 0 ]
