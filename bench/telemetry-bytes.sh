#!/usr/bin/env bash
# MQTT telemetry: bytes on the wire per gateway-day at the default settings,
# keepalive included, measured in the namespace lab against real mosquitto.
#
# A day is too long to wait for, so every period of the defaults is divided
# by the same factor F=24 (netcheck 5m -> 12.5s, status 15m -> 37.5s,
# keepalive 120s -> 5s): a WINDOW of 150 s then holds what one hour holds at
# the defaults, and bytes/day = bytes in the window x 86400 / (WINDOW x F).
# Events are counted as they come (a quiet site makes few; see the note).
# Every frame between the gateway's router and the broker is counted, as
# tcpdump sees it on the broker's interface: Ethernet + IP + TCP + MQTT.
# The baseline, from the same run: an idle MQTT client with the same scaled
# keepalive (mosquitto_sub -k 5), i.e. what the connection alone costs.
# Each format in BENCH_FORMATS (default "json sparkplug") is measured with a
# fresh daemon and state directory: the JSON topics, then the Sparkplug B
# edge node (telemetry.format = "sparkplug"), and both are reported.
#
#   sudo bench/telemetry-bytes.sh                 # 3 windows of 150 s per format
#   sudo BENCH_RUNS=5 BENCH_WINDOW=300 bench/telemetry-bytes.sh
#   sudo BENCH_FORMATS=sparkplug bench/telemetry-bytes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${BENCH_RUNS:-3}"
window="${BENCH_WINDOW:-150}"
formats="${BENCH_FORMATS:-json sparkplug}"
factor=24
[[ $(id -u) -eq 0 ]] || { echo "telemetry-bytes.sh: needs root (lab namespaces)"; exit 1; }
command -v tcpdump >/dev/null || { echo "telemetry-bytes.sh: needs tcpdump (tests/lab/install-deps.sh)"; exit 1; }
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/edgereach"
labdir=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    tests/lab/lab.sh down "$labdir" >/dev/null 2>&1 || true
    rm -rf "$labdir"
}
trap cleanup EXIT
tests/lab/lab.sh up "$labdir" 2>/dev/null
# shellcheck disable=SC1091
source "$labdir/env"

measure() {
local format=$1 filter level
case $format in
    json) filter='edgereach/#'; level=4 ;;
    sparkplug) filter='spBv1.0/#'; level=3 ;;
    *) echo "telemetry-bytes.sh: unknown format $format"; exit 1 ;;
esac
cfg="$labdir/bench-$format.toml"
sed -e "s#^state_dir = .*#state_dir = \"$labdir/state-$format\"#" \
    -e "s#^control_socket = .*#control_socket = \"$labdir/control.sock\"#" \
    -e "s#^mqtt_url = .*#mqtt_url = \"mqtt://$MQTT_IP:$MQTT_PORT\"#" \
    -e "s#^stun_servers = .*#stun_servers = [\"$STUN1_IP:$STUN_PORT\", \"$STUN2_IP:$STUN_PORT\"]#" \
    -e "s#^socket = \"/run/tailscale/tailscaled.sock\"#socket = \"$labdir/no-tailscaled.sock\"#" \
    -e "s#^interval = \"5m\"#interval = \"12500ms\"#" \
    -e "s#^status_interval = .*#status_interval = \"37500ms\"#" \
    -e "s#^keepalive = .*#keepalive = \"5s\"#" \
    -e "s#^\#format = \"json\"#format = \"$format\"#" \
    config/edgereach.toml >"$cfg"
grep -q "^format = \"$format\"" "$cfg" ||
    { echo "telemetry-bytes.sh: could not set the format"; exit 1; }
grep -q 'interval = "12500ms"' "$cfg" && grep -q 'keepalive = "5s"' "$cfg" ||
    { echo "telemetry-bytes.sh: could not scale the example config"; exit 1; }

ip netns exec "$NS_GWHARD" "$bin" run --config "$cfg" 2>"$labdir/daemon-$format.log" &
local daemon=$!
pids+=("$daemon")
# The baseline: an idle client with the same keepalive, from the peer host.
ip netns exec "$NS_PEER" mosquitto_sub -h "$MQTT_IP" -k 5 -t baseline/none >/dev/null 2>&1 &
local basesub=$!
pids+=("$basesub")
# What the daemon publishes, to count messages and payload bytes per topic
# (from another host, so its traffic is in neither count).
ip netns exec "$NS_GWEASY" mosquitto_sub -h "$MQTT_IP" -t "$filter" -F '%U %t %l' >"$labdir/sub-$format.txt" 2>/dev/null &
local sub=$!
pids+=("$sub")

for _ in $(seq 300); do
    if "$bin" status --json --config "$cfg" 2>/dev/null | grep -Eq '"connected": ?true'; then break; fi
    sleep 0.1
done
"$bin" status --json --config "$cfg" | grep -Eq '"connected": ?true' ||
    { echo "telemetry-bytes.sh: daemon did not connect; log:"; tail -20 "$labdir/daemon-$format.log"; exit 1; }
echo "== $format: warm-up 30 s (start events, first reports)..."
sleep 30

local run pcap tpid t0 t1 gw base pings pubs acks msgs day med min max bmed
day_list=() base_list=()
stats() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%d %d %d\n", m, a[1], a[NR]}'; }
scale() { awk -v b="$1" -v w="$window" -v f="$factor" 'BEGIN {printf "%d\n", b * 86400 / (w * f)}'; }

printf '\n%-4s %-10s %-10s %-9s %-9s %-9s %-30s %s\n' run "gw bytes" "base bytes" "pings" "publishes" "acks" "messages (topic:count/payload)" "-> gw bytes/day"
for run in $(seq "$runs"); do
    pcap="$labdir/$format-run$run.pcap"
    ip netns exec "$NS_SRV" tcpdump -i eth0 -nn -s 128 -w "$pcap" "tcp port $MQTT_PORT" 2>/dev/null &
    tpid=$!
    pids+=("$tpid")
    sleep 1
    t0=$(date +%s.%N)
    sleep "$window"
    t1=$(date +%s.%N)
    kill "$tpid"; wait "$tpid" 2>/dev/null || true
    # frame length (the first "length N") and TCP payload (the last one)
    tcpdump -r "$pcap" -nn -e 2>/dev/null | awk -v gw="$HARD_WAN_IP" -v base="$PEER_IP" '
        { n = split($0, parts, "length "); frame = parts[2] + 0; payload = parts[n] + 0
          who = (index($0, gw ".") ? "gw" : (index($0, base ".") ? "base" : "other"))
          bytes[who] += frame
          if (who == "gw") { if (payload == 2) pings++; else if (payload == 4) acks++; else if (payload > 4) pubs++ } }
        END { printf "%d %d %d %d %d\n", bytes["gw"], bytes["base"], pings, pubs, acks }' >"$labdir/$format-run$run.txt"
    read -r gw base pings pubs acks <"$labdir/$format-run$run.txt"
    msgs=$(awk -v a="$t0" -v b="$t1" -v lv="$level" '$1 >= a && $1 < b { split($2, t, "/"); k = t[lv]; c[k]++; s[k] += $3 }
        END { for (k in c) printf "%s:%d/%d ", k, c[k], s[k] / c[k] }' "$labdir/sub-$format.txt")
    day=$(scale "$gw")
    day_list+=("$day"); base_list+=("$(scale "$base")")
    printf '%-4s %-10s %-10s %-9s %-9s %-9s %-30s %s\n' "$run" "$gw" "$base" "$pings" "$pubs" "$acks" "$msgs" "$day"
done

read -r med min max < <(printf '%s\n' "${day_list[@]}" | stats)
read -r bmed _ _ < <(printf '%s\n' "${base_list[@]}" | stats)
kill "$daemon" "$sub" "$basesub" 2>/dev/null || true
wait "$daemon" "$sub" "$basesub" 2>/dev/null || true
summary+=("$format: median $med (min $min, max $max); baseline $bmed")
cat <<EOF

[$format] window ${window} s at 1/${factor} of every default period = $((window * factor)) s at the defaults;
bytes/day = bytes in window x 86400 / (${window} x ${factor}) = bytes x $(awk -v w="$window" -v f="$factor" 'BEGIN {printf "%.2f", 86400 / (w * f)}')
gateway telemetry, bytes/day: median $med (min $min, max $max)  -- goal <= 1000000
baseline (idle MQTT connection, same keepalive), bytes/day: median $bmed
EOF
}

summary=()
for f in $formats; do
    measure "$f"
done
echo
echo "bytes/day per format at the defaults:"
printf '  %s\n' "${summary[@]}"
