# shellcheck shell=bash
# Process records for lab.sh (sourced, not run). Each daemon the lab starts
# gets LABDIR/run/NAME.proc = "PID STARTTIME HOSTKEY". Only recorded PIDs are
# ever signalled, and the start time guards against a recycled PID.

TERM_WAIT=5 # seconds between SIGTERM and SIGKILL

# proc_start PID: start time (field 22 of /proc/PID/stat; comm may hold spaces).
proc_start() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    printf '%s' "${20}"
}

# proc_state PID: one-letter state (Z = zombie, i.e. already dead).
proc_state() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    s=${s##*) }
    printf '%s' "${s%% *}"
}

# record_alive FILE: the recorded process still runs (same PID, same start).
record_alive() {
    local pid st _k
    read -r pid st _k <"$1" || return 1
    [[ -n $pid && $(proc_start "$pid") == "$st" ]] || return 1
    [[ $(proc_state "$pid") != Z ]]
}

# stop_record FILE: TERM, bounded wait, KILL, bounded wait; then forget it.
stop_record() {
    local f=$1 pid st _k i
    [[ -f $f ]] || return 0
    read -r pid st _k <"$f" || true
    if record_alive "$f"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < TERM_WAIT * 10; i++)); do
            record_alive "$f" || break
            sleep 0.1
        done
        if record_alive "$f"; then
            log "pid $pid ($(basename "$f" .proc)) ignored TERM; sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 20; i++)); do record_alive "$f" || break; sleep 0.1; done
        fi
    fi
    # reap it if it was our own child (a failed `up`); never blocks on a live one
    record_alive "$f" || wait "$pid" 2>/dev/null || true
    rm -f "$f"
}
