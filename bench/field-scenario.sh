#!/usr/bin/env bash
# The user's field scenario, end to end, with real tailscaled (v1.98) and
# headscale in the namespace lab (RFC 1918 LANs, as at a real site), measured
# by what users see: tunnel traffic from A, and packets that really travel
# between the two sites' public addresses.
#
#   gateway C: behind the hard-NAT router with miniupnpd (UPnP, NAT-PMP, PCP),
#              tailscaled --port 41641, and (mode "with") edgereach;
#   host A:    behind a second hard NAT (LAB_EASY_NAT=hard: fully-random
#              masquerade, no port mapping), tailscaled --port 41641. With
#              both sides endpoint-dependent, only a live mapping on C's
#              router gives a direct path;
#   headscale: DERP map with the lab's two STUN servers, and (relay "derp")
#              tailscale's derper as relay, or (relay "none") STUN only.
#
# In mode "with", C's tailscaled runs as edgereach's setup check asks
# (TS_DISABLE_PORTMAPPER=1) next to edgereach; in mode "without" tailscaled
# runs as packaged, its own port mapper on. Nothing on C ever starts traffic of
# its own.
#
# "A tries" = real tunnel traffic: `tailscale ping --icmp --c 1` from A to C's
# tailnet IP (an ICMP echo through WireGuard, answered by C's netstack) every
# FIELD_TRY_GAP seconds for up to FIELD_TRY_SECONDS.
# "direct" = UDP packets to tailscaled's port 41641 whose outer source is the
# other site's public address, delivered into BOTH hosts' namespaces (nftables
# counters in gwhard and gweasy: on C's host from A's router's WAN address, on
# A's host from C's router's public address). Not pongs, not CurAddr.
# Outcome: direct (both counters moved; seconds from the event to the sample
# where both had), relay (replies, not direct), no path (no reply at all).
# Counters are sampled every 0.1 s; once direct, A keeps trying
# FIELD_LINGER_SECONDS more so the packet counts mean something.
#
# Scenarios (FIELD_SCENARIOS), each in every relay setting and mode:
#   join    C boots and joins; A tries at once. Event: C's `tailscale up` done.
#   reboot  A and C quiet FIELD_QUIET_SECONDS (past tailscaled's 45 s session
#           timeout), `lab.sh reboot-router`, A tries FIELD_REBOOT_WAIT_SECONDS
#           (3) after it returned. Event: the router is back.
#   loss    A and C quiet FIELD_QUIET_SECONDS, `lab.sh silent-loss` (the
#           router's forwardings vanish, miniupnpd keeps running and
#           announces nothing), A tries FIELD_LOSS_WAIT_SECONDS later (default
#           verify_interval + 3). Event: the loss.
#           Why A waits in both: a packet that reaches the router while no
#           forwarding exists creates a conntrack flow to the router itself,
#           and every further packet of that peer keeps it alive (30 s UDP
#           timeout): the peer stays locked out after the repair, whatever C
#           does. The "dead" column says whether C's router held such a flow
#           at the end of the window. FIELD_HOLD_SECONDS=N (default 0) makes
#           the router an idealised one that never locks a peer out (lab.sh
#           LAB_HOLD_SECONDS: inbound to the lost ports is dropped before
#           conntrack until they are forwarded again, at most N s).
#   lease   a lab whose router grants PCP leases of FIELD_LEASE_SECONDS (120)
#           at most, UPnP and NAT-PMP off (miniupnpd 2.3.1 caps PCP only);
#           C joins and stays idle FIELD_LEASE_IDLE_SECONDS (600), then A
#           tries. Event: A's first try.
#   rot     a lab whose router speaks UPnP only; A and C quiet
#           FIELD_QUIET_SECONDS, then `lab.sh silent-loss LABDIR forward`: the
#           forward rules vanish while the UPnP table (and the DNAT rules)
#           still list the mapping, "listed and renewed but dead" (tailscale
#           #21208). Only an end-to-end check sees it; no peer can lock itself
#           out (its packets die unconfirmed). A tries FIELD_LOSS_WAIT_SECONDS
#           later. Event: the loss.
#   cgnat   a lab where C's router sits behind a carrier NAT (LAB_CGNAT=yes):
#           the router hands out mappings on its 100.64 WAN that lead nowhere.
#           C joins, A tries at once. Event: C's `tailscale up` done.
# join, reboot and loss run one after the other in one lab; lease and cgnat
# get a lab each. One lab per (lab kind, relay, mode); FIELD_PARALLEL labs at
# a time (default 2: "with" and "without" side by side).
#
# Env: FIELD_MODES ("with without"), FIELD_RELAYS ("derp none"; FIELD_DERP=
# yes|no is the old spelling of one of them), FIELD_SCENARIOS ("join reboot
# loss lease cgnat"), FIELD_TRY_SECONDS (30), FIELD_TRY_GAP (0.5),
# FIELD_LINGER_SECONDS (3), FIELD_QUIET_SECONDS (50), FIELD_LEASE_SECONDS
# (120), FIELD_LEASE_IDLE_SECONDS (600), FIELD_VERIFY_INTERVAL (edgereach's
# portmap.verify_interval in seconds, 30), FIELD_LOSS_WAIT_SECONDS,
# FIELD_PARALLEL (2), FIELD_JOBS (explicit labs instead of every kind x
# relay x mode: "std:derp:with lease:none:without ..."), EDGEREACH_BIN (default target/release/edgereach),
# FIELD_OUT (result dir, default a temp dir; rows in FIELD_OUT/results.tsv).
# Needs root and the Go tools from tests/lab/install-go-tools.sh. Every wait
# is bounded; every lab is torn down on exit, whatever happened; only
# processes this script started are signalled, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB=$ROOT/tests/lab/lab.sh
MESH=$ROOT/tests/lab/mesh.sh
MODES=${FIELD_MODES:-with without}
if [[ -n ${FIELD_RELAYS:-} ]]; then
    RELAYS=$FIELD_RELAYS
elif [[ -n ${FIELD_DERP:-} ]]; then
    case $FIELD_DERP in yes) RELAYS=derp ;; no) RELAYS=none ;; *) RELAYS=bad ;; esac
else
    RELAYS="derp none"
fi
SCENARIOS=${FIELD_SCENARIOS:-join reboot loss rot lease cgnat}
TRY=${FIELD_TRY_SECONDS:-30}
GAP=${FIELD_TRY_GAP:-0.5}
LINGER=${FIELD_LINGER_SECONDS:-3}
QUIET=${FIELD_QUIET_SECONDS:-50}
LEASE=${FIELD_LEASE_SECONDS:-120}
LEASE_IDLE=${FIELD_LEASE_IDLE_SECONDS:-600}
VERIFY=${FIELD_VERIFY_INTERVAL:-30}
LOSS_WAIT=${FIELD_LOSS_WAIT_SECONDS:-$((VERIFY + 3))}
REBOOT_WAIT=${FIELD_REBOOT_WAIT_SECONDS:-3}
HOLD=${FIELD_HOLD_SECONDS:-0}
PARALLEL=${FIELD_PARALLEL:-2}
BIN=${EDGEREACH_BIN:-$ROOT/target/release/edgereach}
OUT=${FIELD_OUT:-$(mktemp -d -t edgereach-field.XXXXXX)}
TS_PORT=41641
SAMPLE=0.1

log() { printf 'field: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces)"
[[ -x $BIN ]] || die "no edgereach binary at $BIN (cargo build --release, or set EDGEREACH_BIN)"
for v in TRY LINGER QUIET LEASE LEASE_IDLE VERIFY LOSS_WAIT REBOOT_WAIT HOLD PARALLEL; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "FIELD_* durations and FIELD_PARALLEL are whole numbers ($v=${!v})"
done
[[ $GAP =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "FIELD_TRY_GAP must be seconds (got '$GAP')"
((PARALLEL >= 1 && LEASE >= 2 && VERIFY >= 1)) || die "FIELD_PARALLEL >= 1, FIELD_LEASE_SECONDS >= 2"
for m in $MODES; do [[ $m == with || $m == without ]] || die "FIELD_MODES: unknown mode '$m'"; done
for r in $RELAYS; do [[ $r == derp || $r == none ]] || die "FIELD_RELAYS: unknown relay '$r' (derp|none)"; done
for s in $SCENARIOS; do
    [[ $s =~ ^(join|reboot|loss|rot|lease|cgnat)$ ]] || die "FIELD_SCENARIOS: unknown scenario '$s'"
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

wants() { [[ " $SCENARIOS " == *" $1 "* ]]; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# deadline SECONDS : the time SECONDS from now; before DEADLINE : not yet
deadline() { awk -v t="$(now)" -v d="$1" 'BEGIN { printf "%.3f", t + d }'; }
before() { awk -v d="$1" -v t="$(now)" 'BEGIN { exit !(t < d) }'; }

# ---- one lab (runs in a background subshell) ---------------------------------

# Long sleeps run in the background so a TERM reaches the job at once.
SNOOZE_PID="" SAMPLER_PIDS=""
snooze() {
    sleep "$1" &
    SNOOZE_PID=$!
    wait "$SNOOZE_PID" || true
    SNOOZE_PID=""
}
job_exit() {
    local p
    for p in $SNOOZE_PID $SAMPLER_PIDS; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $SNOOZE_PID $SAMPLER_PIDS; do wait "$p" 2>/dev/null || true; done
    # a finished lab goes at once (logs stay); the EXIT trap of the script
    # tears every lab down again anyway
    if [[ -n ${LABDIR:-} ]]; then "$LAB" down "$LABDIR" >/dev/null 2>&1 || true; fi
}

lx() { "$LAB" exec "$LABDIR" "$@"; }
labenv() { sed -n "s/^$1=//p" "$LABDIR/env"; }

# Counters: packets into each host's namespace for tailscaled's port whose
# outer source is the other site's public address.
install_counters() {
    local key=$1 from=$2
    lx "$key" nft -f - <<EOF
table inet field {
    counter direct_in { }
    chain input {
        type filter hook input priority filter - 10; policy accept;
        ip saddr $from udp dport $TS_PORT counter name direct_in
    }
}
EOF
}
reset_counters() {
    lx gwhard nft reset counter inet field direct_in >/dev/null
    lx gweasy nft reset counter inet field direct_in >/dev/null
}
packets() { # HOSTKEY
    lx "$1" nft -j list counter inet field direct_in 2>/dev/null |
        jq -r '[.nftables[] | select(.counter) | .counter.packets][0] // 0'
}

# host_sampler HOSTKEY SECONDS FILE STOPFILE : "epoch packets" every 0.1 s,
# from a loop inside the host's namespace (no fork but nft per sample), for
# at most SECONDS or until STOPFILE exists.
host_sampler() {
    local n
    n=$(awk -v s="$2" -v d="$SAMPLE" 'BEGIN { printf "%d", s / d + 1 }')
    # shellcheck disable=SC2016 # expanded by the inner bash
    lx "$1" bash -c '
        for ((i = 0; i < $1; i++)); do
            out=$(nft list counter inet field direct_in 2>/dev/null) || out=""
            [[ $out =~ packets\ ([0-9]+) ]] && printf "%s %s\n" "$EPOCHREALTIME" "${BASH_REMATCH[1]}" >>"$2"
            [[ -e $3 ]] && exit 0
            sleep "$4"
        done' sampler "$n" "$3" "$4" "$SAMPLE"
}

# first_direct T_EVENT FILE_C FILE_A -> seconds from T_EVENT to the first
# sample at which both hosts had counted a direct packet (empty: never)
first_direct() {
    awk -v t="$1" '{ k = FILENAME == ARGV[1] ? 1 : 2 } $2 > 0 && !(k in first) { first[k] = $1 }
        END { if ((1 in first) && (2 in first)) {
            m = first[1] > first[2] ? first[1] : first[2]; printf "%.1f", m - t } }' "$2" "$3"
}

# try_from_a NAME T_EVENT DELAY : appends one row to $RES: mode, relay,
# scenario, outcome, seconds to direct, packets on C, packets on A, tries,
# replies. Runs in the job's shell (not in $(...)), so job_exit sees the PIDs.
try_from_a() {
    local name=$1 tref=$2 delay=$3 tries=0 replies=0 out end direct="" stop_at="" secs c a outcome p
    local first_reply=- reply_after_direct=0 dead
    local fc=$LABDIR/counters-$1-c.txt fa=$LABDIR/counters-$1-a.txt stop=$LABDIR/counters-$1.stop
    local window=$((delay + TRY + LINGER + 5))
    : >"$fc"
    : >"$fa"
    rm -f "$stop"
    host_sampler gwhard "$window" "$fc" "$stop" &
    SAMPLER_PIDS="$!"
    host_sampler gweasy "$window" "$fa" "$stop" &
    SAMPLER_PIDS+=" $!"
    if ((delay > 0)); then snooze "$delay"; fi
    end=$(deadline "$TRY")
    while before "$end"; do
        if [[ -n $stop_at ]] && ! before "$stop_at"; then break; fi
        tries=$((tries + 1))
        out=$("$MESH" cli "$LABDIR" a ping --icmp --c 1 --timeout 1s --until-direct=false "$CIP" 2>&1 || true)
        printf '%s %s try %d: %s\n' "$name" "$(since "$tref")" "$tries" "$out" >>"$LABDIR/tries.log"
        if grep -q '^pong from' <<<"$out"; then
            replies=$((replies + 1))
            [[ $first_reply == - ]] && first_reply=$(since "$tref")
            [[ -n $direct ]] && reply_after_direct=$((reply_after_direct + 1))
        fi
        [[ -n $direct ]] || direct=$(first_direct "$tref" "$fc" "$fa")
        # once direct and answered over it, LINGER more seconds for the counts
        if [[ -n $direct && $reply_after_direct -gt 0 && -z $stop_at ]]; then
            stop_at=$(deadline "$LINGER")
        fi
        sleep "$GAP"
    done
    touch "$stop"
    for p in $SAMPLER_PIDS; do wait "$p" || true; done
    SAMPLER_PIDS=""
    direct=$(first_direct "$tref" "$fc" "$fa")
    c=$(packets gwhard) a=$(packets gweasy)
    {   # what the routers held at the end of the window, for the record
        echo "== $name: rhard forwardings"
        lx rhard nft list chain inet filter prerouting_miniupnpd 2>&1 || true
        for k in rhard reasy carrier; do
            [[ $k != carrier || $(labenv CGNAT) == yes ]] || continue
            echo "== $name: $k udp conntrack"
            lx "$k" conntrack -L -p udp 2>/dev/null || true
        done
    } >>"$LABDIR/diag.txt" 2>&1
    # a flow from A's site to the mapped port that the router answered itself
    dead=$(lx rhard conntrack -L -p udp --orig-dst "$(labenv HARD_WAN_IP)" --orig-port-dst "$TS_PORT" \
        --reply-src "$(labenv HARD_WAN_IP)" 2>/dev/null | grep -c "src=$(labenv EASY_PUBLIC_IP) " || true)
    if [[ -n $direct ]]; then
        outcome=direct secs=$direct
    elif ((replies > 0)); then
        outcome=relay secs=-
    else
        outcome=no-path secs=-
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$MODE" "$RELAY" "$name" "$outcome" "$secs" \
        "$c" "$a" "$tries" "$replies" "$first_reply" "$dead" >>"$RES"
    log "$JOB: $name: $outcome ${secs}s, packets C $c A $a, $tries tries, $replies replies (first ${first_reply}s), dead flows $dead"
}

er_status() { lx gwhard "$BIN" status --json --config "$LABDIR/er/edgereach.toml" 2>/dev/null; }

wait_mapping() { # bounded; a mapping that never gets "ok" is logged, not fatal
    local i
    for ((i = 0; i < 100; i++)); do
        er_status | jq -e '.portmap.mappings[0].state == "ok"' >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    log "$JOB: edgereach holds no ok mapping after 20 s: $(er_status | jq -c '.portmap.mappings' 2>/dev/null || echo '?')"
}

start_edgereach() {
    mkdir -p "$LABDIR/er"
    cat >"$LABDIR/er/edgereach.toml" <<CONF
[gateway]
id = "gw-c"
site = "field-lab"
state_dir = "$LABDIR/er/state"
control_socket = "$LABDIR/er/control.sock"
[portmap]
verify_interval = "${VERIFY}s"
[netcheck]
stun_servers = ["$(labenv STUN1)", "$(labenv STUN2)"]
[tailscale]
socket = "$LABDIR/ts-c/tailscaled.sock"
[web]
listen = []
CONF
    "$MESH" run "$LABDIR" edgereach gwhard "$BIN" run --config "$LABDIR/er/edgereach.toml"
    wait_mapping
}

# quiet_event_try SCENARIO WAIT WHAT CMD... : A and C quiet FIELD_QUIET_SECONDS,
# CMD (the event, t = 0), then A tries WAIT seconds later.
quiet_event_try() {
    local scen=$1 wait=$2 what=$3 tref
    shift 3
    log "$JOB: A and C quiet ${QUIET}s, then $what"
    snooze "$QUIET"
    "$@"
    reset_counters
    tref=$(now)
    try_from_a "$scen" "$tref" "$wait"
}

# run_job KIND RELAY MODE : KIND std (join, reboot, loss) | lease | cgnat
run_job() {
    local kind=$1 relay=$2 mode=$3 key tref derp=no lab_env=(LAB_LAN=private LAB_EASY_NAT=hard)
    JOB=$kind-$relay-$mode LABDIR=$OUT/lab-$kind-$relay-$mode RES=$OUT/$kind-$relay-$mode.tsv
    MODE=$mode RELAY=$relay
    trap job_exit EXIT
    trap 'exit 143' TERM INT
    : >"$RES"
    [[ $relay == derp ]] && derp=yes
    case $kind in
    lease) lab_env+=(LAB_UPNP=no LAB_NATPMP=no "LAB_MAX_LEASE=$LEASE") ;;
    rot) lab_env+=(LAB_NATPMP=no LAB_PCP=no) ;;
    cgnat) lab_env+=(LAB_CGNAT=yes) ;;
    esac
    env "${lab_env[@]}" "$LAB" up "$LABDIR" >/dev/null
    key=$(MESH_DERP=$derp "$MESH" headscale "$LABDIR" | tail -n 1)
    "$MESH" join "$LABDIR" gweasy a "$key"
    install_counters gwhard "$(labenv EASY_PUBLIC_IP)"
    install_counters gweasy "$(labenv HARD_PUBLIC_IP)"
    if [[ $mode == with ]]; then
        start_edgereach
        MESH_TS_ENV="TS_DISABLE_PORTMAPPER=1" "$MESH" join "$LABDIR" gwhard c "$key"
    else
        "$MESH" join "$LABDIR" gwhard c "$key"
    fi
    reset_counters
    tref=$(now)
    CIP=$("$MESH" cli "$LABDIR" c ip -4)
    log "$JOB: C joined as $CIP"

    case $kind in
    std)
        if wants join; then
            log "$JOB: join"
            try_from_a join "$tref" 0
        fi
        if wants reboot; then
            quiet_event_try reboot "$REBOOT_WAIT" "the router reboots" \
                env LAB_HOLD_SECONDS="$HOLD" "$LAB" reboot-router "$LABDIR"
        fi
        if wants loss; then
            quiet_event_try loss "$LOSS_WAIT" "the router silently loses its forwardings" \
                env LAB_HOLD_SECONDS="$HOLD" "$LAB" silent-loss "$LABDIR"
        fi
        ;;
    lease)
        log "$JOB: C idle ${LEASE_IDLE}s (leases <= ${LEASE}s)"
        snooze "$LEASE_IDLE"
        reset_counters
        tref=$(now)
        try_from_a lease "$tref" 0
        ;;
    rot)
        quiet_event_try rot "$LOSS_WAIT" "the router's forward rules rot (table kept)" \
            "$LAB" silent-loss "$LABDIR" forward
        ;;
    cgnat)
        try_from_a cgnat "$tref" 0
        ;;
    esac
    if [[ $mode == with ]]; then er_status >"$OUT/$JOB-status.json" || true; fi
    log "$JOB: done"
}

# ---- scheduler ----------------------------------------------------------------

JOBS=() LABS=()
declare -A RUNNING=()
if [[ -n ${FIELD_JOBS:-} ]]; then
    # explicit labs, in this order: KIND:RELAY:MODE ... (KIND std|lease|cgnat)
    for j in $FIELD_JOBS; do
        [[ $j =~ ^(std|rot|lease|cgnat):(derp|none):(with|without)$ ]] ||
            die "FIELD_JOBS: '$j' is not KIND:RELAY:MODE (std|rot|lease|cgnat, derp|none, with|without)"
        JOBS+=("${j//:/ }")
    done
else
    kinds=()
    if wants join || wants reboot || wants loss; then kinds+=(std); fi
    if wants lease; then kinds+=(lease); fi
    if wants rot; then kinds+=(rot); fi
    if wants cgnat; then kinds+=(cgnat); fi
    # lease labs first: they mostly sleep
    for k in lease std rot cgnat; do
        [[ " ${kinds[*]} " == *" $k "* ]] || continue
        for r in $RELAYS; do
            for m in $MODES; do JOBS+=("$k $r $m"); done
        done
    done
fi

cleanup() {
    local p l i
    trap - EXIT INT TERM
    # only jobs not reaped yet: a reaped PID may belong to someone else now
    for p in "${!RUNNING[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    # A job acts on TERM once its current step (lab.sh/mesh.sh, each bounded)
    # is done; wait for that, bounded, so no step builds after the teardown.
    for p in "${!RUNNING[@]}"; do
        for ((i = 0; i < 900; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        wait "$p" 2>/dev/null || true
    done
    for l in "${LABS[@]}"; do
        "$LAB" down "$l" >/dev/null 2>&1 || log "teardown of $l failed"
        "$LAB" leftovers "$l" >/dev/null 2>&1 || log "lab $l left something behind"
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$SECONDS
rc=0 running=0
declare -A PID_JOB=()
reap_one() { # wait for any job; remember which one finished and how
    local p st=0
    wait -n -p p || st=$?
    [[ -n ${p:-} ]] || { running=0; return 0; } # no child left (bounded: never loops)
    unset "RUNNING[$p]"
    running=$((running - 1))
    if ((st != 0)); then rc=1; log "${PID_JOB[$p]} failed (rc $st); see $OUT/${PID_JOB[$p]}.log"; fi
}
for j in "${JOBS[@]}"; do
    read -r k r m <<<"$j"
    while ((running >= PARALLEL)); do reap_one; done
    d=$OUT/lab-$k-$r-$m
    mkdir -p "$d"
    LABS+=("$d")
    log "start $k-$r-$m ($((SECONDS - t0))s)"
    run_job "$k" "$r" "$m" >>"$OUT/$k-$r-$m.log" 2>&1 &
    RUNNING[$!]=1
    PID_JOB[$!]=$k-$r-$m
    running=$((running + 1))
done
while ((running > 0)); do reap_one; done
log "all labs done in $((SECONDS - t0))s"

: >"$OUT/results.tsv"
for m in with without; do
    for s in join reboot loss rot lease cgnat; do
        for r in derp none; do
            cat "$OUT"/*-"$r"-"$m".tsv 2>/dev/null | awk -F'\t' -v s="$s" '$3 == s' >>"$OUT/results.tsv" || true
        done
    done
done
printf '\n%-9s %-8s %-6s %-8s %-10s %-9s %-9s %-12s %-16s %s\n' edgereach scenario relay outcome \
    "direct (s)" "pkts on C" "pkts on A" "replies" "first reply (s)" dead
while IFS=$'\t' read -r mode relay scen outcome secs c a tries replies first dead; do
    printf '%-9s %-8s %-6s %-8s %-10s %-9s %-9s %-12s %-16s %s\n' "$mode" "$scen" "$relay" "$outcome" \
        "$secs" "$c" "$a" "$replies/$tries" "$first" "$dead"
done <"$OUT/results.tsv"
printf '\nrouter lockout hold: %s s (FIELD_HOLD_SECONDS)\nresults: %s\n(mode relay scenario outcome direct_s pkts_C pkts_A tries replies first_reply_s dead_flows)\n' \
    "$HOLD" "$OUT/results.tsv"
[[ $rc -eq 0 ]] || die "a lab failed; logs in $OUT/*.log"
