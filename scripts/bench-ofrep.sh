#!/usr/bin/env bash
# bench-ofrep.sh: OFREP load figures over loopback with wrk, comparable to
# the flagd and GO Feature Flag figures in shared/reference/performance.md.
#
# It builds feature-info, stores the 100 flags of those figures in a new
# SQLite database (50 static booleans, 40 string flags with a condition on
# plan, 10 boolean 10% rollouts: ofrep/bench_test.go's LoadRules), starts
# serve on loopback, makes a read key and runs
#   wrk -t2 -cC -dD --latency
# with JSON POST bodies for: a single static flag, a single flag with a
# condition, the bulk answer, and the bulk answer with a matching
# If-None-Match (304); for each connection count in CONNS, ROUNDS rounds,
# interleaved. It prints each round and then the medians (requests/s, p99).
# With CEILING=1 (the default) it also measures a bare net/http server
# (serve's timeouts) writing a constant answer of the same size: what this
# machine's HTTP stack and wrk allow at best, to read the figures against.
#
# Needs wrk (Debian: apt-get install wrk) and curl. Server and wrk share
# the machine's cores, as in the reference figures: run it on a quiet
# machine. Environment: DURATION (10s), CONNS ("16 64"), ROUNDS (3),
# THREADS (2), PORT (18631; the ceiling server PORT+1), CEILING (1),
# KEEP (1: keep the work directory).
set -euo pipefail

DURATION=${DURATION:-10s}
CONNS=${CONNS:-"16 64"}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
PORT=${PORT:-18631}
CEILING=${CEILING:-1}
GO=${GO:-go}

for tool in wrk curl; do
	command -v "$tool" >/dev/null || { echo "bench-ofrep: $tool is not installed (Debian: apt-get install $tool)" >&2; exit 1; }
done

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-ofrep.XXXXXX")
server= ceiling=
cleanup() {
	for p in $server $ceiling; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	if [ "${KEEP:-}" = 1 ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "building feature-info" >&2
(cd "$root" && "$GO" build -o "$work/feature-info" ./cmd/feature-info)
fi="$work/feature-info"
db="$work/bench.db"

# The 100 flags, as ofrep/bench_test.go's LoadRules writes them.
{
	for i in $(seq -w 0 49); do printf 'static.flag%s default 0 true\n' "$i"; done
	for i in $(seq -w 0 39); do
		printf 'cond.flag%s default 10 premium\n    when plan == "pro"\ncond.flag%s default 0 basic\n' "$i" "$i"
	done
	for i in $(seq -w 0 9); do printf 'roll.flag%s default 10 true\n    when percent(10)\n' "$i"; done
} >"$work/bench.rules"
{
	printf '{"flags": ['
	sep=
	for i in $(seq -w 0 49); do printf '%s{"name": "static.flag%s", "type": "boolean", "default": false, "external": true}' "$sep" "$i"; sep=,; done
	for i in $(seq -w 0 39); do printf ',{"name": "cond.flag%s", "type": "string", "default": "none", "external": true}' "$i"; done
	for i in $(seq -w 0 9); do printf ',{"name": "roll.flag%s", "type": "boolean", "default": false, "external": true}' "$i"; done
	printf ']}\n'
} >"$work/bench.json"

"$fi" flags push -db "$db" -comment "bench declarations" "$work/bench.json" >/dev/null
"$fi" import -db "$db" -comment "bench rules" "$work/bench.rules" >/dev/null
key=$("$fi" keys create -db "$db" -scope read -name bench 2>/dev/null)

base="http://127.0.0.1:$PORT"
"$fi" serve -db "$db" -addr "127.0.0.1:$PORT" >"$work/serve.out" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do
	curl -fsS "$base/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
if ! curl -fsS "$base/healthz" >/dev/null || ! kill -0 "$server" 2>/dev/null; then
	echo "bench-ofrep: the server did not start (is port $PORT free?):" >&2; cat "$work/serve.log" >&2; exit 1
fi

body='{"context":{"targetingKey":"user-123","plan":"pro","country":"US"}}'
post() { # path [header...]: the response head and body
	local path=$1; shift
	curl -sS -i -X POST "$base$path" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' "$@" --data "$body"
}
# Check each scenario's answer once, and get the bulk ETag.
fail() { echo "bench-ofrep: $*" >&2; exit 1; }
a=$(post /ofrep/v1/evaluate/flags/static.flag07)
grep -q '"value":true,"reason":"STATIC"' <<<"$a" || fail "static.flag07 did not answer true: $a"
a=$(post /ofrep/v1/evaluate/flags/cond.flag07)
grep -q '"value":"premium","reason":"TARGETING_MATCH"' <<<"$a" || fail "cond.flag07 did not answer premium: $a"
bulk=$(post /ofrep/v1/evaluate/flags)
[ "$(grep -o '"key":' <<<"$bulk" | wc -l)" = 100 ] || fail "the bulk answer does not have 100 flags"
etag=$(tr -d '\r' <<<"$bulk" | sed -n 's/^[Ee][Tt][Aa][Gg]: *//p')
[ -n "$etag" ] || fail "the bulk answer has no ETag"
a=$(post /ofrep/v1/evaluate/flags -H "If-None-Match: $etag")
grep -q '^HTTP/1.1 304' <<<"$a" || fail "If-None-Match did not give 304: $a"

if [ "$CEILING" = 1 ]; then
	# A bare net/http server answering every request with the static
	# flag's answer, with serve's timeouts.
	mkdir -p "$work/ceiling"
	printf 'module ceiling\n\ngo 1.22\n' >"$work/ceiling/go.mod"
	cat >"$work/ceiling/main.go" <<'EOF'
package main

import (
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	body := []byte(os.Args[2])
	srv := &http.Server{Addr: os.Args[1], ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header()["Content-Type"] = []string{"application/json"}
			w.Write(body)
		})}
	panic(srv.ListenAndServe())
}
EOF
	(cd "$work/ceiling" && "$GO" build -o ceiling .)
	answer=$(post /ofrep/v1/evaluate/flags/static.flag07 | tr -d '\r' | sed '1,/^$/d')
	"$work/ceiling/ceiling" "127.0.0.1:$((PORT + 1))" "$answer" 2>"$work/ceiling.log" &
	ceiling=$!
	for _ in $(seq 100); do curl -fsS -X POST "http://127.0.0.1:$((PORT + 1))/" >/dev/null 2>&1 && break; sleep 0.1; done
	kill -0 "$ceiling" 2>/dev/null && [ "$(curl -fsS -X POST "http://127.0.0.1:$((PORT + 1))/")" = "$answer" ] ||
		fail "the ceiling server did not start on port $((PORT + 1)): $(cat "$work/ceiling.log")"
fi

cat >"$work/post.lua" <<'EOF'
-- A JSON POST with an API key and, when OFREP_ETAG is set, If-None-Match.
wrk.method = "POST"
wrk.body = os.getenv("OFREP_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("OFREP_KEY")
local etag = os.getenv("OFREP_ETAG")
if etag ~= nil and etag ~= "" then wrk.headers["If-None-Match"] = etag end
EOF

scenarios=(static condition bulk bulk304)
if [ "$CEILING" = 1 ]; then scenarios+=(ceiling); fi
declare -A paths=(
	[static]=/ofrep/v1/evaluate/flags/static.flag07
	[condition]=/ofrep/v1/evaluate/flags/cond.flag07
	[bulk]=/ofrep/v1/evaluate/flags
	[bulk304]=/ofrep/v1/evaluate/flags
	[ceiling]=/
)
declare -A labels=(
	[static]="single flag, static"
	[condition]="single flag, condition"
	[bulk]="bulk, 100 flags"
	[bulk304]="bulk, matching If-None-Match (304)"
	[ceiling]="bare net/http, constant answer (ceiling)"
)
declare -A rps p99s

# to_ms converts wrk's latency ("812.00us", "3.21ms", "1.02s") to ms.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
		printf "%.2f", n }'
}

echo "$(nproc) cores, $(uname -sr), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), go $("$GO" env GOVERSION)" >&2
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# Other processes on the machine distort the figures. Before each run the
# script waits (up to a minute) for the machine to be idle; after it, it
# computes the CPU that neither the servers nor wrk used ("other", in % of
# the machine) and runs again, up to twice, when that was over OTHER_MAX.
OTHER_MAX=${OTHER_MAX:-10}
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
proc_cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
children_cpu() { awk '{print $16 + $17}' /proc/$$/stat; }
ours_cpu() {
	local n=$(($(proc_cpu "$server") + $(children_cpu)))
	[ -n "$ceiling" ] && n=$((n + $(proc_cpu "$ceiling")))
	echo "$n"
}
wait_quiet() {
	local n b1 t1 b2 t2
	for n in $(seq 30); do
		read -r b1 t1 < <(busy); sleep 2; read -r b2 t2 < <(busy)
		[ $((100 * (b2 - b1) / (t2 - t1))) -le 10 ] && return
	done
	echo "(the machine did not become idle)" >&2
}
others=()
for round in $(seq "$ROUNDS"); do
	for c in $CONNS; do
		for s in "${scenarios[@]}"; do
			tag= url=$base
			[ "$s" = bulk304 ] && tag=$etag
			[ "$s" = ceiling ] && url="http://127.0.0.1:$((PORT + 1))"
			for attempt in 1 2 3; do
				wait_quiet
				read -r b1 t1 < <(busy); o1=$(ours_cpu)
				out=$(OFREP_KEY=$key OFREP_BODY=$body OFREP_ETAG=$tag \
					wrk -t"$THREADS" -c"$c" -d"$DURATION" --latency -s "$work/post.lua" "$url${paths[$s]}")
				read -r b2 t2 < <(busy); o2=$(ours_cpu)
				other=$((100 * (b2 - b1 - (o2 - o1)) / (t2 - t1)))
				[ "$other" -lt 0 ] && other=0
				[ "$other" -le "$OTHER_MAX" ] && break
				echo "round $round $s -c$c: other processes used $other% of the machine; again" >&2
			done
			if grep -qE 'Non-2xx or 3xx responses|Socket errors' <<<"$out"; then
				fail "$s -c$c had errors: $out"
			fi
			r=$(awk '/^Requests\/sec:/ {printf "%d", $2}' <<<"$out")
			p=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
			rps[$s,$c]+="$r "
			p99s[$s,$c]+="$p "
			others+=("$other")
			printf 'round %d  %-10s -c%-3s %8d req/s  p99 %8s ms  (other load %d%%)\n' "$round" "$s" "$c" "$r" "$p" "$other" >&2
		done
	done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

rss=$(awk '/^VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$server/status")
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); server resident memory: $rss;" \
	"other processes used at most $(printf '%s\n' "${others[@]}" | sort -g | tail -1)% of the machine during a run" >&2
echo
echo "| scenario | connections | req/s (median of $ROUNDS) | p99 ms (median) |"
echo "|---|---|---|---|"
for s in "${scenarios[@]}"; do
	for c in $CONNS; do
		printf '| %s | %s | %s | %s |\n' "${labels[$s]}" "$c" \
			"$(median <<<"${rps[$s,$c]}")" "$(median <<<"${p99s[$s,$c]}")"
	done
done
