# shellcheck shell=bash
# IPv6 for lab.sh (sourced, not run), only with LAB_IPV6=yes; without it none
# of this runs and the lab is IPv4-only as it always was.
#
# The fake internet gets 2001:db8:0:1::/64 (RFC 3849 documentation space) on
# the same bridge as 203.0.113.0/24; "inet" routes each site's global /64 to
# that site's router. The hard router routes 2001:db8:0:100::/64 to its LAN
# with no NAT: its inet filter table's forward chain (policy drop, conntrack,
# LAN->WAN accept, WAN->LAN only through the miniupnpd chain) is already a
# stateful IPv6 firewall, so inbound IPv6 to the LAN is dropped unless
# miniupnpd has opened a pinhole (IGDv2 WANIPv6FirewallControl or PCP MAP).
# Addresses are static and made without DAD (nodad), so they are usable at
# once; no router advertisements, hence no SLAAC and no privacy addresses.
# The gateways' default route is the router's link-local fe80::1, as with RA.
# With LAB_CGNAT=yes the hard router's IPv4 WAN sits behind the carrier NAT
# but IPv6 stays public: the carrier routes 2001:db8:0:100::/64 down to it
# and forwards IPv6 unfiltered.

INET6_IP=2001:db8:0:1::1 INET6_NET=2001:db8:0:1::/64
HARD_WAN6_IP=2001:db8:0:1::2 EASY_WAN6_IP=2001:db8:0:1::3 CARRIER_WAN6_IP=2001:db8:0:1::4
STUN6_1_IP=2001:db8:0:1::10 STUN6_2_IP=2001:db8:0:1::11 PEER6_IP=2001:db8:0:1::50
HARD_LAN6_NET=2001:db8:0:100::/64 HARD_LAN6_GW=2001:db8:0:100::1
GWHARD6_IP=2001:db8:0:100::10 GWHARD2_6_IP=2001:db8:0:100::11
EASY_LAN6_NET=2001:db8:0:200::/64 EASY_LAN6_GW=2001:db8:0:200::1 GWEASY6_IP=2001:db8:0:200::10
# LAB_CGNAT=yes: carrier <-> hard router link
CGN6_NET=2001:db8:0:3::/64 CGN6_GW_IP=2001:db8:0:3::1 CGN_WAN6_IP=2001:db8:0:3::2
LAN6_LL_GW=fe80::1
ENV6_VARS=(INET6_IP INET6_NET HARD_WAN6_IP EASY_WAN6_IP STUN6_1_IP STUN6_2_IP PEER6_IP
    HARD_LAN6_NET HARD_LAN6_GW GWHARD6_IP GWHARD2_6_IP EASY_LAN6_NET EASY_LAN6_GW
    GWEASY6_IP LAN6_LL_GW)

v6_on() { [[ ${LAB_IPV6:-no} == yes ]]; }

addr6() { ip -n "$(ns "$1")" -6 addr add "$3" dev "$2" nodad; }         # KEY IF CIDR
route6() { ip -n "$(ns "$1")" -6 route add "$2" via "$3" "${@:4}"; } # KEY DEST VIA [dev IF]
forward6() { nsx "$1" sysctl -qw net.ipv6.conf.all.forwarding=1; }

# set_v6_options: derive the hard router's IPv6 WAN side.
set_v6_options() {
    [[ $LAB_IPV6 == yes || $LAB_IPV6 == no ]] || die "LAB_IPV6 must be yes or no (got '$LAB_IPV6')"
    v6_on || return 0
    if [[ $LAB_CGNAT == yes ]]; then
        HARD_WAN6_IP=$CGN_WAN6_IP HARD_WAN6_GW=$CGN6_GW_IP
    else
        HARD_WAN6_GW=$INET6_IP
    fi
}

# A LAN host: one global address on eth0, default route via the router's
# link-local address.
lan_host6() { # KEY ADDR
    addr6 "$1" "$HOST_IF" "$2/64"
    route6 "$1" default "$LAN6_LL_GW" dev "$HOST_IF"
}

build_topology_v6() {
    v6_on || return 0
    local k
    # fake internet
    addr6 inet br0 "$INET6_IP/64"
    forward6 inet
    addr6 srv "$HOST_IF" "$STUN6_1_IP/64"
    addr6 srv "$HOST_IF" "$STUN6_2_IP/64"
    addr6 peer "$HOST_IF" "$PEER6_IP/64"
    for k in srv peer; do route6 "$k" default "$INET6_IP"; done
    addr6 reasy "$EASY_WAN_IF" "$EASY_WAN6_IP/64"
    route6 reasy default "$INET6_IP"
    route6 inet "$EASY_LAN6_NET" "$EASY_WAN6_IP"
    if [[ $LAB_CGNAT == yes ]]; then
        addr6 carrier wan0 "$CARRIER_WAN6_IP/64"
        route6 carrier default "$INET6_IP"
        addr6 carrier "$CGN_IF" "$CGN6_GW_IP/64"
        route6 carrier "$HARD_LAN6_NET" "$CGN_WAN6_IP"
        forward6 carrier
        route6 inet "$CGN6_NET" "$CARRIER_WAN6_IP"
        route6 inet "$HARD_LAN6_NET" "$CARRIER_WAN6_IP"
    else
        route6 inet "$HARD_LAN6_NET" "$HARD_WAN6_IP"
    fi
    # hard router: routed /64 on its LAN bridge, fe80::1 as the LAN gateway
    addr6 rhard "$HARD_WAN_IF" "$HARD_WAN6_IP/64"
    route6 rhard default "$HARD_WAN6_GW"
    addr6 rhard "$HARD_LAN_IF" "$HARD_LAN6_GW/64"
    addr6 rhard "$HARD_LAN_IF" "$LAN6_LL_GW/64"
    forward6 rhard
    lan_host6 gwhard "$GWHARD6_IP"
    lan_host6 gwhard2 "$GWHARD2_6_IP"
    # easy router: same, no miniupnpd
    addr6 reasy "$EASY_LAN_IF" "$EASY_LAN6_GW/64"
    addr6 reasy "$EASY_LAN_IF" "$LAN6_LL_GW/64"
    forward6 reasy
    lan_host6 gweasy "$GWEASY6_IP"
}

# The carrier passes IPv6 through unfiltered (one line for its forward chain).
carrier_v6_rule() {
    v6_on || return 0
    printf '        # LAB_IPV6=yes: IPv6 is routed, not NATed, and not filtered here\n'
    printf '        meta nfproto ipv6 accept\n'
}

# miniupnpd lines for IPv6: pinholes (WANIPv6FirewallControl) need IGDv2,
# which 2.3.1 reports only with force_igd_desc_v1=no; PCP answers on IPv6 too
# (enable_natpmp). ipv6_listening_ip is the address the IPv6 SSDP answers
# put in LOCATION.
miniupnpd_v6_conf() {
    if v6_on; then
        printf 'ipv6_disable=no\next_ifname6=%s\nforce_igd_desc_v1=no\n' "$HARD_WAN_IF"
    else
        printf 'ipv6_disable=yes\n'
    fi
}

# coturn also listens on the two IPv6 STUN addresses.
coturn_v6_args() {
    v6_on || return 0
    printf '%s\n' -L "$STUN6_1_IP" -L "$STUN6_2_IP"
}

coturn_v6_ready() {
    v6_on || return 0
    listening srv u "[$STUN6_1_IP]" "$STUN_PORT" && listening srv u "[$STUN6_2_IP]" "$STUN_PORT"
}

miniupnpd_v6_ready() {
    v6_on || return 0
    local port=$NATPMP_PORT
    if [[ $LAB_UPNP == yes ]]; then
        nsx rhard ss -Hln -6 -t "sport = :$UPNP_HTTP_PORT" | grep -q . || return 1
    fi
    [[ $LAB_NATPMP == yes || $LAB_PCP == yes ]] || return 0
    nsx rhard ss -Hln -6 -u "sport = :$port" | grep -q .
}

write_env_v6() {
    v6_on || return 0
    local v
    printf 'IPV6=yes\n'
    for v in "${ENV6_VARS[@]}"; do printf '%s=%s\n' "$v" "${!v}"; done
}
