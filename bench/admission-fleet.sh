#!/usr/bin/env bash
# Fleet bench: 10,000 gateways' registration logic (examples/admission_fleet.rs:
# the daemon's start spread, client and backoff) in one process, over real
# HTTP on loopback, against the reference admission service (edgereach-acs),
# right after a simultaneous power cut. Prints, per mode, the median over the
# runs of the peak requests/s the service counted and of the time until all
# gateways are registered.
#
# Modes, each with a fresh service:
#   no-spread   baseline from the same run: everyone registers at once
#   default     the configuration defaults (startup_spread 90s, gateways
#               with a stored assignment: the power-cut case)
#   first-boot  the defaults for gateways never assigned before (their
#               start delay is capped at 5 s), for reference
#
#   bench/admission-fleet.sh                     # 3 runs per mode, ~6 min
#   AGENTS=2000 RUNS=1 bench/admission-fleet.sh  # a quick look
#
# Loopback only; nothing leaves the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

AGENTS=${AGENTS:-10000}
RUNS=${RUNS:-3}
MODES=${MODES:-"no-spread default first-boot"}
PORT=${PORT:-18480}

cargo build -q --features acs --bin edgereach-acs --example admission_fleet
BIN=${CARGO_TARGET_DIR:-target}/debug
# One connection per attempt, thousands at once in the baseline.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
acs_pid=
cleanup() {
    [[ -n $acs_pid ]] && kill "$acs_pid" 2>/dev/null && wait "$acs_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/acs.toml" <<EOF
listen = "127.0.0.1:$PORT"

[[cluster]]
id = "A"
headscale_url = "https://hs-a.example.invalid"
auth_key = "bench-key"
EOF

start_acs() {
    "$BIN/edgereach-acs" --config "$work/acs.toml" 2>>"$work/acs.log" &
    acs_pid=$!
    for _ in $(seq 50); do
        curl -fsS -m 1 "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "admission-fleet: edgereach-acs did not start; see $work/acs.log" >&2
    exit 1
}

stop_acs() {
    kill "$acs_pid" 2>/dev/null || true
    wait "$acs_pid" 2>/dev/null || true
    acs_pid=
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

printf 'agents %s, %s run(s) per mode, debug build, %s\n' "$AGENTS" "$RUNS" "$(date -u +%FT%TZ)"
printf '%-11s %4s %14s %16s %8s %9s\n' mode run "peak req/s" "all registered" retries requests
for mode in $MODES; do
    : >"$work/$mode.jsonl"
    for run in $(seq "$RUNS"); do
        start_acs
        case $mode in
        no-spread) args=("$AGENTS" 0s) ;;
        default) args=("$AGENTS") ;;
        first-boot) args=("$AGENTS" 90s fresh) ;;
        *) echo "unknown mode $mode" >&2; exit 2 ;;
        esac
        line=$("$BIN/examples/admission_fleet" "http://127.0.0.1:$PORT" "${args[@]}")
        stop_acs
        printf '%s\n' "$line" >>"$work/$mode.jsonl"
        printf '%-11s %4s %14s %15ss %8s %9s\n' "$mode" "$run" \
            "$(jq -r .service_peak_rps <<<"$line")" "$(jq -r .all_registered_s <<<"$line")" \
            "$(jq -r .retries <<<"$line")" "$(jq -r .service_requests <<<"$line")"
    done
done
echo
printf '%-11s %18s %22s   (medians over %s runs)\n' mode "peak req/s" "all registered (s)" "$RUNS"
for mode in $MODES; do
    printf '%-11s %18s %22s\n' "$mode" \
        "$(jq -r .service_peak_rps "$work/$mode.jsonl" | median)" \
        "$(jq -r .all_registered_s "$work/$mode.jsonl" | median)"
done
echo "goal with default settings: peak <= 200 req/s, all registered within 120 s"
