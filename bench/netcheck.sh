#!/usr/bin/env bash
# Netcheck benchmark: full report duration and bytes sent, behind the lab's
# hard and easy NAT routers. Prints medians (and min/max) over N runs.
#   bench/netcheck.sh            # N=10
#   BENCH_RUNS=30 bench/netcheck.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${BENCH_RUNS:-10}"
[[ $(id -u) -eq 0 ]] || { echo "netcheck.sh: needs root (lab namespaces)"; exit 1; }
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/edgereach"
labdir=$(mktemp -d)
trap 'tests/lab/lab.sh down "$labdir" >/dev/null 2>&1 || true; rm -rf "$labdir"' EXIT
tests/lab/lab.sh up "$labdir" 2>/dev/null
# shellcheck disable=SC1091
source "$labdir/env"
cfg="$labdir/bench.toml"
# The lab's two STUN servers (the example config names none), no tailscaled.
sed -e "s#^state_dir = .*#state_dir = \"$labdir/state\"#" \
    -e "s#^control_socket = .*#control_socket = \"$labdir/none.sock\"#" \
    -e "s#^stun_servers = .*#stun_servers = [\"$STUN1_IP:$STUN_PORT\", \"$STUN2_IP:$STUN_PORT\"]#" \
    -e "s#^socket = \"/run/tailscale/tailscaled.sock\"#socket = \"$labdir/no-tailscaled.sock\"#" \
    config/edgereach.toml >"$cfg"

stats() { # prints "median min max" of the numbers on stdin
    sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m, a[1], a[NR]}'
}

printf '%-6s %-12s %-26s %-20s %s\n' host "runs" "duration ms (med min max)" "bytes (med min max)" "filtering / hard NAT"
for host in gwhard gweasy; do
    ns_var="NS_${host^^}"
    out="$labdir/$host.jsonl"
    for _ in $(seq "$runs"); do
        timeout 10 ip netns exec "${!ns_var}" "$bin" netcheck --format json --config "$cfg" | tr -d '\n' >>"$out"
        echo >>"$out"
    done
    dur=$(python3 -c 'import json,sys; [print(json.loads(l)["duration_ms"]) for l in open(sys.argv[1])]' "$out" | stats)
    bytes=$(python3 -c 'import json,sys; [print(json.loads(l)["bytes_sent"]) for l in open(sys.argv[1])]' "$out" | stats)
    kind=$(python3 -c 'import json,sys; l=[json.loads(x) for x in open(sys.argv[1])][-1]; print(l["filtering"], l["mapping_varies_by_dest_ip"])' "$out")
    printf '%-6s %-12s %-26s %-20s %s\n' "$host" "$runs" "$dur" "$bytes" "$kind"
done
echo "goal: full report median <= 1000 ms in the lab (tailscale allows itself 5000 ms)"
