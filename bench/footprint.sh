#!/usr/bin/env bash
# Footprint benchmark.
# 1. Stripped size of the release binary per target (x86_64 native; aarch64
#    and armv7 from cross/build.sh). Goal: <= 5 MiB on aarch64.
# 2. In the namespace lab, with every task of this build on (portmap against
#    miniupnpd, netcheck with the lab DERP map, tailscale driving a real
#    tailscaled that has a peer over a DERP node, admission registered with
#    the reference admission service, MQTT telemetry to mosquitto, the web
#    page):
#    RSS after FOOTPRINT_IDLE seconds idle (goal <= 10 MiB native), idle CPU
#    and wakeups per second, as medians over slices of the idle window.
#    tailscaled, run beside it in the same namespace (userspace networking,
#    its own state dir and socket), is measured over the same window.
#   bench/footprint.sh                              # 10 minutes idle
#   FOOTPRINT_IDLE=20 bench/footprint.sh            # CI
# Knobs: FOOTPRINT_IDLE (s, default 600), FOOTPRINT_SLICES (default 5),
# FOOTPRINT_TARGETS (default "x86_64 aarch64 armv7"), FOOTPRINT_PROVE
# (portmap.prove, default true; false gives the baseline without the proof),
# FOOTPRINT_BIN (measure this edgereach build, e.g. an older one, instead of
# building the tree; the size table is then skipped). Two runs started
# together, one with FOOTPRINT_BIN, measure a change before and after in the
# same window.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "footprint.sh: needs root (lab namespaces, packages)"; exit 1; }
idle=${FOOTPRINT_IDLE:-600}
slices=${FOOTPRINT_SLICES:-5}
targets=${FOOTPRINT_TARGETS:-x86_64 aarch64 armv7}
[[ $idle =~ ^[0-9]+$ && $idle -ge 10 ]] || { echo "footprint.sh: FOOTPRINT_IDLE must be >= 10 s"; exit 2; }
target_root=${CARGO_TARGET_DIR:-target}
build_log=$(mktemp)

if [[ -n ${FOOTPRINT_BIN:-} ]]; then
    [[ -x $FOOTPRINT_BIN ]] || { echo "footprint.sh: FOOTPRINT_BIN $FOOTPRINT_BIN is not executable"; exit 2; }
    targets=""
    echo "== measuring $FOOTPRINT_BIN (no size table)"
else
    echo "== stripped release binary (profile in Cargo.toml)"
    printf '%-34s %10s %8s  %s\n' target bytes MiB goal
fi
cross=()
for t in $targets; do
    case $t in
        x86_64) cargo build --release --locked --quiet 2>>"$build_log" ;;
        aarch64 | armv7) cross+=("$t") ;;
        *) echo "footprint.sh: unknown target $t"; exit 2 ;;
    esac
done
[[ ${#cross[@]} -gt 0 ]] && cross/build.sh "${cross[@]}" 2>>"$build_log" >&2
for t in $targets; do
    case $t in
        x86_64) triple=x86_64-unknown-linux-gnu bin=$target_root/release/edgereach ;;
        aarch64) triple=aarch64-unknown-linux-gnu bin=$target_root/cross/$triple/release/edgereach ;;
        armv7) triple=armv7-unknown-linux-gnueabihf bin=$target_root/cross/$triple/release/edgereach ;;
    esac
    file -b "$bin" | grep -q ', stripped' || { echo "footprint.sh: $bin is not stripped"; exit 1; }
    size=$(stat -c %s "$bin")
    goal=""
    [[ $t == aarch64 ]] && goal=$(awk -v s="$size" 'BEGIN {print (s <= 5 * 1048576) ? "<= 5 MiB: ok" : "<= 5 MiB: OVER"}')
    printf '%-34s %10d %8.2f  %s\n' "$triple" "$size" "$(awk -v s="$size" 'BEGIN {print s / 1048576}')" "$goal"
done
native=${FOOTPRINT_BIN:-$target_root/release/edgereach}
[[ -x $native ]] || cargo build --release --locked --quiet 2>>"$build_log"

work=$(mktemp -d)
labdir=$work/lab
mkdir "$labdir"
daemon_pid=""
cleanup() {
    if [[ -n $daemon_pid ]]; then
        kill "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    tests/lab/lab.sh down "$labdir" >/dev/null 2>&1 || true
    rm -rf "$work" "$build_log"
}
trap cleanup EXIT
tests/lab/lab.sh up "$labdir" 2>"$work/lab-up.log" || { cat "$work/lab-up.log"; exit 1; }
# shellcheck disable=SC1091
source "$labdir/env"
mesh() { tests/lab/mesh.sh "$@" 2>>"$work/mesh.log" || { echo "footprint.sh: mesh.sh $1 failed:"; tail "$work/mesh.log"; exit 1; }; }
ts_pid=""
admission_url=""
ACS_IP=203.0.113.60
ACS_TOKEN=footprint-token-5d1e
if tools=$(tests/lab/install-go-tools.sh 2>>"$build_log"); then
    export EDGEREACH_TOOLS=$tools
    # As deployed: the router mapping is edgereach's job (its tailscale
    # section says so, and is degraded, when tailscaled maps on its own).
    export TS_DISABLE_PORTMAPPER=1
    # A DERP node as every real tailnet has: the home-region connection is
    # part of tailscaled's idle cost, and disco between the hard and the easy
    # NAT needs it to start (CallMeMaybe), so the keepalive gets its pongs.
    export MESH_DERP=yes
    authkey=$(mesh headscale "$labdir")
    mesh join "$labdir" gwhard gw1 "$authkey"
    mesh join "$labdir" gweasy gw2 "$authkey"
    ts_pid=$(cut -d' ' -f1 "$labdir/run/tailscaled-gw1.proc")
    # The admission task needs an admission service: the reference one
    # (edgereach-acs; a lab service, so a debug build will do) assigning the
    # lab's headscale, where gw1 already is: one registration, then idle.
    acs_bin=$target_root/debug/edgereach-acs
    [[ -x $acs_bin ]] || cargo build --locked --quiet --features acs --bin edgereach-acs 2>>"$build_log"
    ip -n "$NS_SRV" addr add "$ACS_IP/24" dev eth0
    mkdir -p "$labdir/acs"
    echo "$ACS_TOKEN" >"$labdir/acs/tokens"
    echo "$ACS_TOKEN" >"$labdir/gw-token"
    cat >"$labdir/acs/acs.toml" <<EOF
listen = "$ACS_IP:8080"
tokens_file = "$labdir/acs/tokens"

[[cluster]]
id = "A"
headscale_url = "http://203.0.113.30:8080"
derp_map = "$labdir/derp.json"
[cluster.headscale_cli]
command = ["env", "HOME=$labdir/headscale", "$EDGEREACH_TOOLS/headscale", "-c", "$labdir/headscale/config.yaml", "--force"]
user = "$(cat "$labdir/headscale/userid")"
EOF
    mesh run "$labdir" acs srv "$(realpath "$acs_bin")" --config "$labdir/acs/acs.toml"
    admission_url="http://$ACS_IP:8080"
else
    echo "footprint.sh: tailscaled could not be installed: no tailscale task and no baseline this run"
fi

# The example config with every capability pointed at the lab. Only keys the
# example has are edited, so the config stays valid as capabilities land.
cfg=$labdir/footprint.toml
sed -e "s#^state_dir = .*#state_dir = \"$labdir/state\"#" \
    -e "s#^control_socket = .*#control_socket = \"$labdir/state/control.sock\"#" \
    -e "s#^derp_map = .*#derp_map = \"$labdir/derp.json\"#" \
    -e "s#^socket = \"/run/tailscale/tailscaled.sock\"#socket = \"$labdir/ts-gw1/tailscaled.sock\"#" \
    -e "s#^mqtt_url = .*#mqtt_url = \"mqtt://$MQTT_IP:$MQTT_PORT\"#" \
    -e "s#^listen = .*#listen = [\"127.0.0.1:8088\", \"$GWHARD_IP:8088\"]#" \
    -e "s#^prove = .*#prove = ${FOOTPRINT_PROVE:-true}#" \
    config/edgereach.toml >"$cfg"
if [[ -n $admission_url ]]; then
    # Registered before the idle window starts (startup_spread 1 s), then
    # re-registered at the default interval.
    sed -i -e "/^\[admission\]/,/^\[/ {
        s#^url = .*#url = \"$admission_url\"#
        s#^account = .*#account = \"footprint\"#
        s#^token_file = .*#token_file = \"$labdir/gw-token\"#
        s#^startup_spread = .*#startup_spread = \"1s\"#
        s#^allow_insecure_http = .*#allow_insecure_http = true#
    }" "$cfg"
fi
"$native" check-config --config "$cfg" >/dev/null
# Unless FOOTPRINT_AS_ROOT=1, the daemon runs as the unprivileged user nobody
# with no capabilities at all (empty bounding set, as the systemd unit has
# it): tailscaled takes it as its operator, and the lab's directories let it
# in. If any task needed a capability, its section would not be ok below.
run_as=()
if [[ ${FOOTPRINT_AS_ROOT:-0} != 1 ]]; then
    if [[ -n $ts_pid ]]; then
        mesh cli "$labdir" gw1 set --operator=nobody
        chmod 711 "$labdir/ts-gw1"
    fi
    chmod 711 "$work" "$labdir"
    mkdir -p "$labdir/state"
    chown nobody: "$labdir/state"
    chmod 644 "$cfg" "$labdir/derp.json"
    if [[ -f $labdir/gw-token ]]; then chown nobody: "$labdir/gw-token"; fi
    run_as=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups --no-new-privs
        --inh-caps=-all --ambient-caps=-all --bounding-set=-all)
fi
ip netns exec "$NS_GWHARD" "${run_as[@]}" "$native" run --config "$cfg" </dev/null >/dev/null 2>"$labdir/edgereach.log" &
daemon_pid=$!
for _ in $(seq 100); do
    "$native" status --json --config "$cfg" >/dev/null 2>&1 && break
    kill -0 "$daemon_pid" 2>/dev/null || { echo "footprint.sh: daemon exited:"; tail "$labdir/edgereach.log"; exit 1; }
    sleep 0.2
done

# The idle window starts once every section has settled: admission
# registered, the keepalive's first pongs in (over DERP, then direct). At
# most 60 s; a section still not ok is shown in the line after the window.
for _ in $(seq 300); do
    "$native" status --json --config "$cfg" 2>/dev/null |
        python3 -c '
import json, sys
s = json.load(sys.stdin)
unsettled = [k for k, v in s.items() if isinstance(v, dict) and v.get("state") not in (None, "ok", "disabled")]
kept = [p for p in s.get("tailscale", {}).get("peers", []) if p.get("keepalive")]
pong = not kept or any(p.get("pings_ok", 0) > 0 for p in kept)
sys.exit(bool(unsettled) or not pong)' 2>/dev/null && break
    sleep 0.2
done

warmup=$((idle / 10))
echo "== idle in the lab: ${idle} s (CPU and wakeups over the last $((idle - warmup)) s in $slices slices)"
procs=(edgereach="$daemon_pid")
[[ -n $ts_pid ]] && procs+=(tailscaled="$ts_pid")
# The end-to-end proof's own traffic over the window (portmap.proof counts
# its STUN payload bytes both ways), scaled to a day.
proof_counts() {
    "$native" status --json --config "$cfg" 2>/dev/null | python3 -c '
import json, sys
p = json.load(sys.stdin)["portmap"]["proof"]
print(p["attempts"], p["bytes_sent"] + p.get("bytes_received", 0), p["state"])'
}
proof_reason() {
    "$native" status --json --config "$cfg" 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["portmap"]["proof"].get("reason") or "-")'
}
read -r p_att0 p_bytes0 _ <<<"$(proof_counts)"
p_t0=$(date +%s.%N)
sample=$(bench/footprint-sample.py "$warmup" "$((idle - warmup))" "$slices" "${procs[@]}")
read -r p_att1 p_bytes1 p_state <<<"$(proof_counts)"
p_t1=$(date +%s.%N)
kill -0 "$daemon_pid" 2>/dev/null || { echo "footprint.sh: the daemon died while idle:"; tail "$labdir/edgereach.log"; exit 1; }
states=$("$native" status --json --config "$cfg" |
    python3 -c 'import json,sys; s=json.load(sys.stdin); print("; ".join(k + " " + str(v.get("state")) + (" (" + str(v.get("reason")) + ")" if v.get("reason") else "") for k, v in s.items() if isinstance(v, dict) and "state" in v))')
who=root
[[ ${#run_as[@]} -gt 0 ]] && who="nobody, no capabilities"
echo "edgereach ran as $who; sections: $states"
printf '%-11s %13s %13s   %-24s %s\n' process "RSS end KiB" "RSS med KiB" "CPU % (med min max)" "wakeups/s (med min max)"
while read -r name rss_end rss_med c_med c_min c_max w_med w_min w_max; do
    printf '%-11s %13s %13s   %-24s %s\n' "$name" "$rss_end" "$rss_med" "$c_med $c_min $c_max" "$w_med $w_min $w_max"
done <<<"$sample"
awk -v a0="$p_att0" -v a1="$p_att1" -v b0="$p_bytes0" -v b1="$p_bytes1" -v t0="$p_t0" -v t1="$p_t1" \
    -v st="$p_state" -v on="${FOOTPRINT_PROVE:-true}" 'BEGIN {
    d = t1 - t0; if (d <= 0) d = 1
    printf "proof (portmap.prove = %s, state %s): %d attempts, %d STUN bytes in %.0f s = %.0f bytes per gateway-day (UDP payload, both ways)\n",
        on, st, a1 - a0, b1 - b0, d, (b1 - b0) / d * 86400 }'
[[ $p_state == proven ]] || echo "proof: $(proof_reason)"
rss=$(awk '$1 == "edgereach" {print $2}' <<<"$sample")
awk -v r="$rss" 'BEGIN {printf "goal: edgereach RSS <= 10 MiB native: %.2f MiB, %s\n", r / 1024, (r <= 10240) ? "ok" : "OVER"}'
