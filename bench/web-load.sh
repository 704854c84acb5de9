#!/usr/bin/env bash
# Load on the status page with wrk, in a private network namespace on
# loopback: requests/s and p99 for /api/status (and /healthz as the baseline:
# the same server without the snapshot), medians over runs, and the daemon's
# RSS (VmRSS, and RssAnon: the heap and stacks, what the load can change)
# idle, right after the load, and after a quiet period in which the daemon
# gives the freed buffers back (goal: back to the idle level).
#
#   sudo bench/web-load.sh                  # 3 runs of 10 s per endpoint
#   sudo WEB_LOAD_RUNS=1 WEB_LOAD_SECONDS=3 bench/web-load.sh
#   sudo EDGEREACH_BIN=path/to/other/edgereach bench/web-load.sh   # compare builds
#   sudo WEB_LOAD_CONNECTIONS=200 bench/web-load.sh                 # wrk -c200 (at most 256)
#
# This run's config raises web.requests_per_minute so that wrk measures the
# server rather than the 429 answer (one client address sends everything),
# and allows wrk's connections (64 unless told) from that one address.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "web-load.sh: needs root (network namespace)"; exit 1; }
runs="${WEB_LOAD_RUNS:-3}"
secs="${WEB_LOAD_SECONDS:-10}"
quiet="${WEB_LOAD_QUIET:-7}"
conns="${WEB_LOAD_CONNECTIONS:-64}"
command -v wrk >/dev/null || { echo "web-load.sh: wrk missing (tests/lab/install-deps.sh)"; exit 1; }
if [[ -z ${EDGEREACH_BIN:-} ]]; then
    cargo build --release --quiet
    EDGEREACH_BIN="${CARGO_TARGET_DIR:-target}/release/edgereach"
fi
bin=$(realpath "$EDGEREACH_BIN")
work=$(mktemp -d)
ns="erload$$"
daemon_pid=""
cleanup() {
    [[ -n $daemon_pid ]] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up

cfg="$work/edgereach.toml"
sed -e "s#^state_dir = .*#state_dir = \"$work/state\"#" \
    -e "s#^control_socket = .*#control_socket = \"$work/control.sock\"#" \
    -e '/^\[portmap\]/,/^\[/ s#^enabled = true#enabled = false#' \
    -e 's#^stun_servers = .*#stun_servers = []#' \
    -e "s#^socket = \"/run/tailscale/tailscaled.sock\"#socket = \"$work/no-tailscaled.sock\"#" \
    -e 's#^listen = .*#listen = ["127.0.0.1:8088"]#' \
    -e 's#^requests_per_minute = .*#requests_per_minute = 600000000#' \
    -e 's#^max_connections_per_ip = .*#max_connections_per_ip = 256#' \
    config/edgereach.toml >"$cfg"
ip netns exec "$ns" "$bin" run --config "$cfg" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
    ip netns exec "$ns" /usr/bin/python3 tests/lab/webclient.py req GET http://127.0.0.1:8088/healthz </dev/null 2>/dev/null | head -1 | grep -q 200 && break
    sleep 0.1
done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$daemon_pid/status"; }
anon() { awk '/^RssAnon/ {print $2}' "/proc/$daemon_pid/status"; }
threads() { awk '/^Threads/ {print $2}' "/proc/$daemon_pid/status"; }
web_counter() { # a counter from the web status section; "-" if this build lacks it
    "$bin" status --json --config "$cfg" | /usr/bin/python3 -c \
        'import json,sys; print(json.load(sys.stdin)["web"].get(sys.argv[1], "-"))' "$1"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
to_ms() { # wrk latency like 1.23ms / 850.00us / 1.02s -> ms
    awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}'
}
sleep 2
idle=$(rss) idle_anon=$(anon)
# First use: one second of 8 connections per endpoint (enough for a heap
# trim), so that what a first request allocates once and keeps (glibc's
# per-thread caches, lazily built state) is in the level the load is
# compared with, and only what the load adds is left to measure.
for path in /healthz /api/status; do
    ip netns exec "$ns" wrk -t2 -c8 -d1s "http://127.0.0.1:8088$path" >/dev/null
done
sleep 7
warm=$(rss) warm_anon=$(anon) warm_threads=$(threads)
bytes=$(ip netns exec "$ns" /usr/bin/python3 tests/lab/webclient.py req GET http://127.0.0.1:8088/api/status </dev/null | tail -n +2 | wc -c)
printf 'edgereach %s, /api/status is %s bytes; wrk -t2 -c%s for %ss, %s runs per endpoint\n' "$("$bin" --version | awk '{print $2}')" "$bytes" "$conns" "$secs" "$runs"
printf '%-12s %-14s %-12s %-12s %s\n' endpoint "requests/s" "p50 ms" "p99 ms" "non-2xx"
peak=0
per_run=""
for path in /healthz /api/status; do
    : >"$work/rps"; : >"$work/p50"; : >"$work/p99"; : >"$work/bad"
    for _ in $(seq "$runs"); do
        out=$(ip netns exec "$ns" wrk -t2 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:8088$path")
        awk '/^Requests\/sec/ {print $2}' <<<"$out" >>"$work/rps"
        awk '$1=="50%" {print $2}' <<<"$out" | to_ms >>"$work/p50"
        awk '$1=="99%" {print $2}' <<<"$out" | to_ms >>"$work/p99"
        { grep -E '^ +Non-2xx' <<<"$out" | awk '{print $NF}' || true; echo 0; } | head -1 >>"$work/bad"
        r=$(rss)
        per_run="$per_run $r/$(anon)"
        if ((r > peak)); then peak=$r; fi
    done
    printf '%-12s %-14s %-12s %-12s %s\n' "$path" "$(median <"$work/rps")" "$(median <"$work/p50")" \
        "$(median <"$work/p99")" "$(median <"$work/bad")"
done
after=$(rss) after_anon=$(anon) after_threads=$(threads) trims_before=$(web_counter heap_trims)
# The daemon trims its heap once no new connection came for 2 s after a
# burst (web/trim.rs); WEB_LOAD_QUIET (default 7 s) leaves room for a slow machine.
sleep "$quiet"
settled=$(rss) settled_anon=$(anon)
echo "threads: $warm_threads idle after first use, $after_threads right after the load, $(threads) after the quiet period"
printf 'RSS kB (VmRSS/RssAnon) after each run:%s; highest VmRSS %s\n' "$per_run" "$peak"
printf '%-26s %-8s %s\n' "RSS kB" VmRSS RssAnon
printf '%-26s %-8s %s\n' "idle, fresh" "$idle" "$idle_anon" "idle after first use" "$warm" "$warm_anon" \
    "right after the load" "$after" "$after_anon" "after ${quiet} s quiet" "$settled" "$settled_anon"
printf 'connections open %s; heap trims %s right after the load, %s after the quiet period\n' \
    "$(web_counter connections_open)" "$trims_before" "$(web_counter heap_trims)"
echo "goal: RSS back to the idle level once the connections are gone; left over after the quiet"
printf 'period, against idle after first use: VmRSS %+d kB, RssAnon %+d kB (the load had added %+d kB);\n' \
    $((settled - warm)) $((settled_anon - warm_anon)) $((after_anon - warm_anon))
printf 'against the fresh idle: VmRSS %+d kB, RssAnon %+d kB (first use kept %+d kB)\n' \
    $((settled - idle)) $((settled_anon - idle_anon)) $((warm_anon - idle_anon))
