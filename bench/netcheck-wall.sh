#!/usr/bin/env bash
# Wall time of `edgereach netcheck` behind the lab's hard router with no
# port-mapping service at all (LAB_UPNP=no LAB_NATPMP=no LAB_PCP=no), next to
# the report's own "Took" (duration_ms). Several binaries are measured in the
# same lab session, so a before/after comparison sees the same machine load.
#   bench/netcheck-wall.sh                       # target/debug/edgereach, 5 runs
#   BENCH_RUNS=9 bench/netcheck-wall.sh OLD_BIN NEW_BIN
# Each run is `tests/lab/lab.sh exec LABDIR gwhard BIN netcheck ...`, timed
# with `date +%s.%N` around it (so the wall time includes lab.sh's own start).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${BENCH_RUNS:-5}"
[[ $(id -u) -eq 0 ]] || { echo "netcheck-wall.sh: needs root (lab namespaces)"; exit 1; }
bins=("$@")
[[ ${#bins[@]} -gt 0 ]] || bins=("${CARGO_TARGET_DIR:-target}/debug/edgereach")
for b in "${bins[@]}"; do [[ -x $b ]] || { echo "netcheck-wall.sh: $b is not executable"; exit 1; }; done
labdir=$(mktemp -d)
trap 'tests/lab/lab.sh down "$labdir" >/dev/null 2>&1 || true; rm -rf "$labdir"' EXIT
LAB_UPNP=no LAB_NATPMP=no LAB_PCP=no tests/lab/lab.sh up "$labdir" 2>/dev/null
# shellcheck disable=SC1091
source "$labdir/env"
cfg="$labdir/bench.toml"
sed -e "s#^state_dir = .*#state_dir = \"$labdir/state\"#" \
    -e "s#^control_socket = .*#control_socket = \"$labdir/none.sock\"#" \
    -e "s#^stun_servers = .*#stun_servers = [\"$STUN1_IP:$STUN_PORT\", \"$STUN2_IP:$STUN_PORT\"]#" \
    -e "s#^socket = \"/run/tailscale/tailscaled.sock\"#socket = \"$labdir/no-tailscaled.sock\"#" \
    config/edgereach.toml >"$cfg"

stats() { # prints "median min max" of the numbers on stdin
    sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%d %d %d\n", m, a[1], a[NR]}'
}

printf '%-40s %-5s %-24s %s\n' binary runs "wall ms (med min max)" "took ms (med min max)"
for bin in "${bins[@]}"; do
    walls=() tooks=()
    for _ in $(seq "$runs"); do
        t0=$(date +%s.%N)
        out=$(timeout 20 tests/lab/lab.sh exec "$labdir" gwhard "$bin" netcheck --format json --config "$cfg")
        t1=$(date +%s.%N)
        walls+=("$(echo "($t1 - $t0) * 1000" | bc)")
        tooks+=("$(python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["duration_ms"])' <<<"$out")")
    done
    printf '%-40s %-5s %-24s %s\n' "$bin" "$runs" "$(printf '%s\n' "${walls[@]}" | stats)" \
        "$(printf '%s\n' "${tooks[@]}" | stats)"
done
echo "goal: wall median <= 1000 ms behind a router with no mapping service"
