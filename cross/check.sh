#!/usr/bin/env bash
# Proves the aarch64 build: builds it (cross/build.sh), then runs it under
# qemu-aarch64: --version, check-config on the example config, and a netcheck
# against coturn on loopback inside a namespace of its own (no route out, so
# nothing leaves the machine). Prints the stripped binary size.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "cross/check.sh: needs root (packages, namespace)"; exit 1; }
cross/build.sh aarch64
bin="${CROSS_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/cross}/aarch64-unknown-linux-gnu/release/edgereach"
qemu=(qemu-aarch64-static -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib)
echo "cross: $(file -b "$bin" | cut -d, -f1-2); $(stat -c %s "$bin") bytes stripped"
timeout 60 "${qemu[@]}" "$bin" --version
timeout 60 "${qemu[@]}" "$bin" check-config --config config/edgereach.toml

ns="ercross$$"
work=$(mktemp -d)
turn_pid=""
cleanup() {
    if [[ -n $turn_pid ]]; then
        kill "$turn_pid" 2>/dev/null || true
        wait "$turn_pid" 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" turnserver -n --stun-only --no-cli --listening-ip=127.0.0.1 --listening-port=34780 \
    --pidfile="$work/turn.pid" --log-file=stdout --no-tls --no-dtls >"$work/turn.log" 2>&1 &
turn_pid=$!
sed "s#^state_dir = .*#state_dir = \"$work/state\"#; s#^control_socket = .*#control_socket = \"$work/c.sock\"#; s#^stun_servers = .*#stun_servers = [\"127.0.0.1:34780\"]#" \
    config/edgereach.toml >"$work/c.toml"
for _ in $(seq 50); do
    ip netns exec "$ns" ss -uln | grep -q 34780 && break
    sleep 0.1
done
out=$(timeout 60 ip netns exec "$ns" "${qemu[@]}" "$bin" netcheck --format json --config "$work/c.toml")
echo "$out" | grep -q '"udp": true' || { echo "cross: netcheck under qemu failed:"; echo "$out"; exit 1; }
echo "$out" | grep -q '"ipv4": "127.0.0.1:' || { echo "cross: unexpected mapped address:"; echo "$out"; exit 1; }
echo "cross: aarch64 netcheck under qemu: udp true, $(echo "$out" | grep '"ipv4"' | tr -d ' ,')"
