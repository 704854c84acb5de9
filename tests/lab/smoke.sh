#!/usr/bin/env bash
# Acceptance checks for a lab built by `lab.sh up LABDIR`.
#   smoke.sh LABDIR
# One PASS/FAIL line per check; exit 1 if any failed. Check f reboots the hard
# router, so it runs last. Every wait is bounded; background helpers are
# killed by PID on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$HERE/lab.sh
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
MAP_PORT=41641
FAILS=0 CHECKS=0
BG_PIDS=()
TMP=""

pass() { CHECKS=$((CHECKS + 1)); printf 'PASS %s\n' "$*"; }
fail() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); printf 'FAIL %s\n' "$*"; }
lx() { "$LAB" exec "$LABDIR" "$@"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }

load_env() {
    local k v
    [[ -f $LABDIR/env ]] || { echo "no $LABDIR/env: run lab.sh up first" >&2; exit 2; }
    while IFS='=' read -r k v; do
        [[ $k =~ ^[A-Z][A-Z0-9_]*$ ]] && printf -v "$k" '%s' "$v"
    done <"$LABDIR/env"
}

cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [[ -n $TMP ]] && rm -rf "$TMP"
}

# bg cmd... : start a bounded helper (callers wrap it in `timeout`), keep its PID.
spawn() { "$@" & BG_PIDS+=("$!"); LAST_BG=$!; }

# Python one-liners for the UDP reachability test.
LISTENER='import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("0.0.0.0",int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
try:
    d,a=s.recvfrom(512); print("got %s from %s:%d"%(d.decode(),a[0],a[1]),flush=True)
except socket.timeout: print("nothing",flush=True)'
SENDER='import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("0.0.0.0",0))
s.sendto(sys.argv[3].encode(),(sys.argv[1],int(sys.argv[2])))'

# probe_pair HOSTKEY : STUN1+STUN2 from one socket; sets M1 M2 (ip:port).
probe_pair() {
    local out port=$((20000 + RANDOM % 20000))
    out=$(lx "$1" timeout 10 "$PY" "$HERE/stunprobe.py" --port "$port" "$STUN1" "$STUN2") || true
    M1=$(awk -v s="$STUN1" '$1==s {print $2}' <<<"$out")
    M2=$(awk -v s="$STUN2" '$1==s {print $2}' <<<"$out")
}

check_a() {
    probe_pair gwhard
    if [[ ${M1%:*} == "$HARD_WAN_IP" && ${M2%:*} == "$HARD_WAN_IP" && ${M1#*:} != "${M2#*:}" ]]; then
        pass "a. hard NAT: STUN1 sees $M1, STUN2 sees $M2 (ports differ)"
    else
        fail "a. hard NAT: STUN1 sees ${M1:-none}, STUN2 sees ${M2:-none} (want $HARD_WAN_IP, different ports)"
    fi
}

check_b() {
    probe_pair gweasy
    if [[ ${M1%:*} == "$EASY_WAN_IP" && $M1 == "$M2" ]]; then
        pass "b. easy NAT: STUN1 and STUN2 both see $M1"
    else
        fail "b. easy NAT: STUN1 sees ${M1:-none}, STUN2 sees ${M2:-none} (want $EASY_WAN_IP, same port)"
    fi
}

# udp_reach TAG : listener on gwhard:MAP_PORT, datagrams from peer (fresh
# source port each: a conntrack flow would outlive rule changes). 0 if received.
udp_reach() {
    local f=$TMP/reach.$1 i lpid
    spawn lx gwhard timeout 8 "$PY" -c "$LISTENER" "$MAP_PORT" 4 >"$f" 2>&1
    lpid=$LAST_BG
    for ((i = 0; i < 30; i++)); do
        lx gwhard ss -Hlnu "sport = :$MAP_PORT" | grep -q . && break
        sleep 0.1
    done
    for ((i = 1; i <= 5; i++)); do
        lx peer timeout 3 "$PY" -c "$SENDER" "$HARD_WAN_IP" "$MAP_PORT" "$1-$i" || true
        sleep 0.3
        grep -q '^got' "$f" && break
    done
    kill -TERM "$lpid" 2>/dev/null || true
    wait "$lpid" 2>/dev/null || true
    REACH=$(head -n1 "$f")
    grep -q "^got $1-" "$f"
}

check_c() {
    local out
    if [[ $UPNP != yes ]]; then
        if lx gwhard timeout 10 upnpc -i -l 2>&1 | grep -q 'ExternalIPAddress'; then
            fail "c. UPnP disabled but an IGD answered"
        else pass "c. UPnP disabled: no IGD answers"; fi
        return
    fi
    out=$(lx gwhard timeout 15 upnpc -i -e edgereach-smoke -a "$GWHARD_IP" "$MAP_PORT" "$MAP_PORT" UDP 2>&1) || true
    grep -q "is redirected to internal $GWHARD_IP:$MAP_PORT" <<<"$out" ||
        { fail "c. upnpc -a failed: $(tail -n2 <<<"$out" | tr '\n' ' ')"; return; }
    out=$(lx gwhard timeout 15 upnpc -i -l 2>&1) || true
    grep -q "UDP *$MAP_PORT->$GWHARD_IP:$MAP_PORT" <<<"$out" ||
        { fail "c. upnpc -l does not list $MAP_PORT->$GWHARD_IP:$MAP_PORT"; return; }
    if udp_reach mapped; then
        pass "c. UPnP mapping $HARD_WAN_IP:$MAP_PORT->$GWHARD_IP:$MAP_PORT listed; peer datagram arrived ($REACH)"
    else
        fail "c. mapping listed but peer datagram did not arrive ($REACH)"
    fi
    lx gwhard timeout 15 upnpc -i -d "$MAP_PORT" UDP >/dev/null 2>&1 || true
    out=$(lx gwhard timeout 15 upnpc -i -l 2>&1) || true
    if grep -q "UDP *$MAP_PORT->" <<<"$out"; then
        fail "c. mapping still listed after upnpc -d"
    elif udp_reach unmapped; then
        fail "c. mapping deleted but unsolicited datagram still arrived ($REACH)"
    else
        pass "c. mapping deleted; unsolicited datagram from peer now dropped"
    fi
}

check_d() {
    local out
    out=$(lx gwhard timeout 4 natpmpc -g "$HARD_LAN_GW" 2>&1) || true
    if [[ $NATPMP == yes ]]; then
        if grep -q "Public IP address : $HARD_WAN_IP" <<<"$out"; then
            pass "d. natpmpc: public address $HARD_WAN_IP ($(grep -m1 epoch <<<"$out"))"
        else fail "d. natpmpc got no public address: $(tail -n1 <<<"$out")"; fi
    elif grep -q "Public IP address" <<<"$out"; then
        fail "d. NAT-PMP disabled but natpmpc got an answer"
    else pass "d. NAT-PMP disabled: natpmpc gets no answer"; fi
}

check_g() {
    local out rc=0 nonce
    out=$(lx gwhard timeout 10 "$PY" "$HERE/pcpprobe.py" "$HARD_LAN_GW" "$GWHARD_IP" 41645) || rc=$?
    if [[ $PCP != yes ]]; then
        if [[ $rc -eq 2 ]]; then pass "g. PCP disabled: MAP request gets no answer"
        else fail "g. PCP disabled but MAP got: $out"; fi
        return
    fi
    if [[ $rc -eq 0 && $out == *"external=$HARD_WAN_IP:"* ]]; then
        nonce=${out##*nonce=}
        lx gwhard timeout 10 "$PY" "$HERE/pcpprobe.py" "$HARD_LAN_GW" "$GWHARD_IP" 41645 \
            --lifetime 0 --nonce "$nonce" >/dev/null || true
        pass "g. PCP MAP: ${out% nonce=*} (then deleted)"
    else fail "g. PCP MAP failed: $out"; fi
}

check_e() {
    local topic="edgereach/smoke/$$" msg="hello-$RANDOM-$RANDOM" f=$TMP/mqtt i spid
    spawn lx peer timeout 12 mosquitto_sub -h "$MQTT_IP" -p "$MQTT_PORT" -t "$topic" -C 1 -W 10 >"$f" 2>&1
    spid=$LAST_BG
    # mosquitto_sub has no "subscribed" signal: publish until it has the message
    for ((i = 0; i < 20; i++)); do
        sleep 0.3
        lx gwhard timeout 3 mosquitto_pub -h "$MQTT_IP" -p "$MQTT_PORT" -t "$topic" -q 1 -m "$msg" || true
        grep -qx "$msg" "$f" && break
    done
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    if grep -qx "$msg" "$f"; then
        pass "e. MQTT: gwhard -> $MQTT -> peer delivered '$msg'"
    else fail "e. MQTT: message not received by peer ($(head -c 200 "$f"))"; fi
}

check_h() {
    local out
    "$LAB" udp-block "$LABDIR" on 2>/dev/null || { fail "h. udp-block on failed"; return; }
    out=$(lx gwhard timeout 10 "$PY" "$HERE/stunprobe.py" --retries 2 --timeout 0.5 "$STUN1" 2>&1) || true
    "$LAB" udp-block "$LABDIR" off 2>/dev/null || { fail "h. udp-block off failed"; return; }
    if [[ $out != *timeout* ]]; then
        fail "h. udp-block on: STUN still answered ($out)"; return
    fi
    out=$(lx gwhard timeout 10 "$PY" "$HERE/stunprobe.py" "$STUN1" 2>&1) || true
    if [[ $out == *"$HARD_WAN_IP:"* ]]; then pass "h. udp-block: on = STUN times out, off = answered again"
    else fail "h. udp-block off: STUN still failing ($out)"; fi
}

bootid() { grep -o 'BOOTID=[0-9]*' "$LABDIR/logs/miniupnpd.log" | tail -n1; }
epoch() { lx gwhard timeout 4 natpmpc -g "$HARD_LAN_GW" 2>/dev/null | awk '/^epoch/ {print $3; exit}'; }

# After a reboot, wait (bounded) until the router's portmapping answers again.
router_answers() {
    if [[ $UPNP == yes ]]; then
        lx gwhard timeout 10 upnpc -i -l 2>/dev/null | grep -q "ExternalIPAddress = $HARD_WAN_IP"
    elif [[ $NATPMP == yes ]]; then
        [[ -n $(epoch) ]]
    else
        lx gwhard timeout 5 "$PY" "$HERE/pcpprobe.py" "$HARD_LAN_GW" "$GWHARD_IP" 41646 --lifetime 0 >/dev/null
    fi
}

check_f() {
    local b0 b1 e0="" e1="" t0 t1 t2 ok=0 i notes=""
    if [[ $UPNP != yes && $NATPMP != yes && $PCP != yes ]]; then
        pass "f. no miniupnpd in this lab: reboot check skipped"; return
    fi
    b0=$(bootid)
    [[ $NATPMP == yes ]] && e0=$(epoch)
    t0=$(now)
    "$LAB" reboot-router "$LABDIR" 2>/dev/null || { fail "f. lab.sh reboot-router failed"; return; }
    t1=$(now)
    for ((i = 0; i < 30; i++)); do
        router_answers && { ok=1; break; }
        sleep 0.5
    done
    t2=$(now)
    b1=$(bootid)
    [[ $NATPMP == yes ]] && e1=$(epoch)
    [[ $b0 != "$b1" ]] || { ok=0; notes+=" BOOTID unchanged"; }
    if [[ -n $e0 ]]; then
        [[ -n $e1 && $e1 -lt $e0 ]] || { ok=0; notes+=" epoch not reset ($e0 -> ${e1:-none})"; }
        notes+=" epoch $e0->$e1"
    fi
    if [[ $ok -eq 1 ]]; then
        pass "f. reboot-router took $(elapsed "$t0" "$t1")s; router answered $(elapsed "$t0" "$t2")s after reboot start; $b0->${b1#BOOTID=};$notes"
    else
        fail "f. after reboot-router:$notes (waited $(elapsed "$t0" "$t2")s)"
    fi
}

main() {
    [[ $# -eq 1 ]] || { echo "usage: $0 LABDIR" >&2; exit 2; }
    LABDIR=$(realpath -m -- "$1")
    load_env
    TMP=$(mktemp -d "$LABDIR/smoke.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    local t0
    t0=$(now)
    echo "smoke: lab $LAB_ID (UPnP=$UPNP NAT-PMP=$NATPMP PCP=$PCP)"
    check_a; check_b; check_c; check_d; check_g; check_e; check_h; check_f
    echo "smoke: $((CHECKS - FAILS))/$CHECKS passed in $(elapsed "$t0" "$(now)")s"
    [[ $FAILS -eq 0 ]]
}

main "$@"
