#!/usr/bin/env bash
# A Tailscale mesh on top of the namespace lab (tests/lab/lab.sh): a
# self-hosted headscale in ns srv and tailscaled nodes in lab hosts.
#
#   mesh.sh headscale LABDIR [b]              start headscale on 203.0.113.30:8080,
#                                             create user "lab" and print a reusable
#                                             pre-auth key (also in LABDIR/headscale/authkey,
#                                             its user id in LABDIR/headscale/userid); "b":
#                                             a second, independent headscale on
#                                             https://203.0.113.31 (port 443, a lab CA in
#                                             LABDIR/tls; tailscaled started later trusts
#                                             it), state in LABDIR/headscale-b
#   mesh.sh hs LABDIR a|b args…               headscale CLI of instance a or b
#   mesh.sh join LABDIR HOSTKEY NAME AUTHKEY  start tailscaled NAME in HOSTKEY's namespace
#                                             (userspace networking, UDP 41641) and log in
#   mesh.sh tailscaled LABDIR HOSTKEY NAME    the same without logging in (a new node)
#   mesh.sh netcheck LABDIR NAME [args…]      `tailscale netcheck` in NAME's namespace,
#                                             only once its tailscaled has the lab DERP map
#   mesh.sh cli LABDIR NAME args…             `tailscale --socket … args…` in NAME's namespace
#   mesh.sh stop LABDIR NAME                  stop tailscaled NAME (TERM, then KILL)
#   mesh.sh kill LABDIR NAME                  kill -9 tailscaled NAME
#   mesh.sh start LABDIR NAME                 start tailscaled NAME again from its state
#   mesh.sh run LABDIR PROC HOSTKEY cmd…      any daemon in HOSTKEY's namespace, recorded
#                                             as LABDIR/run/PROC.proc (stopped by lab.sh down)
#
# MESH_TS_ENV="TS_DISABLE_PORTMAPPER=1 …" adds TS_* variables to a tailscaled
# started by join (kept for start).
#
# DERP map: two STUN-only regions, 900 lab-a -> 203.0.113.10:3478 and
# 901 lab-b -> 203.0.113.11:3478 (LABDIR/derp.yaml for headscale, and the same
# map in Tailscale's JSON format in LABDIR/derp.json for edgereach). No relay,
# unless MESH_DERP=yes at `headscale`: then tailscale's own derper runs in ns
# srv on 203.0.113.40 (HTTPS 443 with a self-signed IP certificate pinned in
# the map by its SHA-256, plain HTTP 80 for /generate_204, no STUN) as a
# second node of both regions, so either can be a home region and relay.
# Daemons are recorded in LABDIR/run/*.proc like lab.sh does, so `lab.sh down
# LABDIR` stops them. Logs: LABDIR/logs/headscale.log, LABDIR/logs/tailscaled-NAME.log.
# Binaries: $EDGEREACH_TOOLS (default /var/cache/edgereach-tools/bin).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf 'mesh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# shellcheck source=lab-proc.sh
source "$HERE/lab-proc.sh"

TOOLS=${EDGEREACH_TOOLS:-/var/cache/edgereach-tools/bin}
HEADSCALE=$TOOLS/headscale TAILSCALED=$TOOLS/tailscaled TAILSCALE=$TOOLS/tailscale
HS_IP=203.0.113.30 HS_PORT=8080 HS_GRPC_PORT=50443 HS_INST= HS_TLS=
DERP_IP=203.0.113.40 DERPER=$TOOLS/derper
HS_URL=http://$HS_IP:$HS_PORT
# MESH_TS_PORT: tailscaled's --port (a gateway set up otherwise than we ask).
TS_PORT=${MESH_TS_PORT:-41641}
HS_USER=lab

# ---- helpers ---------------------------------------------------------------

init_lab() {
    [[ -n ${1:-} ]] || die "LABDIR missing"
    LABDIR=$(realpath -m -- "$1")
    [[ -f $LABDIR/env ]] || die "no lab in $LABDIR (run lab.sh up first)"
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    mkdir -p "$LABDIR/logs" "$LABDIR/run"
}

labenv() { # NAME -> value from LABDIR/env
    local v
    v=$(sed -n "s/^$1=//p" "$LABDIR/env")
    [[ -n $v ]] || die "LABDIR/env has no $1"
    printf '%s' "$v"
}

ns_of() { # HOSTKEY -> namespace name
    [[ $1 =~ ^[a-z0-9]+$ ]] || die "bad host key '$1'"
    labenv "NS_${1^^}"
}

# start_daemon NAME HOSTKEY cmd... : foreground daemon in a namespace, recorded
# in LABDIR/run/NAME.proc ("PID STARTTIME HOSTKEY", as lab.sh does). `ip netns
# exec` execs the command, so the recorded PID is the daemon itself.
start_daemon() {
    local name=$1 key=$2 nsn pid
    shift 2
    nsn=$(ns_of "$key")
    [[ -f $LABDIR/run/$name.proc ]] && record_alive "$LABDIR/run/$name.proc" &&
        die "$name already runs (pid $(cut -d' ' -f1 "$LABDIR/run/$name.proc"))"
    printf '=== start %s\n' "$(date -Is)" >>"$LABDIR/logs/$name.log"
    ip netns exec "$nsn" "$@" </dev/null >>"$LABDIR/logs/$name.log" 2>&1 &
    pid=$!
    printf '%s %s %s\n' "$pid" "$(proc_start "$pid")" "$key" >"$LABDIR/run/$name.proc"
    log "started $name in $nsn pid $pid"
}

alive() { record_alive "$LABDIR/run/$1.proc"; }

# wait_for SECONDS DESCRIPTION DAEMON cmd... : bounded poll every 0.2 s; fails
# early when DAEMON (a run/*.proc name) has exited.
wait_for() {
    local secs=$1 desc=$2 daemon=$3 i
    shift 3
    for ((i = 0; i < secs * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        alive "$daemon" || die "$daemon exited while waiting for $desc; see $LABDIR/logs/$daemon.log"
        sleep 0.2
    done
    die "timed out after ${secs}s waiting for $desc; see $LABDIR/logs/$daemon.log"
}

need_bin() { [[ -x $1 ]] || die "missing binary $1"; }

# ---- headscale ---------------------------------------------------------------

HSDIR() { printf '%s/headscale%s' "$LABDIR" "${HS_INST:+-$HS_INST}"; }
# lab_ca : a throw-away CA and a certificate for instance b's address, plus
# a bundle (system roots + lab CA) for tailscaled's SSL_CERT_FILE.
lab_ca() {
    local t=$LABDIR/tls
    [[ -f $t/bundle.pem ]] && return 0
    mkdir -p "$t"
    chmod 700 "$t"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=edgereach lab CA" -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=203.0.113.31" -keyout "$t/hs-b.key" -out "$t/hs-b.csr" 2>/dev/null
    printf 'subjectAltName=IP:203.0.113.31\nextendedKeyUsage=serverAuth\n' >"$t/ext"
    openssl x509 -req -in "$t/hs-b.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
        -days 2 -extfile "$t/ext" -out "$t/hs-b.crt" 2>/dev/null
    cat /etc/ssl/certs/ca-certificates.crt "$t/ca.pem" >"$t/bundle.pem" 2>/dev/null ||
        cp "$t/ca.pem" "$t/bundle.pem"
}

HSNAME() { printf 'headscale%s' "${HS_INST:+-$HS_INST}"; }

# select_instance a|b : a is the default headscale; b a second one with its
# own address, state, sockets and process record.
select_instance() {
    case ${1:-a} in
    a) ;;
    # TLS on 443: tailscaled re-dials a control server it dialed less than
    # 2 minutes ago over HTTPS on port 443 only (controlhttp forceNoise443),
    # so a node moved from one server to another needs the second on 443.
    b) HS_IP=203.0.113.31 HS_PORT=443 HS_GRPC_PORT=50444 HS_INST=b HS_TLS=1
       HS_URL=https://203.0.113.31 ;;
    *) die "headscale instance must be a or b, got '$1'" ;;
    esac
}

# write_derp_files [CERTNAME]: with CERTNAME, each region also gets a DERP
# node (the one lab derper; STUN off there): a region whose nodes are all
# STUN-only can't be a home region, and tailscaled homes on the nearest.
write_derp_files() {
    local stun1 stun2 port cert=${1:-} relay_yaml_a="" relay_yaml_b="" relay_json_a="" relay_json_b=""
    stun1=$(labenv STUN1_IP) stun2=$(labenv STUN2_IP) port=$(labenv STUN_PORT)
    if [[ -n $cert ]]; then
        relay_yaml() { # REGION
            printf '\n      - name: %sd\n        regionid: %s\n        hostname: %s\n        ipv4: %s\n        ipv6: none\n        stunport: -1\n        derpport: 443\n        canport80: true\n        certname: %s' \
                "$1" "$1" "$DERP_IP" "$DERP_IP" "$cert"
        }
        relay_json() { # REGION
            printf ',{"Name":"%sd","RegionID":%s,"HostName":"%s","IPv4":"%s","IPv6":"none","STUNPort":-1,"DERPPort":443,"CanPort80":true,"CertName":"%s"}' \
                "$1" "$1" "$DERP_IP" "$DERP_IP" "$cert"
        }
        relay_yaml_a=$(relay_yaml 900) relay_yaml_b=$(relay_yaml 901)
        relay_json_a=$(relay_json 900) relay_json_b=$(relay_json 901)
    fi
    cat >"$LABDIR/derp.yaml" <<EOF
regions:
  900:
    regionid: 900
    regioncode: lab-a
    regionname: Lab STUN A
    nodes:
      - name: 900a
        regionid: 900
        hostname: $stun1
        ipv4: $stun1
        ipv6: none
        stunport: $port
        stunonly: true$relay_yaml_a
  901:
    regionid: 901
    regioncode: lab-b
    regionname: Lab STUN B
    nodes:
      - name: 901a
        regionid: 901
        hostname: $stun2
        ipv4: $stun2
        ipv6: none
        stunport: $port
        stunonly: true$relay_yaml_b
EOF
    cat >"$LABDIR/derp.json" <<EOF
{"Regions":{
 "900":{"RegionID":900,"RegionCode":"lab-a","RegionName":"Lab STUN A","Nodes":[{"Name":"900a","RegionID":900,"HostName":"$stun1","IPv4":"$stun1","STUNPort":$port,"STUNOnly":true}$relay_json_a]},
 "901":{"RegionID":901,"RegionCode":"lab-b","RegionName":"Lab STUN B","Nodes":[{"Name":"901a","RegionID":901,"HostName":"$stun2","IPv4":"$stun2","STUNPort":$port,"STUNOnly":true}$relay_json_b]}
}}
EOF
}

write_headscale_config() {
    local d
    d=$(HSDIR)
    cat >"$d/config.yaml" <<EOF
# Generated by tests/lab/mesh.sh for lab $LABDIR
server_url: $HS_URL
listen_addr: $HS_IP:$HS_PORT
metrics_listen_addr: ""           # empty = no metrics/debug listener
grpc_listen_addr: 127.0.0.1:$HS_GRPC_PORT # loopback of the srv namespace only
grpc_allow_insecure: false
trusted_proxies: []
noise:
  private_key_path: $d/noise_private.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: false
  urls: []
  paths:
    - $LABDIR/derp.yaml
  auto_update_enabled: false
  update_frequency: 24h
disable_check_updates: true
node:
  expiry: 0
  ephemeral:
    inactivity_timeout: 30m
database:
  type: sqlite
  sqlite:
    path: $d/db.sqlite
    write_ahead_log: true
acme_url: ""
tls_letsencrypt_hostname: ""
tls_letsencrypt_cache_dir: $d/cache
tls_cert_path: "${HS_TLS:+$LABDIR/tls/hs-b.crt}"
tls_key_path: "${HS_TLS:+$LABDIR/tls/hs-b.key}"
log:
  level: info
  format: text
policy:
  mode: file
  path: ""
dns:
  magic_dns: false
  base_domain: ""
  override_local_dns: false  # true would require dns.nameservers.global
  nameservers:
    global: []
    split: {}
  search_domains: []
  extra_records: []
unix_socket: $d/headscale.sock
unix_socket_permission: "0770"
logtail:
  enabled: false
taildrop:
  enabled: false
auto_update:
  enabled: false
EOF
}

hs() { # headscale CLI over the unix socket, in ns srv
    ip netns exec "$(ns_of srv)" env HOME="$(HSDIR)" \
        "$HEADSCALE" -c "$(HSDIR)/config.yaml" --force "$@"
}

hs_ready() {
    [[ -S $(HSDIR)/headscale.sock ]] &&
        ip netns exec "$(ns_of srv)" curl -fsS -m 2 ${HS_TLS:+--cacert "$LABDIR/tls/ca.pem"} \
            "$HS_URL/health" >/dev/null &&
        hs users list -o json >/dev/null
}

# start_derper: with MESH_DERP=yes, run derper in ns srv and print the pinned
# CertName for the DERP map; print nothing otherwise.
start_derper() {
    [[ ${MESH_DERP:-no} == yes ]] || return 0
    need_bin "$DERPER"
    local nsn d crt
    nsn=$(ns_of srv) d=$LABDIR/derper
    mkdir -p "$d"
    chmod 700 "$d"
    if ! ip -n "$nsn" -4 addr show dev eth0 | grep -qF " $DERP_IP/"; then
        ip -n "$nsn" addr add "$DERP_IP/24" dev eth0
    fi
    if ! { [[ -f $LABDIR/run/derper.proc ]] && alive derper; }; then
        start_daemon derper srv "$DERPER" -a "$DERP_IP:443" -http-port 80 -stun=false \
            -certmode manual -certdir "$d" -hostname "$DERP_IP" -home blank
    fi
    crt=$d/$DERP_IP.crt
    wait_for 20 "derper certificate and HTTP listener" derper derper_ready "$crt"
    printf 'sha256-raw:%s' "$(openssl x509 -in "$crt" -outform DER | sha256sum | cut -d' ' -f1)"
}

derper_ready() {
    [[ -s $1 ]] && ip netns exec "$(ns_of srv)" curl -fsS -m 2 -o /dev/null "http://$DERP_IP/generate_204"
}

cmd_headscale() {
    init_lab "$1"
    select_instance "${2:-a}"
    need_bin "$HEADSCALE"
    local nsn d uid key cert
    nsn=$(ns_of srv) d=$(HSDIR)
    mkdir -p "$d"
    chmod 700 "$d"
    if ! ip -n "$nsn" -4 addr show dev eth0 | grep -qF " $HS_IP/"; then
        ip -n "$nsn" addr add "$HS_IP/24" dev eth0
    fi
    cert=$(start_derper)
    write_derp_files "$cert"
    [[ -z $HS_TLS ]] || lab_ca
    write_headscale_config
    if [[ -f $LABDIR/run/$(HSNAME).proc ]] && alive "$(HSNAME)"; then
        log "$(HSNAME) already runs"
    else
        start_daemon "$(HSNAME)" srv env HOME="$d" "$HEADSCALE" -c "$d/config.yaml" serve
    fi
    wait_for 30 "headscale on $HS_URL" "$(HSNAME)" hs_ready
    if ! hs users list -o json | jq -e --arg u "$HS_USER" 'any((. // [])[]; .name == $u)' >/dev/null; then
        hs users create "$HS_USER" >/dev/null
    fi
    uid=$(hs users list -o json | jq -r --arg u "$HS_USER" '.[] | select(.name == $u) | .id')
    [[ $uid =~ ^[0-9]+$ ]] || die "no id for user $HS_USER"
    key=$(hs preauthkeys create --user "$uid" --reusable --expiration 24h -o json | jq -r .key)
    [[ -n $key && $key != null ]] || die "no pre-auth key"
    printf '%s\n' "$key" >"$d/authkey"
    printf '%s\n' "$uid" >"$d/userid"
    chmod 600 "$d/authkey"
    log "headscale up at $HS_URL (user $HS_USER id $uid)"
    printf '%s\n' "$key"
}

# ---- tailscaled ----------------------------------------------------------------

tsdir() { printf '%s/ts-%s' "$LABDIR" "$1"; }

valid_name() { [[ $1 =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "bad node name '$1'"; }

# ts NAME args... : tailscale CLI against NAME's tailscaled, in its namespace
ts() {
    local name=$1 key
    shift
    key=$(cat "$(tsdir "$name")/hostkey")
    ip netns exec "$(ns_of "$key")" "$TAILSCALE" --socket "$(tsdir "$name")/tailscaled.sock" "$@"
}

backend_state() { ts "$1" status --json 2>/dev/null | jq -r .BackendState; }
ts_answers() { [[ -S $(tsdir "$1")/tailscaled.sock ]] && [[ -n $(backend_state "$1") ]]; }
ts_running() { [[ $(backend_state "$1") == Running ]]; }

# start_tailscaled NAME: run NAME's tailscaled (hostkey and extra env from
# its directory) and wait for its LocalAPI.
start_tailscaled() {
    local name=$1 d key extra=()
    d=$(tsdir "$name")
    key=$(cat "$d/hostkey")
    [[ -f $d/env ]] && mapfile -t extra <"$d/env"
    [[ -f $LABDIR/tls/bundle.pem ]] && extra+=("SSL_CERT_FILE=$LABDIR/tls/bundle.pem")
    if [[ -f $LABDIR/run/tailscaled-$name.proc ]] && alive "tailscaled-$name"; then
        log "tailscaled-$name already runs"
    else
        start_daemon "tailscaled-$name" "$key" env TS_LOGS_DIR="$d" TS_NO_LOGS_NO_SUPPORT=true \
            "${extra[@]}" "$TAILSCALED" --tun=userspace-networking --statedir "$d" \
            --socket "$d/tailscaled.sock" --port "$TS_PORT" --no-logs-no-support
    fi
    wait_for 20 "tailscaled-$name LocalAPI" "tailscaled-$name" ts_answers "$name"
}

cmd_hs() {
    init_lab "$1"
    select_instance "${2:-}"
    need_bin "$HEADSCALE"
    shift 2
    hs "$@"
}

cmd_tailscaled() {
    [[ -n ${3:-} ]] || die "usage: tailscaled LABDIR HOSTKEY NAME"
    cmd_join "$1" "$2" "$3" ""
}

# cmd_join LABDIR HOSTKEY NAME AUTHKEY; an empty AUTHKEY only starts it.
cmd_join() {
    init_lab "$1"
    local key=${2:-} name=${3:-} authkey=${4-} nsn d v
    [[ -n $key && -n $name && -n ${4+x} ]] || die "usage: join LABDIR HOSTKEY NAME AUTHKEY"
    need_bin "$TAILSCALED"
    need_bin "$TAILSCALE"
    valid_name "$name"
    nsn=$(ns_of "$key") d=$(tsdir "$name")
    mkdir -p "$d"
    chmod 700 "$d"
    printf '%s\n' "$key" >"$d/hostkey"
    : >"$d/env"
    for v in ${MESH_TS_ENV:-}; do
        [[ $v =~ ^TS_[A-Z0-9_]+=[A-Za-z0-9_.-]*$ ]] || die "MESH_TS_ENV: bad entry '$v'"
        printf '%s\n' "$v" >>"$d/env"
    done
    start_tailscaled "$name"
    [[ -n $authkey ]] || { log "tailscaled-$name started, not logged in"; return 0; }
    ts "$name" up --login-server "$HS_URL" --authkey "$authkey" --hostname "$name" \
        --accept-dns=false --timeout 30s >>"$LABDIR/logs/tailscale-up-$name.log" 2>&1 ||
        die "tailscale up for $name failed: $(tail -n 5 "$LABDIR/logs/tailscale-up-$name.log")"
    wait_for 30 "tailscaled-$name Running" "tailscaled-$name" ts_running "$name"
    log "$name joined in $nsn as $(ts "$name" ip -4 2>/dev/null || echo '?')"
}

# The lab DERP map reached tailscaled: only then is `tailscale netcheck` safe
# (without it, the CLI fetches the production map from the internet).
has_lab_derpmap() {
    ts "$1" debug derp-map 2>/dev/null |
        jq -e '(.Regions | keys | sort) == ["900", "901"]' >/dev/null
}

cmd_netcheck() {
    init_lab "$1"
    local name=${2:-}
    [[ -n $name ]] || die "usage: netcheck LABDIR NAME [args...]"
    valid_name "$name"
    shift 2
    alive "tailscaled-$name" || die "tailscaled-$name is not running: refusing to run tailscale netcheck"
    ts_running "$name" || die "tailscaled-$name is not Running: refusing to run tailscale netcheck"
    wait_for 15 "lab DERP map in tailscaled-$name" "tailscaled-$name" has_lab_derpmap "$name"
    ts "$name" netcheck "$@"
}

cmd_cli() {
    init_lab "$1"
    local name=${2:-}
    [[ -n $name ]] || die "usage: cli LABDIR NAME args..."
    valid_name "$name"
    shift 2
    alive "tailscaled-$name" || die "tailscaled-$name is not running"
    ts "$name" "$@"
}

cmd_stop() {
    init_lab "$1"
    valid_name "${2:-}"
    stop_record "$LABDIR/run/tailscaled-$2.proc"
}

cmd_kill() {
    init_lab "$1"
    valid_name "${2:-}"
    local f=$LABDIR/run/tailscaled-$2.proc pid
    alive "tailscaled-$2" || die "tailscaled-$2 is not running"
    read -r pid _ <"$f"
    kill -KILL "$pid"
    log "killed tailscaled-$2 (pid $pid) with SIGKILL"
}

cmd_start() {
    init_lab "$1"
    valid_name "${2:-}"
    [[ -f $(tsdir "$2")/hostkey ]] || die "tailscaled-$2 never joined"
    start_tailscaled "$2"
}

cmd_run() {
    init_lab "$1"
    local proc=${2:-} key=${3:-}
    [[ $proc =~ ^[a-z0-9][a-z0-9-]{0,30}$ && -n $key && $# -ge 4 ]] ||
        die "usage: run LABDIR PROC HOSTKEY cmd..."
    shift 3
    start_daemon "$proc" "$key" "$@"
}

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0" >&2; exit 2; }

main() {
    local cmd=${1:-}
    [[ $# -ge 2 ]] || usage
    shift
    case $cmd in
    headscale) cmd_headscale "$@" ;;
    join) cmd_join "$@" ;;
    tailscaled) cmd_tailscaled "$@" ;;
    hs) cmd_hs "$@" ;;
    netcheck) cmd_netcheck "$@" ;;
    cli) cmd_cli "$@" ;;
    stop) cmd_stop "$@" ;;
    kill) cmd_kill "$@" ;;
    start) cmd_start "$@" ;;
    run) cmd_run "$@" ;;
    *) usage ;;
    esac
}

main "$@"
