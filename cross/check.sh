#!/usr/bin/env bash
# Proves the ARM builds: builds them (cross/build.sh), then runs each under
# qemu-user: --version, check-config on the example config, and a netcheck
# against coturn on loopback inside a namespace of its own (no route out, so
# nothing leaves the machine). Prints each stripped binary's size.
#   cross/check.sh                 # aarch64 and armv7
#   cross/check.sh aarch64
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "cross/check.sh: needs root (packages, namespace)"; exit 1; }
arches=("${@:-aarch64}")
[[ $# -eq 0 ]] && arches=(aarch64 armv7)
cross/build.sh "${arches[@]}"
dir="${CROSS_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/cross}"

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

for arch in "${arches[@]}"; do
    case $arch in
        aarch64)
            bin="$dir/aarch64-unknown-linux-gnu/release/edgereach"
            # Without LD_LIBRARY_PATH the multiarch libc and the cross loader
            # get mixed and it hangs in pthread_create.
            qemu=(qemu-aarch64-static -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib)
            ;;
        armv7)
            bin="$dir/armv7-unknown-linux-gnueabihf/release/edgereach"
            qemu=(qemu-arm-static -L /usr/arm-linux-gnueabihf -E LD_LIBRARY_PATH=/usr/arm-linux-gnueabihf/lib)
            ;;
    esac
    echo "cross: $arch: $(file -b "$bin" | cut -d, -f1-2); $(stat -c %s "$bin") bytes stripped"
    timeout 60 "${qemu[@]}" "$bin" --version
    timeout 60 "${qemu[@]}" "$bin" check-config --config config/edgereach.toml
    out=$(timeout 60 ip netns exec "$ns" "${qemu[@]}" "$bin" netcheck --format json --config "$work/c.toml")
    echo "$out" | grep -q '"udp": true' || { echo "cross: $arch netcheck under qemu failed:"; echo "$out"; exit 1; }
    echo "$out" | grep -q '"ipv4": "127.0.0.1:' || { echo "cross: $arch: unexpected mapped address:"; echo "$out"; exit 1; }
    echo "cross: $arch netcheck under qemu: udp true, $(echo "$out" | grep '"ipv4"' | tr -d ' ,')"
done
if dpkg --print-foreign-architectures | grep -qx armhf; then
    echo "cross: armhf is registered as a dpkg architecture; cross/build.sh must not leave it" >&2
    exit 1
fi
