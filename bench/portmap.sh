#!/usr/bin/env bash
# Port-mapping benchmark: edgereach vs n0-computer's `portmapper` 0.20 (the
# iroh stack's port mapper, wrapped by bench/portmap-n0), side by side in the
# namespace lab (tests/lab/lab.sh). A script that prints numbers, not a test:
# it fails only when the lab itself cannot be built or torn down.
#
#   sudo bench/portmap.sh                       # 10 runs of each
#   sudo BENCH_RUNS=3 bench/portmap.sh          # quicker
#
# Each run and implementation gets a fresh lab (PCP, NAT-PMP and UPnP IGD all
# on, miniupnpd 2.3.1), a listener on the gateway's UDP 41641 and an outside
# peer sending one datagram every 50 ms (fresh source port each, so conntrack
# never carries a flow across rule changes) to 203.0.113.2:41641 and, once the
# implementation reports it, to the external port it says it got. Measured:
#   mapped_s       start -> the implementation itself reports the mapping
#                  (edgereach: its mapping.created log line; n0: the
#                  portmapper's `new port mapping Some(..)` debug line)
#   reach_s        start -> first datagram from outside arrives (to 41641 or
#                  to the reported port)
#   reach41641_s   start -> first datagram sent to 41641 arrives (what a
#                  tailscaled peer uses: tailscaled advertises public-IP:41641)
#   same_port      external port obtained == 41641
#   binds_port     the implementation has a socket on UDP 41641 itself (it
#                  should not: it only maps the port; the listener holds it)
#   reboot_s       end of `lab.sh reboot-router` -> first datagram after it
#                  (">cap" if none within BENCH_REBOOT_CAP)
#   outage_s       longest gap between arrivals from 1 s before the reboot
#                  starts until recovery (the outage a peer sees)
#   cpu_ms_min     idle CPU (utime+stime, /proc/PID/stat) in ms per minute over
#                  BENCH_IDLE_SECS with the sender stopped: clock ticks, so one
#                  tick (10 ms) in 30 s already reads as 20 ms/min
#   cpu_sched_ms_min  the same from the threads' schedstat (ns resolution; a
#                  thread that exits inside the window is not counted)
#   rss_kib        VmRSS at the end of the idle window; hwm_kib VmHWM (peak)
#   stop_s         SIGTERM -> exit; left_rules: nft rules naming 41641 left on
#                  the router after exit (0 = mapping released)
#   clean          `lab.sh leftovers` after `lab.sh down` (1 = nothing left)
# Raw numbers: target/bench/portmap-<timestamp>.csv (and portmap-latest.csv).
#
# Env: BENCH_RUNS (10), BENCH_REBOOT_CAP (60 s), BENCH_IDLE_SECS (30),
#      BENCH_START_CAP (30 s, start -> reachable), BENCH_SETTLE (3 s, reachable
#      -> reboot), BENCH_IMPLS ("edgereach n0"), BENCH_KEEP=1 keeps the per-run
#      logs even when all went well.
#      EDGEREACH_BEFORE_BIN: an older edgereach build, run as implementation
#      "edgereach-before" (add it to BENCH_IMPLS) beside the current one, so
#      a change is measured before and after in the same run.
#      EDGEREACH_BIN / N0_BIN: use these binaries instead of building them
#      (`cargo build --release` in the repo root and in bench/portmap-n0, into
#      $CARGO_TARGET_DIR or the repo's git-ignored target/).
#      N0_ARGS: extra arguments for portmap-n0 (see its --help text in
#      bench/portmap-n0/src/main.rs), e.g. "--probe-first".
# Needs root (network namespaces) and the lab's packages
# (tests/lab/install-deps.sh). Traffic stays inside the lab's namespaces.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB=$REPO/tests/lab/lab.sh
UDPREACH=$REPO/tests/lab/udpreach.py
PY=/usr/bin/python3
PORT=41641

RUNS=${BENCH_RUNS:-10}
REBOOT_CAP=${BENCH_REBOOT_CAP:-60}
IDLE_SECS=${BENCH_IDLE_SECS:-30}
START_CAP=${BENCH_START_CAP:-30}
SETTLE=${BENCH_SETTLE:-3}
IMPLS=${BENCH_IMPLS:-"edgereach n0"}
KEEP=${BENCH_KEEP:-0}
N0_ARGS=${N0_ARGS:-}
GAP=0.05
REBOOT_CMD_CAP=60 # bound on `lab.sh reboot-router` itself
STOP_CAP=10       # SIGTERM -> exit, then KILL

OUT_DIR=$REPO/target/bench
CLK_TCK=$(getconf CLK_TCK)

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for v in RUNS REBOOT_CAP IDLE_SECS START_CAP SETTLE; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
for impl in $IMPLS; do
    [[ $impl == edgereach || $impl == edgereach-before || $impl == n0 ]] ||
        die "unknown implementation '$impl'"
done
[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces)"
for c in ip nft awk date getconf "$PY"; do command -v "$c" >/dev/null || die "$c not found"; done

# ---- state for the EXIT trap ------------------------------------------------

ROOT=""      # per-invocation work dir (mktemp)
CUR_LAB=""   # lab currently up
PIDS=()      # children still to stop (sender, implementation, listener)
ALL_OK=1

now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

proc_state() { # PID -> one letter, empty if gone
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    s=${s##*) }
    printf '%s' "${s%% *}"
}
alive() { local s; s=$(proc_state "$1"); [[ -n $s && $s != Z ]]; }

# stop_pid PID: TERM, bounded wait, KILL; reap. Only PIDs of our own children
# are ever passed here (they cannot be recycled before we reap them).
stop_pid() {
    local pid=$1 i
    [[ -n $pid ]] || return 0
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 30; i++)); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 20; i++)); do alive "$pid" || break; sleep 0.1; done
        fi
    fi
    alive "$pid" || wait "$pid" 2>/dev/null || true
}

forget_pid() { # drop a PID from PIDS once it has been stopped
    local p keep=()
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

cleanup() {
    local rc=$? p
    set +e
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    if [[ -n $CUR_LAB ]]; then
        "$LAB" down "$CUR_LAB" >/dev/null 2>&1
        "$LAB" leftovers "$CUR_LAB" >&2 || log "lab $CUR_LAB left something behind"
    fi
    if [[ -n $ROOT && -d $ROOT ]]; then
        if [[ $rc -eq 0 && $ALL_OK -eq 1 && $KEEP != 1 ]]; then
            rm -rf "$ROOT"
        else
            log "per-run logs kept in $ROOT"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- binaries ---------------------------------------------------------------

TARGET=${CARGO_TARGET_DIR:-$REPO/target}
if [[ -z ${EDGEREACH_BIN:-} && " $IMPLS " == *" edgereach "* ]]; then
    log "building edgereach (release)"
    (cd "$REPO" && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet)
    EDGEREACH_BIN=$TARGET/release/edgereach
fi
if [[ -z ${N0_BIN:-} && " $IMPLS " == *" n0 "* ]]; then
    log "building bench/portmap-n0 (release)"
    (cd "$REPO/bench/portmap-n0" && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet)
    N0_BIN=$TARGET/release/portmap-n0
fi
EDGEREACH_BIN=${EDGEREACH_BIN:+$(realpath "$EDGEREACH_BIN")}
N0_BIN=${N0_BIN:+$(realpath "$N0_BIN")}
[[ " $IMPLS " != *" edgereach "* || -x $EDGEREACH_BIN ]] || die "no edgereach binary"
[[ " $IMPLS " != *" n0 "* || -x $N0_BIN ]] || die "no portmap-n0 binary"
EDGEREACH_BEFORE_BIN=${EDGEREACH_BEFORE_BIN:+$(realpath "$EDGEREACH_BEFORE_BIN")}
[[ " $IMPLS " != *" edgereach-before "* || -x ${EDGEREACH_BEFORE_BIN:-} ]] ||
    die "edgereach-before needs EDGEREACH_BEFORE_BIN"

mkdir -p "$OUT_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)
CSV=$OUT_DIR/portmap-$STAMP.csv
ROOT=$(mktemp -d "${TMPDIR:-/tmp}/edgereach-bench.XXXXXX")
COLS=run,impl,method,external,same_port,binds_port,mapped_s,reach_s,reach41641_s,reboot_s,outage_s,external_after,cpu_ms_min,cpu_sched_ms_min,rss_kib,hwm_kib,stop_s,left_rules,clean
echo "$COLS" >"$CSV"

# Outside peer: every GAP s one datagram "PORT:SEQ" to HOST:41641 and to each
# port listed in TARGETS (re-read every round), each from a fresh socket.
cat >"$ROOT/sender.py" <<'EOF'
import socket, sys, time
host, port, targets, gap, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
end = time.monotonic() + secs
seq = 0
while time.monotonic() < end:
    ports = {port}
    try:
        with open(targets) as f:
            ports |= {int(x) for x in f.read().split() if x.isdigit()}
    except OSError:
        pass
    for p in sorted(ports):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.sendto(("%d:%d" % (p, seq)).encode(), (host, p))
        except OSError:
            pass
        finally:
            s.close()
    seq += 1
    time.sleep(gap)
EOF

# ---- per-implementation hooks -------------------------------------------------

# reported_external W IMPL: the external ip:port the implementation last
# reported (empty if none / lost), from its own output.
reported_external() {
    local w=$1
    if [[ $2 == n0 ]]; then
        awk '$1 == "mapped" { a = $2 } $1 == "unmapped" { a = "" } END { print a }' "$w/impl.out"
    else
        # its info lines: mapping.created/recovered "... -> IP:PORT by METHOD",
        # mapping.changed "router now maps IP:PORT instead of ...",
        # mapping.port_recovered "got the wanted port IP:PORT back ..."
        sed -nE -e 's/.* -> ([0-9.]+:[0-9]+) by .*kind="mapping\.(created|recovered)".*/\1/p' \
            -e 's/.*router now maps ([0-9.]+:[0-9]+) instead .*kind="mapping\.changed".*/\1/p' \
            -e 's/.*got the wanted port ([0-9.]+:[0-9]+) back .*kind="mapping\.port_recovered".*/\1/p' \
            "$w/impl.err" | tail -n 1
    fi
}

# first_mapped_ts W IMPL: unix time of the first mapping the implementation logged.
first_mapped_ts() {
    local line
    if [[ $2 == n0 ]]; then
        line=$(grep -m1 'new port mapping Some(' "$1/impl.err" || true)
    else
        line=$(grep -m1 'kind="mapping.created"' "$1/impl.err" || true)
    fi
    [[ -n $line ]] || return 0
    date -d "${line%% *}" +%s.%N 2>/dev/null || true
}

n0_method() {
    local m
    m=$(grep -m1 -oE 'new port mapping Some\((Upnp|Pcp|NatPmp)' "$1/impl.err" | sed 's/.*Some(//' || true)
    case $m in Upnp) echo upnp ;; Pcp) echo pcp ;; NatPmp) echo nat-pmp ;; *) echo none ;; esac
}

# status_field CFG EXPR: one value from `edgereach status --json`.
status_field() {
    timeout 5 "$EDGEREACH_BIN" status --json --config "$1" 2>/dev/null |
        "$PY" -c 'import json,sys
try:
    s = json.load(sys.stdin); m = s["portmap"]["mappings"][0]
    print(m.get(sys.argv[1]) or "")
except Exception:
    print("")' "$2" || true
}

first_got_after() { # FILE T [PORT]: receive time of the first datagram after T
    awk -v t="$2" -v p="${3:-}" '$1 == "got" && $3 > t && (p == "" || index($2, p ":") == 1) { print $3; exit }' "$1"
}

max_gap() { # FILE FROM TO: longest gap between arrivals in [FROM, TO]
    awk -v a="$2" -v b="$3" '$1 == "got" && $3 >= a && $3 <= b {
        if (have && $3 - last > g) g = $3 - last; last = $3; have = 1 }
        END { printf "%.3f", g }' "$1"
}

# sched_snapshot PID: "TID NS-ON-CPU" per live thread (ns resolution; threads
# that exit between two snapshots lose their share, so it is a lower bound).
sched_snapshot() {
    local f t ns _r
    for f in /proc/"$1"/task/*/schedstat; do
        t=${f%/schedstat}
        t=${t##*/}
        if read -r ns _r <"$f" 2>/dev/null; then printf '%s %s\n' "$t" "$ns"; fi
    done
    return 0
}
sched_delta_ns() { # SNAP_A SNAP_B
    awk 'NR == FNR { a[$1] = $2; next } { d = $2 - (($1 in a) ? a[$1] : 0); if (d > 0) s += d }
        END { printf "%.0f", s }' "$1" "$2"
}

cpu_ticks() { local s; s=$(cat "/proc/$1/stat"); s=${s##*) }; awk '{ print $12 + $13 }' <<<"$s"; }
vm_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# ---- one run ----------------------------------------------------------------------

run_one() {
    local run=$1 impl=$2 w labdir cfg t0 t ext port i
    local method=none external="" same=0 mapped_s=NA reach_s=NA reach41641_s=NA
    local reboot_s=NA outage_s=NA external_after="" cpu=NA rss=NA hwm=NA stop_s=NA left=NA clean=0
    local binds=NA cpu_sched=NA
    local listen_pid impl_pid sender_pid tr0 tr1 trec c_a c_b ta tb

    w=$ROOT/run$run-$impl
    labdir=$w/lab
    mkdir -p "$labdir"
    log "run $run/$RUNS $impl: lab up"
    CUR_LAB=$labdir
    "$LAB" up "$labdir" 2>"$w/lab-up.log" || die "lab up failed; see $w/lab-up.log"
    # shellcheck disable=SC1091
    source "$labdir/env"

    # listener on the gateway: long enough for every phase below
    local listen_secs=$((START_CAP + SETTLE + REBOOT_CMD_CAP + REBOOT_CAP + IDLE_SECS + STOP_CAP + 30))
    : >"$w/listen.out" # exists before the child opens it (polled below)
    ip netns exec "$NS_GWHARD" "$PY" "$UDPREACH" listen "$PORT" "$listen_secs" \
        </dev/null >"$w/listen.out" 2>"$w/listen.err" &
    listen_pid=$!
    PIDS+=("$listen_pid")
    for ((i = 0; i < 50; i++)); do grep -q '^ready' "$w/listen.out" && break; sleep 0.1; done
    grep -q '^ready' "$w/listen.out" || die "listener not ready in 5 s"

    : >"$w/targets"
    ip netns exec "$NS_PEER" "$PY" "$ROOT/sender.py" "$HARD_WAN_IP" "$PORT" "$w/targets" "$GAP" \
        "$((START_CAP + SETTLE + REBOOT_CMD_CAP + REBOOT_CAP + 30))" \
        </dev/null >"$w/sender.out" 2>&1 &
    sender_pid=$!
    PIDS+=("$sender_pid")

    # the implementation under test; `ip netns exec` execs it, so $! is its PID
    if [[ $impl == edgereach* ]]; then
        local bin=$EDGEREACH_BIN
        [[ $impl == edgereach-before ]] && bin=$EDGEREACH_BEFORE_BIN
        cfg=$w/edgereach.toml
        sed -e "s|^state_dir =.*|state_dir = \"$w/state\"|" \
            -e "s|^control_socket =.*|control_socket = \"$w/control.sock\"|" \
            -e "s|^stun_servers =.*|stun_servers = [\"$STUN1_IP:$STUN_PORT\", \"$STUN2_IP:$STUN_PORT\"]|" \
            -e "s|^socket = \"/run/tailscale/tailscaled.sock\"|socket = \"$w/no-tailscaled.sock\"|" \
            "$REPO/config/edgereach.toml" >"$cfg"
        : >"$w/impl.out"; : >"$w/impl.err"
        t0=$(now)
        ip netns exec "$NS_GWHARD" "$bin" run --config "$cfg" \
            </dev/null >"$w/impl.out" 2>"$w/impl.err" &
        impl_pid=$!
    else
        : >"$w/impl.out"; : >"$w/impl.err"
        t0=$(now)
        # shellcheck disable=SC2086
        ip netns exec "$NS_GWHARD" "$N0_BIN" $N0_ARGS \
            </dev/null >"$w/impl.out" 2>"$w/impl.err" &
        impl_pid=$!
        local bin=$N0_BIN
    fi
    PIDS+=("$impl_pid")
    for ((i = 0; i < 40; i++)); do
        [[ $(readlink "/proc/$impl_pid/exe" 2>/dev/null) == "$bin" ]] && break
        sleep 0.05
    done
    [[ $(readlink "/proc/$impl_pid/exe" 2>/dev/null) == "$bin" ]] ||
        die "pid $impl_pid is not $bin (exited? see $w/impl.err)"

    # start -> reachable; meanwhile point the sender at the reported port too
    local seen=""
    while :; do
        ext=$(reported_external "$w" "$impl")
        port=${ext##*:}
        if [[ -n $port && $port != "$seen" ]]; then
            printf '%s\n' "$port" >"$w/targets.tmp" && mv "$w/targets.tmp" "$w/targets"
            seen=$port
        fi
        t=$(first_got_after "$w/listen.out" 0)
        [[ -n $t ]] && break
        alive "$impl_pid" || break
        (($(awk -v a="$(now)" -v b="$t0" -v c="$START_CAP" 'BEGIN { print (a - b > c) }'))) && break
        sleep 0.05
    done
    if [[ -n ${t:-} ]]; then reach_s=$(fsub "$t" "$t0"); else reach_s=">cap"; fi
    t=$(first_got_after "$w/listen.out" 0 "$PORT")
    [[ -n $t ]] && reach41641_s=$(fsub "$t" "$t0")
    t=$(first_mapped_ts "$w" "$impl")
    [[ -n $t ]] && mapped_s=$(fsub "$t" "$t0")

    if [[ $impl == edgereach* ]]; then
        external=$(status_field "$cfg" external)
        method=$(status_field "$cfg" method)
    else
        external=$(awk '$1 == "mapped" { print $2; exit }' "$w/impl.out")
        method=$(n0_method "$w")
    fi
    [[ ${external##*:} == "$PORT" ]] && same=1
    # neither implementation should bind 41641 itself (the listener holds it)
    binds=$(ip netns exec "$NS_GWHARD" ss -Hunap "sport = :$PORT" | grep -c "pid=$impl_pid," || true)
    log "run $run $impl: method=${method:-?} external=${external:-none} mapped=${mapped_s}s reachable=${reach_s}s (41641: ${reach41641_s})"

    # router reboot -> reachable again
    if [[ $reach_s != ">cap" ]] && alive "$impl_pid"; then
        sleep "$SETTLE"
        tr0=$(now)
        timeout "$REBOOT_CMD_CAP" "$LAB" reboot-router "$labdir" 2>"$w/reboot.log" ||
            die "reboot-router failed; see $w/reboot.log"
        tr1=$(now)
        trec=""
        while :; do
            ext=$(reported_external "$w" "$impl")
            port=${ext##*:}
            if [[ -n $port && $port != "$seen" ]]; then
                printf '%s\n%s\n' "$seen" "$port" >"$w/targets.tmp" && mv "$w/targets.tmp" "$w/targets"
                seen=$port
            fi
            trec=$(first_got_after "$w/listen.out" "$tr1")
            [[ -n $trec ]] && break
            (($(awk -v a="$(now)" -v b="$tr1" -v c="$REBOOT_CAP" 'BEGIN { print (a - b > c) }'))) && break
            sleep 0.05
        done
        if [[ -n $trec ]]; then
            reboot_s=$(fsub "$trec" "$tr1")
            outage_s=$(max_gap "$w/listen.out" "$(fsub "$tr0" 1)" "$trec")
        else
            reboot_s=">cap"
            outage_s=">cap"
        fi
        external_after=$(reported_external "$w" "$impl")
        log "run $run $impl: reboot took $(fsub "$tr1" "$tr0")s; reachable again after ${reboot_s} s (outage ${outage_s} s); reports ${external_after:-nothing}"
    fi

    # idle: sender stopped, sample CPU and RSS
    stop_pid "$sender_pid"
    forget_pid "$sender_pid"
    if alive "$impl_pid"; then
        ta=$(now)
        c_a=$(cpu_ticks "$impl_pid")
        sched_snapshot "$impl_pid" >"$w/sched.a"
        for ((i = 0; i < IDLE_SECS; i++)); do sleep 1; alive "$impl_pid" || break; done
        if alive "$impl_pid"; then
            tb=$(now)
            c_b=$(cpu_ticks "$impl_pid")
            sched_snapshot "$impl_pid" >"$w/sched.b"
            cpu=$(awk -v a="$c_a" -v b="$c_b" -v hz="$CLK_TCK" -v s="$(fsub "$tb" "$ta")" \
                'BEGIN { printf "%.1f", (b - a) * 1000 / hz * 60 / s }')
            cpu_sched=$(awk -v ns="$(sched_delta_ns "$w/sched.a" "$w/sched.b")" \
                -v s="$(fsub "$tb" "$ta")" 'BEGIN { printf "%.2f", ns / 1e6 * 60 / s }')
            rss=$(vm_kib "$impl_pid" VmRSS)
            hwm=$(vm_kib "$impl_pid" VmHWM)
        fi
    fi

    # SIGTERM -> exit; is a mapping left on the router?
    if alive "$impl_pid"; then
        t=$(now)
        kill -TERM "$impl_pid"
        for ((i = 0; i < STOP_CAP * 20; i++)); do alive "$impl_pid" || break; sleep 0.05; done
        if alive "$impl_pid"; then
            stop_s=">$STOP_CAP"
        else
            stop_s=$(fsub "$(now)" "$t")
        fi
    else
        log "run $run $impl: the implementation exited early; see $w/impl.err"
        ALL_OK=0
    fi
    stop_pid "$impl_pid"
    forget_pid "$impl_pid"
    left=$(ip netns exec "$NS_RHARD" nft list ruleset | grep -c "$PORT" || true)

    stop_pid "$listen_pid"
    forget_pid "$listen_pid"
    "$LAB" down "$labdir" 2>"$w/lab-down.log" || log "lab down reported an error; see $w/lab-down.log"
    if "$LAB" leftovers "$labdir" >"$w/leftovers.txt" 2>&1; then clean=1; else ALL_OK=0; fi
    CUR_LAB=""
    log "run $run $impl: idle cpu=${cpu} ms/min (schedstat ${cpu_sched}) rss=${rss} KiB; stop=${stop_s}s; rules left=$left; clean=$clean"

    echo "$run,$impl,$method,$external,$same,$binds,$mapped_s,$reach_s,$reach41641_s,$reboot_s,$outage_s,$external_after,$cpu,$cpu_sched,$rss,$hwm,$stop_s,$left,$clean" >>"$CSV"
}

# ---- main -----------------------------------------------------------------------

T_START=$SECONDS
log "runs=$RUNS reboot_cap=${REBOOT_CAP}s idle=${IDLE_SECS}s impls=[$IMPLS]"
log "edgereach: ${EDGEREACH_BIN:-} ; before: ${EDGEREACH_BEFORE_BIN:-} ; n0: ${N0_BIN:-} ${N0_ARGS}"
for ((r = 1; r <= RUNS; r++)); do
    order=$IMPLS
    # alternate which implementation goes first, so neither always gets a cold machine
    if ((r % 2 == 0)); then order=$(printf '%s\n' $IMPLS | tac | tr '\n' ' '); fi
    for impl in $order; do run_one "$r" "$impl"; done
done
cp "$CSV" "$OUT_DIR/portmap-latest.csv"
ELAPSED=$((SECONDS - T_START))

"$PY" - "$CSV" "$REBOOT_CAP" "$ELAPSED" <<'EOF'
import csv, statistics, sys
path, cap, elapsed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = list(csv.DictReader(open(path)))
impls = []
for r in rows:
    if r["impl"] not in impls:
        impls.append(r["impl"])

def num(v):
    try:
        return float(v)
    except ValueError:
        return None

def stat(vals, unit_fmt="%.2f"):
    """median [min-max]; values that are not numbers (">cap" = not within the
    cap, NA = never) count as +infinity for the median and are counted."""
    n = len(vals)
    nums = sorted(x for x in (num(v) for v in vals) if x is not None)
    bad = [v for v in vals if num(v) is None]
    label = ">cap" if bad and all(v.startswith(">") for v in bad) else "never"
    if not nums:
        return "%s (%d/%d)" % (label, len(bad), n) if bad else "-"
    med = statistics.median(nums + [float("inf")] * len(bad))
    ms = label if med == float("inf") else unit_fmt % med
    s = "%s [%s-%s]" % (ms, unit_fmt % nums[0], unit_fmt % nums[-1])
    if bad:
        s += " %s %d/%d" % (label, len(bad), n)
    return s

def count(rs, key, want):
    return "%d/%d" % (sum(1 for r in rs if r[key] == want), len(rs))

def left(rs):
    return "%d/%d" % (sum(1 for r in rs if (num(r["left_rules"]) or 0) > 0), len(rs))

lines = [
    ("method used", lambda rs: ",".join(sorted({r["method"] for r in rs}))),
    ("start -> mapping reported (s)", lambda rs: stat([r["mapped_s"] for r in rs])),
    ("start -> reachable from outside (s)", lambda rs: stat([r["reach_s"] for r in rs])),
    ("start -> reachable on :41641 (s)", lambda rs: stat([r["reach41641_s"] for r in rs])),
    ("same port 41641 obtained", lambda rs: count(rs, "same_port", "1")),
    ("binds UDP 41641 itself", lambda rs: "%d/%d" % (sum(1 for r in rs if (num(r["binds_port"]) or 0) > 0), len(rs))),
    ("router reboot -> reachable (s, cap %ss)" % cap, lambda rs: stat([r["reboot_s"] for r in rs])),
    ("  longest outage around reboot (s)", lambda rs: stat([r["outage_s"] for r in rs])),
    ("idle CPU, utime+stime (ms/min)", lambda rs: stat([r["cpu_ms_min"] for r in rs], "%.0f")),
    ("idle CPU, schedstat (ms/min)", lambda rs: stat([r["cpu_sched_ms_min"] for r in rs], "%.2f")),
    ("RSS (KiB)", lambda rs: stat([r["rss_kib"] for r in rs], "%.0f")),
    ("  peak RSS, VmHWM (KiB)", lambda rs: stat([r["hwm_kib"] for r in rs], "%.0f")),
    ("SIGTERM -> exit (s)", lambda rs: stat([r["stop_s"] for r in rs])),
    ("mapping left after SIGTERM", left),
    ("lab clean after down", lambda rs: count(rs, "clean", "1")),
]
n = max(len([r for r in rows if r["impl"] == i]) for i in impls)
w0 = max(len(l[0]) for l in lines) + 2
cells = {i: [f([r for r in rows if r["impl"] == i]) for _, f in lines] for i in impls}
wc = {i: max(len(i), *(len(c) for c in cells[i])) + 2 for i in impls}
print()
print("medians over %d runs, [min-max]; %s" % (n, path))
print("metric".ljust(w0) + "".join(i.ljust(wc[i]) for i in impls))
print("-" * (w0 + sum(wc.values())))
for k, (name, _) in enumerate(lines):
    print(name.ljust(w0) + "".join(cells[i][k].ljust(wc[i]) for i in impls))
print("wall time: %dm%02ds" % (elapsed // 60, elapsed % 60))
EOF
