#!/usr/bin/env bash
# Network-namespace lab for edgereach: a fake internet, a hard NAT router with
# miniupnpd (UPnP IGD, NAT-PMP, PCP), an easy NAT router, STUN (coturn), MQTT
# (mosquitto) and an outside peer. Everything lives in namespaces prefixed by
# a lab id derived from LABDIR; nothing touches the host namespace.
#
#   lab.sh up LABDIR                 build (LABDIR: existing, empty)
#   lab.sh down LABDIR               tear down (idempotent)
#   lab.sh reboot-router LABDIR [UPNP_LATE_SECS]  restart the hard router's
#                                    miniupnpd/nft state; with UPNP_LATE_SECS
#                                    (0-120) the router forwards again at once
#                                    but miniupnpd starts that much later, as on
#                                    routers whose UPnP daemon comes up after
#                                    the WAN (the command returns once it runs)
#   lab.sh silent-loss LABDIR [all|forward]  the hard router's forwarding
#                                    rules vanish unannounced (miniupnpd keeps
#                                    running); forward: only the forward rules,
#                                    its table still lists the mappings
#                                    (both: LAB_HOLD_SECONDS=N, see hold_inbound)
#   lab.sh udp-block LABDIR on|off   drop LAN->WAN UDP on the hard router
#   lab.sh broker LABDIR stop|start  stop or start the MQTT broker (sessions kept)
#   lab.sh exec LABDIR HOSTKEY cmd…  run cmd in inet|srv|peer|rhard|reasy|
#                                    gwhard|gwhard2|gweasy (and carrier with
#                                    LAB_CGNAT=yes)
#   lab.sh leftovers LABDIR          exit 1 if namespaces/processes remain
#
# Env for `up`: LAB_UPNP, LAB_NATPMP, LAB_PCP = yes|no (default yes),
# LAB_LAN=doc|private (LAN addresses: 192.0.2.0/24 or 10.77.0.0/24), and
# LAB_FAIL_AT=namespaces|links|nft|coturn|mosquitto|miniupnpd|env to simulate
# a failure at that stage (tests the cleanup path). Field-scenario options
# (defaults keep the lab as it always was):
#   LAB_EASY_NAT=easy|hard  hard: the second router masquerades fully-random
#                           (endpoint-dependent mapping) for its LAN sources
#                           too, like the hard router; it has no miniupnpd.
#   LAB_MAX_LEASE=SECONDS   miniupnpd's max_lifetime (min_lifetime is set
#                           below it). miniupnpd 2.3.1 caps only PCP leases
#                           with it: NAT-PMP and UPnP get what they ask for, so
#                           a short-lease router is LAB_UPNP=no LAB_NATPMP=no.
#   LAB_CGNAT=yes|no        carrier-grade NAT above the hard router: its WAN is
#                           100.127.3.2 (in 100.64.0.0/10) behind one more
#                           namespace, "carrier", which masquerades fully-random
#                           onto 203.0.113.4 and drops unsolicited inbound.
#                           miniupnpd then reports 100.127.3.2 as the external
#                           address (see gen_miniupnpd_conf).
#   LAB_IPV6=yes|no         (default no) IPv6 on the fake internet
#                           (2001:db8::/32), a routed global /64 behind each
#                           router with a stateful firewall (inbound dropped
#                           unless miniupnpd opened a pinhole), miniupnpd with
#                           IPv6, IGDv2 and PCP, coturn on IPv6 too; addresses
#                           in LABDIR/env (IPV6=yes, *6_*). See lab-v6.sh.
# miniupnpd 2.3.1 has only enable_upnp and enable_natpmp; the latter turns on
# NAT-PMP AND PCP together (one socket, UDP 5351; `enable_pcp_pmp` is a later
# alias). LAB_NATPMP/LAB_PCP=no therefore drop that protocol's version byte in
# the router's nftables input chain (see lab-conf.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab-conf.sh
source "$HERE/lab-conf.sh"
# shellcheck source=lab-proc.sh
source "$HERE/lab-proc.sh"
# shellcheck source=lab-v6.sh
source "$HERE/lab-v6.sh"

# Documentation ranges only (RFC 5737).
INET_IP=203.0.113.1 HARD_WAN_IP=203.0.113.2 EASY_WAN_IP=203.0.113.3
STUN1_IP=203.0.113.10 STUN2_IP=203.0.113.11 MQTT_IP=203.0.113.20
PEER_IP=203.0.113.50 INET_NET=203.0.113.0/24
# LAB_CGNAT=yes: the carrier's public address, and the shared address space
# (RFC 6598) between carrier and hard router. 100.127.x, not 100.64.0.x:
# headscale hands out tailnet addresses from 100.64.0.1 upwards.
CARRIER_WAN_IP=203.0.113.4 CGN_GW_IP=100.127.3.1 CGN_WAN_IP=100.127.3.2
CGN_STUN2_IP=100.127.3.3 CGN_NET=100.127.3.0/24 CGN_IF=cgn0
# LANs: documentation addresses by default; LAB_LAN=private puts both LANs in
# RFC 1918 space, as at real sites (tailscaled's own port mapper only talks to
# a private default gateway, so the field scenario needs it).
set_lans() {
    case $1 in
    doc) local p=192.0.2 ;;
    private) local p=10.77.0 ;;
    *) die "LAB_LAN must be doc or private (got '$1')" ;;
    esac
    LAB_LAN=$1
    HARD_LAN_GW=$p.1 GWHARD_IP=$p.10 GWHARD2_IP=$p.11 HARD_LAN_NET=$p.0/26
    EASY_LAN_GW=$p.65 GWEASY_IP=$p.74 EASY_LAN_NET=$p.64/26
}
STUN_PORT=3478 STUN_ALT_PORT=3479 MQTT_PORT=1883
UPNP_HTTP_PORT=5000 NATPMP_PORT=5351
# Interface names are per namespace, so they need no lab prefix (<= 15 chars).
HARD_WAN_IF=wan0 HARD_LAN_IF=br-lan EASY_WAN_IF=wan0 EASY_LAN_IF=lan0 HOST_IF=eth0
HOSTKEYS=(inet srv peer rhard reasy gwhard gwhard2 gweasy)
# Written to LABDIR/env as NAME=value (plus NS_*, STUN1/2, MQTT, options).
# HARD_PUBLIC_IP/EASY_PUBLIC_IP: the site's address as the internet sees it
# (HARD_WAN_IP, or the carrier's with LAB_CGNAT=yes).
ENV_VARS=(INET_IP INET_NET HARD_WAN_IP HARD_WAN_IF HARD_LAN_IF HARD_LAN_GW HARD_LAN_NET
    GWHARD_IP GWHARD2_IP EASY_WAN_IP EASY_WAN_IF EASY_LAN_IF EASY_LAN_GW EASY_LAN_NET
    GWEASY_IP STUN1_IP STUN2_IP STUN_PORT STUN_ALT_PORT MQTT_IP MQTT_PORT PEER_IP
    UPNP_HTTP_PORT NATPMP_PORT HARD_PUBLIC_IP EASY_PUBLIC_IP)

log() { printf 'lab: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- lab identity --------------------------------------------------------

# Sets LABDIR (absolute), LAB_ID and PFX. The id is a hash of the real path
# (so it is known even before lab.id is written); once recorded, lab.id wins,
# which keeps `down` working if the directory was moved.
init_lab() {
    [[ -n ${1:-} ]] || die "LABDIR missing"
    LABDIR=$(realpath -m -- "$1")
    LAB_ID="erl$(printf '%s' "$LABDIR" | sha256sum | cut -c1-5)"
    if [[ -f $LABDIR/lab.id ]] && grep -qxE 'erl[0-9a-f]{5}' "$LABDIR/lab.id"; then
        LAB_ID=$(cat "$LABDIR/lab.id")
    fi
    PFX="$LAB_ID-"
    # Later commands use the LANs and options the lab was built with.
    if [[ -f $LABDIR/env ]] && grep -qx 'LAN=private' "$LABDIR/env"; then
        set_lans private
    else
        set_lans "${LAB_LAN:-doc}"
    fi
    if [[ -f $LABDIR/env ]]; then
        LAB_CGNAT=$(sed -n 's/^CGNAT=//p' "$LABDIR/env")
        LAB_EASY_NAT=$(sed -n 's/^EASY_NAT=//p' "$LABDIR/env")
        LAB_MAX_LEASE=$(sed -n 's/^MAX_LEASE=//p' "$LABDIR/env")
        LAB_IPV6=$(sed -n 's/^IPV6=//p' "$LABDIR/env")
    fi
    set_options
}

# set_options: validate the field-scenario options and derive addresses.
set_options() {
    LAB_EASY_NAT=${LAB_EASY_NAT:-easy} LAB_CGNAT=${LAB_CGNAT:-no} LAB_MAX_LEASE=${LAB_MAX_LEASE:-}
    LAB_IPV6=${LAB_IPV6:-no}
    [[ $LAB_EASY_NAT == easy || $LAB_EASY_NAT == hard ]] ||
        die "LAB_EASY_NAT must be easy or hard (got '$LAB_EASY_NAT')"
    [[ $LAB_CGNAT == yes || $LAB_CGNAT == no ]] || die "LAB_CGNAT must be yes or no (got '$LAB_CGNAT')"
    if [[ -n $LAB_MAX_LEASE ]]; then
        if ! [[ $LAB_MAX_LEASE =~ ^[0-9]+$ ]] || ((LAB_MAX_LEASE < 2)); then
            die "LAB_MAX_LEASE must be a number of seconds >= 2 (got '$LAB_MAX_LEASE')"
        fi
    fi
    # HARD_PUBLIC_IP and EASY_PUBLIC_IP reach LABDIR/env through ENV_VARS
    # shellcheck disable=SC2034
    if [[ $LAB_CGNAT == yes ]]; then
        HARD_WAN_IP=$CGN_WAN_IP HARD_PUBLIC_IP=$CARRIER_WAN_IP HARD_WAN_GW=$CGN_GW_IP
        [[ " ${HOSTKEYS[*]} " == *" carrier "* ]] || HOSTKEYS+=(carrier)
    else
        HARD_PUBLIC_IP=$HARD_WAN_IP HARD_WAN_GW=$INET_IP
    fi
    # shellcheck disable=SC2034
    EASY_PUBLIC_IP=$EASY_WAN_IP
    set_v6_options
}

ns() { printf '%s%s' "$PFX" "$1"; }
nsx() { local k=$1; shift; ip netns exec "$(ns "$k")" "$@"; }
lab_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PFX" || true; }

valid_key() {
    local k
    for k in "${HOSTKEYS[@]}"; do [[ $k == "$1" ]] && return 0; done
    return 1
}

# start_daemon NAME HOSTKEY cmd... : foreground daemon in a namespace.
start_daemon() {
    local name=$1 key=$2 pid
    shift 2
    printf '=== start %s\n' "$(date -Is)" >>"$LABDIR/logs/$name.log"
    ip netns exec "$(ns "$key")" "$@" </dev/null >>"$LABDIR/logs/$name.log" 2>&1 &
    pid=$!
    printf '%s %s %s\n' "$pid" "$(proc_start "$pid")" "$key" >"$LABDIR/run/$name.proc"
    log "started $name in $(ns "$key") pid $pid"
}

# wait_until SECONDS DESCRIPTION cmd... : bounded poll every 0.1 s.
wait_until() {
    local secs=$1 desc=$2 i
    shift 2
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null && return 0
        sleep 0.1
    done
    die "timed out after ${secs}s waiting for $desc"
}

listening() { # HOSTKEY t|u ADDR PORT ; ADDR "*" = any local address
    local a=$3
    [[ $a == "*" ]] && a=""
    nsx "$1" ss -Hln -"$2" "sport = :$4" | grep -qF "$a:$4"
}

daemon_alive() { record_alive "$LABDIR/run/$1.proc"; }

maybe_fail() {
    [[ ${LAB_FAIL_AT:-} != "$1" ]] || die "simulated failure at stage '$1' (LAB_FAIL_AT)"
}

# ---- topology ------------------------------------------------------------

add_ns() {
    local n
    n=$(ns "$1")
    echo "$n" >>"$LABDIR/namespaces" # recorded first: a half-made one is still removed
    ip netns add "$n"
    ip -n "$n" link set lo up
}

# veth KEY_A IF_A KEY_B IF_B: both ends created inside namespaces, never host.
veth() {
    ip -n "$(ns "$1")" link add "$2" type veth peer name "$4" netns "$(ns "$3")"
    ip -n "$(ns "$1")" link set "$2" up
    ip -n "$(ns "$3")" link set "$4" up
}

bridge() { # KEY NAME
    ip -n "$(ns "$1")" link add "$2" type bridge
    # no IGMP snooping: SSDP multicast must reach miniupnpd without a querier
    ip -n "$(ns "$1")" link set "$2" type bridge mcast_snooping 0
    ip -n "$(ns "$1")" link set "$2" up
}

attach() { ip -n "$(ns "$1")" link set "$2" master "$3"; } # KEY PORT BRIDGE
addr() { ip -n "$(ns "$1")" addr add "$3" dev "$2"; }      # KEY IF CIDR
defroute() { ip -n "$(ns "$1")" route add default via "$2"; }

build_topology() {
    local k
    for k in "${HOSTKEYS[@]}"; do add_ns "$k"; done
    maybe_fail namespaces

    # fake internet: one bridge all WAN sides attach to
    bridge inet br0
    addr inet br0 "$INET_IP/24"
    local uplinks=(srv peer reasy)
    if [[ $LAB_CGNAT == yes ]]; then uplinks+=(carrier); else uplinks+=(rhard); fi
    for k in "${uplinks[@]}"; do
        local ifn=$HOST_IF
        [[ $k == rhard || $k == reasy || $k == carrier ]] && ifn=wan0
        veth "$k" "$ifn" inet "p-$k"
        attach inet "p-$k" br0
    done
    addr srv "$HOST_IF" "$STUN1_IP/24"
    addr srv "$HOST_IF" "$STUN2_IP/24"
    addr srv "$HOST_IF" "$MQTT_IP/24"
    addr peer "$HOST_IF" "$PEER_IP/24"
    for k in srv peer; do defroute "$k" "$INET_IP"; done

    if [[ $LAB_CGNAT == yes ]]; then
        # carrier: public address on the fake internet, the hard router's WAN
        # in shared address space below it (plus a second address for the
        # carrier-side STUN server miniupnpd checks against)
        addr carrier wan0 "$CARRIER_WAN_IP/24"
        defroute carrier "$INET_IP"
        veth carrier "$CGN_IF" rhard "$HARD_WAN_IF"
        addr carrier "$CGN_IF" "$CGN_GW_IP/24"
        addr carrier "$CGN_IF" "$CGN_STUN2_IP/24"
        nsx carrier sysctl -qw net.ipv4.ip_forward=1
        addr rhard "$HARD_WAN_IF" "$CGN_WAN_IP/24"
    else
        addr rhard "$HARD_WAN_IF" "$HARD_WAN_IP/24"
    fi
    # hard router: LAN bridge with two gateways behind it
    defroute rhard "$HARD_WAN_GW"
    bridge rhard "$HARD_LAN_IF"
    addr rhard "$HARD_LAN_IF" "$HARD_LAN_GW/26"
    veth rhard l-gw1 gwhard "$HOST_IF"
    veth rhard l-gw2 gwhard2 "$HOST_IF"
    attach rhard l-gw1 "$HARD_LAN_IF"
    attach rhard l-gw2 "$HARD_LAN_IF"
    addr gwhard "$HOST_IF" "$GWHARD_IP/26"
    addr gwhard2 "$HOST_IF" "$GWHARD2_IP/26"
    defroute gwhard "$HARD_LAN_GW"
    defroute gwhard2 "$HARD_LAN_GW"

    # easy router: one gateway on a point-to-point LAN
    addr reasy "$EASY_WAN_IF" "$EASY_WAN_IP/24"
    defroute reasy "$INET_IP"
    veth reasy "$EASY_LAN_IF" gweasy "$HOST_IF"
    addr reasy "$EASY_LAN_IF" "$EASY_LAN_GW/26"
    addr gweasy "$HOST_IF" "$GWEASY_IP/26"
    defroute gweasy "$EASY_LAN_GW"
    maybe_fail links

    for k in rhard reasy; do nsx "$k" sysctl -qw net.ipv4.ip_forward=1; done
    build_topology_v6
}

load_firewalls() {
    gen_rhard_nft "$LABDIR/rhard.nft"
    gen_reasy_nft "$LABDIR/reasy.nft"
    nsx rhard nft -f "$LABDIR/rhard.nft"
    nsx reasy nft -f "$LABDIR/reasy.nft"
    if [[ $LAB_CGNAT == yes ]]; then
        gen_carrier_nft "$LABDIR/carrier.nft"
        nsx carrier nft -f "$LABDIR/carrier.nft"
    fi
    maybe_fail nft
}

# ---- daemons ---------------------------------------------------------------

start_coturn() {
    local args
    mapfile -t args < <(coturn_args)
    start_daemon coturn srv turnserver "${args[@]}"
    wait_until 10 "coturn on $STUN1_IP/$STUN2_IP:$STUN_PORT" coturn_ready
    maybe_fail coturn
}

coturn_ready() {
    daemon_alive coturn || die "coturn exited; see $LABDIR/logs/coturn.log"
    listening srv u "$STUN1_IP" "$STUN_PORT" && listening srv u "$STUN2_IP" "$STUN_PORT" &&
        listening srv u "$STUN1_IP" "$STUN_ALT_PORT" && coturn_v6_ready
}

# LAB_CGNAT=yes: a STUN server on the carrier's inside, for miniupnpd's check
# only (see gen_miniupnpd_conf).
start_coturn_cgn() {
    [[ $LAB_CGNAT == yes ]] || return 0
    local args
    mapfile -t args < <(coturn_args "$CGN_GW_IP" "$CGN_STUN2_IP" cgn)
    start_daemon coturn-cgn carrier turnserver "${args[@]}"
    wait_until 10 "carrier coturn on $CGN_GW_IP:$STUN_PORT" coturn_cgn_ready
}

coturn_cgn_ready() {
    daemon_alive coturn-cgn || die "coturn-cgn exited; see $LABDIR/logs/coturn-cgn.log"
    listening carrier u "$CGN_GW_IP" "$STUN_PORT" && listening carrier u "$CGN_STUN2_IP" "$STUN_PORT" &&
        listening carrier u "$CGN_GW_IP" "$STUN_ALT_PORT"
}

start_mosquitto() {
    gen_mosquitto_conf "$LABDIR/mosquitto.conf"
    # mosquitto drops root for its own user, which must write the database
    mkdir -p "$LABDIR/run/mosquitto"
    if id mosquitto >/dev/null 2>&1; then chown mosquitto "$LABDIR/run/mosquitto"; fi
    start_daemon mosquitto srv mosquitto -c "$LABDIR/mosquitto.conf"
    wait_until 10 "mosquitto on $MQTT_IP:$MQTT_PORT" mosquitto_ready
    maybe_fail mosquitto
}

mosquitto_ready() {
    daemon_alive mosquitto || die "mosquitto exited; see $LABDIR/logs/mosquitto.log"
    listening srv t "$MQTT_IP" "$MQTT_PORT"
}

miniupnpd_wanted() { [[ $LAB_UPNP == yes || $LAB_NATPMP == yes || $LAB_PCP == yes ]]; }

start_miniupnpd() {
    miniupnpd_wanted || { log "UPnP, NAT-PMP and PCP all off: no miniupnpd"; return 0; }
    [[ -f $LABDIR/miniupnpd.conf ]] || gen_miniupnpd_conf "$LABDIR/miniupnpd.conf"
    # own pid file: miniupnpd refuses to start if the default one names a live process
    start_daemon miniupnpd rhard miniupnpd -d -f "$LABDIR/miniupnpd.conf" \
        -P "$LABDIR/run/miniupnpd.pidfile"
    wait_until 15 "miniupnpd ready" miniupnpd_ready
    maybe_fail miniupnpd
}

miniupnpd_ready() {
    local logf=$LABDIR/logs/miniupnpd.log
    daemon_alive miniupnpd || die "miniupnpd exited; see $logf"
    # only the current run's log section counts
    if sed -n '/^=== start/h; /^=== start/!H; ${x;p}' "$logf" |
        grep -q 'Port forwarding is now disabled'; then
        die "miniupnpd disabled port forwarding (STUN check failed); see $logf"
    fi
    if [[ $LAB_UPNP == yes ]]; then listening rhard t "*" "$UPNP_HTTP_PORT" || return 1; fi
    if [[ $LAB_NATPMP == yes || $LAB_PCP == yes ]]; then
        listening rhard u "*" "$NATPMP_PORT" || return 1
    fi
    miniupnpd_v6_ready || return 1
    sed -n '/^=== start/h; /^=== start/!H; ${x;p}' "$logf" | grep -q 'Port forwarding is now enabled'
}

apply_udp_block() {
    local state=off
    [[ -f $LABDIR/run/udp-block ]] && state=$(cat "$LABDIR/run/udp-block")
    nsx rhard nft flush chain inet filter lab_udp_block
    if [[ $state == on ]]; then
        nsx rhard nft add rule inet filter lab_udp_block \
            iifname "$HARD_LAN_IF" oifname "$HARD_WAN_IF" meta l4proto udp drop
    fi
    log "udp-block is $state on $(ns rhard)"
}

write_env() {
    local k v
    {
        printf 'LAB_ID=%s\nLABDIR=%s\n' "$LAB_ID" "$LABDIR"
        for k in "${HOSTKEYS[@]}"; do printf 'NS_%s=%s\n' "${k^^}" "$(ns "$k")"; done
        for v in "${ENV_VARS[@]}"; do printf '%s=%s\n' "$v" "${!v}"; done
        printf 'GW_IF=%s\nSTUN1=%s:%s\nSTUN2=%s:%s\nMQTT=%s:%s\n' "$HOST_IF" \
            "$STUN1_IP" "$STUN_PORT" "$STUN2_IP" "$STUN_PORT" "$MQTT_IP" "$MQTT_PORT"
        printf 'UPNP=%s\nNATPMP=%s\nPCP=%s\nLAN=%s\n' "$LAB_UPNP" "$LAB_NATPMP" "$LAB_PCP" "$LAB_LAN"
        printf 'EASY_NAT=%s\nCGNAT=%s\nMAX_LEASE=%s\n' "$LAB_EASY_NAT" "$LAB_CGNAT" "$LAB_MAX_LEASE"
        if [[ $LAB_CGNAT == yes ]]; then
            printf 'CARRIER_WAN_IP=%s\nCGN_GW_IP=%s\nCGN_NET=%s\n' "$CARRIER_WAN_IP" "$CGN_GW_IP" "$CGN_NET"
        fi
        printf 'MINIUPNPD_CONF=%s\nLEASE_FILE=%s\nLOGDIR=%s\n' "$LABDIR/miniupnpd.conf" \
            "$LABDIR/run/miniupnpd.leases" "$LABDIR/logs"
        write_env_v6
    } >"$LABDIR/env.tmp"
    mv "$LABDIR/env.tmp" "$LABDIR/env"
}

# ---- subcommands -----------------------------------------------------------

yesno() {
    local v=${!1:-yes}
    [[ $v == yes || $v == no ]] || die "$1 must be yes or no (got '$v')"
    printf -v "$1" '%s' "$v"
}

UP_DONE=0
up_exit() {
    local rc=$?
    [[ $UP_DONE -eq 1 ]] && return 0
    set +e
    log "up failed (rc=$rc); tearing down what was built"
    teardown
    rm -f "$LABDIR/env" "$LABDIR/env.tmp"
    exit 1
}

cmd_up() {
    init_lab "$1"
    local t0=$SECONDS
    [[ -d $LABDIR ]] || die "$LABDIR is not a directory"
    [[ -z $(ls -A "$LABDIR") ]] || die "$LABDIR is not empty"
    yesno LAB_UPNP; yesno LAB_NATPMP; yesno LAB_PCP
    [[ -z $(lab_namespaces) ]] || die "namespaces with prefix $PFX already exist"
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    mkdir -p "$LABDIR/logs" "$LABDIR/run"
    printf '%s\n' "$LAB_ID" >"$LABDIR/lab.id"
    : >"$LABDIR/namespaces"
    trap up_exit EXIT
    trap 'exit 130' INT TERM
    build_topology
    load_firewalls
    start_coturn # first: miniupnpd's ext_stun_host check needs it
    start_coturn_cgn
    start_mosquitto
    start_miniupnpd
    write_env
    maybe_fail env
    UP_DONE=1
    log "lab $LAB_ID up in $((SECONDS - t0))s (UPnP=$LAB_UPNP NAT-PMP=$LAB_NATPMP PCP=$LAB_PCP" \
        "second router=$LAB_EASY_NAT CGNAT=$LAB_CGNAT max lease=${LAB_MAX_LEASE:-default}$(v6_on && echo ' IPv6=yes')); env: $LABDIR/env"
}

teardown() {
    local f n pid
    # miniupnpd first so it can remove its own rules while its netns exists
    [[ -f $LABDIR/run/miniupnpd.proc ]] && stop_record "$LABDIR/run/miniupnpd.proc"
    for f in "$LABDIR"/run/*.proc; do [[ -e $f ]] && stop_record "$f"; done
    # Processes a test left inside OUR namespaces (none should): record, then stop.
    for n in $(lab_namespaces); do
        for pid in $(ip netns pids "$n" 2>/dev/null); do
            printf '%s %s %s\n' "$pid" "$(proc_start "$pid")" "$n" >"$LABDIR/run/stray-$pid.proc"
            log "stray pid $pid in $n: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
            stop_record "$LABDIR/run/stray-$pid.proc"
        done
    done
    if [[ -f $LABDIR/namespaces ]]; then
        while read -r n; do
            [[ -n $n && $n == "$PFX"* ]] || continue
            ip netns del "$n" 2>/dev/null || true
        done <"$LABDIR/namespaces"
    fi
    for n in $(lab_namespaces); do ip netns del "$n" 2>/dev/null || true; done
}

cmd_down() {
    init_lab "$1"
    local t0=$SECONDS
    teardown
    rm -f "$LABDIR/env"
    log "lab $LAB_ID down in $((SECONDS - t0))s"
}

cmd_leftovers() {
    init_lab "$1"
    local bad=0 n f
    for n in $(lab_namespaces); do echo "namespace $n"; bad=1; done
    for f in "$LABDIR"/run/*.proc; do
        [[ -e $f ]] || continue
        if record_alive "$f"; then echo "process $(basename "$f" .proc) pid $(cut -d' ' -f1 "$f")"; bad=1; fi
    done
    [[ $bad -eq 0 ]] && echo "clean ($PFX)"
    return "$bad"
}

cmd_reboot_router() {
    init_lab "$1"
    [[ -f $LABDIR/env ]] || die "no lab in $LABDIR"
    local t0 t1 late=${2:-0}
    [[ $late =~ ^[0-9]+$ ]] && ((late <= 120)) || die "UPNP_LATE_SECS must be 0-120 whole seconds (got '$late')"
    t0=$(date +%s.%N)
    LAB_UPNP=$(sed -n 's/^UPNP=//p' "$LABDIR/env")
    LAB_NATPMP=$(sed -n 's/^NATPMP=//p' "$LABDIR/env")
    LAB_PCP=$(sed -n 's/^PCP=//p' "$LABDIR/env")
    local maps=()
    mapfile -t maps < <(forwarded_ports)
    [[ -f $LABDIR/run/hold.proc ]] && stop_record "$LABDIR/run/hold.proc"
    stop_record "$LABDIR/run/miniupnpd.proc"
    nsx rhard nft flush ruleset
    nsx rhard nft -f "$LABDIR/rhard.nft"
    hold_inbound "${maps[@]}"
    apply_udp_block
    rm -f "$LABDIR/run/miniupnpd.leases"
    if command -v conntrack >/dev/null; then
        nsx rhard conntrack -F 2>/dev/null || true
    fi
    if ((late > 0)); then
        log "router $(ns rhard) forwards again; miniupnpd starts in ${late}s"
        sleep "$late"
    fi
    start_miniupnpd
    start_hold_release "${maps[@]}"
    t1=$(date +%s.%N)
    log "router $(ns rhard) rebooted in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')s"
}

# forwarded_ports: "udp 41641" lines, one per DNAT rule miniupnpd holds.
forwarded_ports() {
    # miniupnpd 2.3.1 writes e.g. `iif "wan0" @nh,72,8 0x11 th dport 41641
    # dnat ip to 10.77.0.10:41641` (0x11: UDP, 0x6: TCP)
    nsx rhard nft list chain inet filter prerouting_miniupnpd 2>/dev/null | awk '/dnat/ {
        p = ""; if ($0 ~ /0x11 |udp dport/) p = "udp"; else if ($0 ~ /0x0?6 |tcp dport/) p = "tcp"
        if (p != "" && match($0, /dport [0-9]+/)) print p, substr($0, RSTART + 6, RLENGTH - 6)
    }'
}

# LAB_HOLD_SECONDS=N (reboot-router, silent-loss): an idealised router that
# never lets a peer lock itself out. A packet that reaches a Linux router
# for a port with no forwarding creates a conntrack flow to the router
# itself, and every further packet of that peer keeps it (30 s UDP timeout),
# so the peer stays locked out after the forwarding is back. With a hold,
# WAN packets to the ports that were forwarded are dropped before conntrack
# sees them until miniupnpd forwards that port again, or N seconds pass.
# hold_inbound "PROTO PORT"...: install the drop.
hold_inbound() {
    local secs=${LAB_HOLD_SECONDS:-0} m proto port udp=() tcp=() rules=""
    [[ $secs =~ ^[0-9]+$ ]] || die "LAB_HOLD_SECONDS must be whole seconds (got '$secs')"
    ((secs > 0 && $# > 0)) || return 0
    for m in "$@"; do
        read -r proto port <<<"$m"
        if [[ $proto == udp ]]; then udp+=("$port"); else tcp+=("$port"); fi
    done
    ((${#udp[@]})) && rules+="iifname \"$HARD_WAN_IF\" udp dport { $(IFS=,; echo "${udp[*]}") } drop"$'\n'
    ((${#tcp[@]})) && rules+="iifname \"$HARD_WAN_IF\" tcp dport { $(IFS=,; echo "${tcp[*]}") } drop"$'\n'
    nsx rhard nft -f - <<EOF
table inet lab_hold {
    chain pre {
        type filter hook prerouting priority raw - 10; policy accept;
$rules    }
}
EOF
    log "holding inbound to ${*} on $(ns rhard) until forwarded again (at most ${secs}s)"
}

# start_hold_release "PROTO PORT"...: background watcher (run/hold.proc) that
# removes the hold once every port is forwarded again, bounded.
start_hold_release() {
    local secs=${LAB_HOLD_SECONDS:-0}
    ((secs > 0 && $# > 0)) || return 0
    nsx rhard nft list table inet lab_hold >/dev/null 2>&1 || return 0
    [[ -f $LABDIR/run/hold.proc ]] && stop_record "$LABDIR/run/hold.proc"
    # shellcheck disable=SC2016 # expanded by the watcher's bash
    start_daemon hold rhard bash -c '
        n=$1; shift
        for ((i = 0; i < n * 10; i++)); do
            rules=$(nft list chain inet filter prerouting_miniupnpd 2>/dev/null)
            back=1
            for p in "$@"; do grep -q "dport ${p#* } dnat" <<<"$rules" || back=0; done
            if ((back)); then echo "forwarding back after $((i / 10)).$((i % 10))s"; break; fi
            sleep 0.1
        done
        nft delete table inet lab_hold 2>/dev/null || true
        echo "hold released"' hold "$secs" "$@"
}

# silent-loss: the hard router loses its port forwardings without telling
# anyone: miniupnpd's nft chains are flushed behind its back (it keeps running,
# keeps its own list, and miniupnpd 2.3.1 keeps answering renewals with
# success), and the conntrack flows that went through those forwardings are
# deleted (their NAT bindings would otherwise keep forwarding; a reboot, a WAN
# reconnect or a firmware cleanup loses them too). Nothing is announced: no
# PCP ANNOUNCE, no SSDP restart, no epoch change.
cmd_silent_loss() {
    init_lab "$1"
    [[ -f $LABDIR/env ]] || die "no lab in $LABDIR"
    local c proto port maps=() chains=(miniupnpd prerouting_miniupnpd postrouting_miniupnpd)
    # forward: only the forward rules go; the DNAT rules, and with them the
    # router's UPnP table (GetSpecificPortMappingEntry), still say all is
    # well: a mapping "listed and renewed but dead" (tailscale #21208).
    # Packets then die in the forward chain, unconfirmed, so no peer can
    # lock itself out with a flow to the router.
    case ${2:-all} in
        all) ;;
        forward) chains=(miniupnpd) ;;
        *) die "usage: silent-loss LABDIR [all|forward]" ;;
    esac
    mapfile -t maps < <(forwarded_ports)
    [[ ${2:-all} == all ]] && hold_inbound "${maps[@]}"
    for c in "${chains[@]}"; do
        nsx rhard nft flush chain inet filter "$c"
    done
    if command -v conntrack >/dev/null; then
        for c in "${maps[@]}"; do
            read -r proto port <<<"$c"
            # inbound through the forwarding, and outbound the forwarding's
            # snat rule gave the mapped port
            nsx rhard conntrack -D -p "$proto" --orig-dst "$HARD_WAN_IP" --orig-port-dst "$port" \
                >/dev/null 2>&1 || true
            nsx rhard conntrack -D -p "$proto" --reply-dst "$HARD_WAN_IP" --reply-port-dst "$port" \
                >/dev/null 2>&1 || true
        done
    else
        log "conntrack(8) missing: established flows through the forwardings survive"
    fi
    [[ ${2:-all} == all ]] && start_hold_release "${maps[@]}"
    log "router $(ns rhard) silently lost its forwardings (${#maps[@]} mapped port(s): ${maps[*]:-none}); miniupnpd still runs"
}

cmd_udp_block() {
    init_lab "$1"
    [[ ${2:-} == on || ${2:-} == off ]] || die "usage: udp-block LABDIR on|off"
    [[ -f $LABDIR/env ]] || die "no lab in $LABDIR"
    echo "$2" >"$LABDIR/run/udp-block"
    apply_udp_block
}

cmd_broker() {
    init_lab "$1"
    [[ -f $LABDIR/env ]] || die "no lab in $LABDIR"
    case ${2:-} in
        stop) stop_record "$LABDIR/run/mosquitto.proc"; log "mosquitto stopped" ;;
        start) start_mosquitto ;;
        *) die "usage: broker LABDIR stop|start" ;;
    esac
}

cmd_exec() {
    init_lab "$1"
    local key=${2:-}
    valid_key "$key" || die "unknown host key '$key' (one of: ${HOSTKEYS[*]})"
    shift 2
    [[ $# -gt 0 ]] || die "usage: exec LABDIR HOSTKEY cmd..."
    exec ip netns exec "$(ns "$key")" "$@"
}

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0" >&2; exit 2; }

main() {
    local cmd=${1:-}
    [[ $# -ge 2 ]] || usage
    shift
    case $cmd in
        up) cmd_up "$1" ;;
        down) cmd_down "$1" ;;
        reboot-router) cmd_reboot_router "$@" ;;
        silent-loss) cmd_silent_loss "$@" ;;
        udp-block) cmd_udp_block "$@" ;;
        broker) cmd_broker "$@" ;;
        exec) cmd_exec "$@" ;;
        leftovers) cmd_leftovers "$1" ;;
        *) usage ;;
    esac
}

main "$@"
