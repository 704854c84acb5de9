#!/usr/bin/env bash
# The user's field scenario, end to end, with real tailscaled (v1.98) and
# headscale in the namespace lab (RFC 1918 LANs, as at a real site):
#
#   gateway C: behind the hard-NAT router with miniupnpd (UPnP, NAT-PMP, PCP),
#              tailscaled --port 41641, and (mode "with") edgereach;
#   host A:    behind the easy NAT, tailscaled;
#   headscale: DERP map with the lab's two STUN servers and (FIELD_DERP=yes,
#              the default) tailscale's derper as relay, so a peer without a
#              direct path gets relayed pongs and CallMeMaybe works.
#
# Nothing on C ever starts traffic of its own; in mode "with" edgereach's
# keepalive and re-STUN are the mechanism under test. In mode "with", C's
# tailscaled runs as edgereach's setup check asks (TS_DISABLE_PORTMAPPER=1);
# in mode "without" it runs as packaged, its own port mapper on.
#
# Scenarios, in order, per mode:
#   1 join    C boots and joins; A tries at once.
#   2 idle    C stays idle FIELD_IDLE_SECONDS (default 600), then A tries.
#   3 reboot  the hard router reboots while C is idle, then A tries.
#             A is idle too when it happens: the reboot comes
#             FIELD_QUIET_SECONDS (default 50) after A's last try, past
#             tailscaled's 45 s session timeout (an active A keeps sending
#             heartbeats to C). A starts trying 1 s after the router is back.
#             Why: a packet that reaches a Linux router before any mapping
#             exists creates a conntrack flow to the router itself, which the
#             router keeps for as long as the sender keeps sending (30 s UDP
#             timeout, refreshed by each packet); no one on C's side can
#             clear it (see the notes in bench/README.md).
# "A tries" = `tailscale ping --c 1 --timeout 1s` (disco) from A every 0.2 s
# for FIELD_TRY_SECONDS (default 30): the outcome is the first direct pong
# (endpoint, seconds since C joined / the router came back), else a relay
# pong, else no reply.
#
# Env: FIELD_MODES ("with without"), FIELD_DERP (yes|no), FIELD_IDLE_SECONDS, FIELD_QUIET_SECONDS,
# FIELD_TRY_SECONDS,
# EDGEREACH_BIN (default target/release/edgereach), FIELD_OUT (result dir,
# default a temp dir; results in FIELD_OUT/results.tsv). Needs root and the Go
# tools from tests/lab/install-go-tools.sh. Both modes run at the same time
# in two separate labs; each lab is torn down on exit, whatever happened.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB=$ROOT/tests/lab/lab.sh
MESH=$ROOT/tests/lab/mesh.sh
MODES=${FIELD_MODES:-with without}
IDLE=${FIELD_IDLE_SECONDS:-600}
QUIET=${FIELD_QUIET_SECONDS:-50}
DERP=${FIELD_DERP:-yes}
TRY=${FIELD_TRY_SECONDS:-30}
BIN=${EDGEREACH_BIN:-$ROOT/target/release/edgereach}
OUT=${FIELD_OUT:-$(mktemp -d -t edgereach-field.XXXXXX)}

log() { printf 'field: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces)"
[[ -x $BIN ]] || die "no edgereach binary at $BIN (cargo build --release, or set EDGEREACH_BIN)"
[[ $IDLE =~ ^[0-9]+$ && $TRY =~ ^[0-9]+$ && $QUIET =~ ^[0-9]+$ ]] ||
    die "FIELD_IDLE_SECONDS, FIELD_QUIET_SECONDS and FIELD_TRY_SECONDS are whole seconds"
mkdir -p "$OUT"

LABS=()
cleanup() {
    local l
    for l in "${LABS[@]}"; do "$LAB" down "$l" >/dev/null 2>&1 || log "teardown of $l failed"; done
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# try LABDIR C_IP T_REF -> "outcome<TAB>endpoint<TAB>seconds<TAB>tries<TAB>sent at"
# (seconds: when the first direct pong was printed; sent at: when the ping
# that got it was started; the difference is mostly the CLI's start-up).
try_from_a() {
    local labdir=$1 ip=$2 tref=$3 end relay="" out ep tries=0 sent
    end=$(awk -v t="$(now)" -v d="$TRY" 'BEGIN { printf "%d", t + d }')
    while (($(date +%s) < end)); do
        tries=$((tries + 1))
        sent=$(since "$tref")
        out=$("$MESH" cli "$labdir" a ping --c 1 --timeout 1s --until-direct=false "$ip" 2>&1 || true)
        printf '%s try %d: %s\n' "$(since "$tref")" "$tries" "$out" >>"$labdir/tries.log"
        ep=$(sed -nE 's/^pong from .* via ([0-9.]+:[0-9]+) in .*/\1/p' <<<"$out" | head -n 1)
        if [[ -n $ep ]]; then
            printf 'direct\t%s\t%s\t%s\t%s\n' "$ep" "$(since "$tref")" "$tries" "$sent"
            return
        fi
        [[ -z $relay ]] && relay=$(sed -nE 's/^pong from .* via (DERP\([^)]*\)).*/\1/p' <<<"$out" | head -n 1)
        sleep 0.2
    done
    if [[ -n $relay ]]; then
        printf 'relay\t%s\t-\t%s\t-\n' "$relay" "$tries"
    else
        printf 'no-reply\t-\t-\t%s\t-\n' "$tries"
    fi
}

er_status() { "$LAB" exec "$1" gwhard "$BIN" status --json --config "$1/er/edgereach.toml" 2>/dev/null; }

wait_mapping() { # LABDIR: edgereach holds the mapping (bounded)
    local i
    for ((i = 0; i < 100; i++)); do
        er_status "$1" | jq -e '.portmap.mappings[0].state == "ok"' >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "edgereach in $1 did not map within 20 s"
}

run_mode() {
    local mode=$1 labdir=$OUT/lab-$mode key cip tref
    local res=$OUT/$mode.tsv
    : >"$res"
    LAB_LAN=private "$LAB" up "$labdir" >/dev/null 2>>"$OUT/$mode.log"
    key=$(MESH_DERP=$DERP "$MESH" headscale "$labdir" 2>>"$OUT/$mode.log" | tail -n 1)
    "$MESH" join "$labdir" gweasy a "$key" 2>>"$OUT/$mode.log"
    if [[ $mode == with ]]; then
        mkdir -p "$labdir/er"
        cat >"$labdir/er/edgereach.toml" <<CONF
[gateway]
id = "gw-c"
site = "field-lab"
state_dir = "$labdir/er/state"
control_socket = "$labdir/er/control.sock"
[netcheck]
stun_servers = ["203.0.113.10:3478", "203.0.113.11:3478"]
[tailscale]
socket = "$labdir/ts-c/tailscaled.sock"
[web]
listen = []
CONF
        "$MESH" run "$labdir" edgereach gwhard "$BIN" run --config "$labdir/er/edgereach.toml" 2>>"$OUT/$mode.log"
        wait_mapping "$labdir"
        MESH_TS_ENV="TS_DISABLE_PORTMAPPER=1" "$MESH" join "$labdir" gwhard c "$key" 2>>"$OUT/$mode.log"
    else
        "$MESH" join "$labdir" gwhard c "$key" 2>>"$OUT/$mode.log"
    fi
    tref=$(now)
    cip=$("$MESH" cli "$labdir" c ip -4 2>/dev/null)
    log "$mode: C joined as $cip; scenario 1 (join)"
    printf '%s\t1 join\t%s\n' "$mode" "$(try_from_a "$labdir" "$cip" "$tref")" >>"$res"
    log "$mode: scenario 2: C idle for ${IDLE}s"
    sleep "$IDLE"
    tref=$(now)
    printf '%s\t2 idle %ss\t%s\n' "$mode" "$IDLE" "$(try_from_a "$labdir" "$cip" "$tref")" >>"$res"
    log "$mode: scenario 3: A and C quiet for ${QUIET}s, then the router reboots"
    sleep "$QUIET"
    "$LAB" reboot-router "$labdir" 2>>"$OUT/$mode.log"
    tref=$(now)
    sleep 1
    printf '%s\t3 reboot\t%s\n' "$mode" "$(try_from_a "$labdir" "$cip" "$tref")" >>"$res"
    if [[ $mode == with ]]; then
        er_status "$labdir" >"$OUT/with-status.json" || true
    fi
}

pids=()
for mode in $MODES; do
    [[ $mode == with || $mode == without ]] || die "FIELD_MODES: unknown mode '$mode'"
    LABS+=("$OUT/lab-$mode")
    mkdir -p "$OUT/lab-$mode"
    run_mode "$mode" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done

: >"$OUT/results.tsv"
for mode in $MODES; do cat "$OUT/$mode.tsv" >>"$OUT/results.tsv" 2>/dev/null || true; done
printf '\n%-9s %-12s %-9s %-20s %-16s %-6s %s\n' "edgereach" "scenario" "outcome" "endpoint/relay" "direct pong (s)" "pings" "that ping sent at (s)"
while IFS=$'\t' read -r mode scen outcome ep secs tries sent; do
    printf '%-9s %-12s %-9s %-20s %-16s %-6s %s\n' "$mode" "$scen" "$outcome" "$ep" "$secs" "$tries" "$sent"
done <"$OUT/results.tsv"
printf '\nresults: %s\n' "$OUT/results.tsv"
[[ $rc -eq 0 ]] || die "a mode failed; logs in $OUT/*.log"
