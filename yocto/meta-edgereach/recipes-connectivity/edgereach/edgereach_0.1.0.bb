SUMMARY = "Keeps industrial gateways reachable over a Tailscale/Headscale mesh"
DESCRIPTION = "edgereach holds the mesh port mapping on the site router \
               (UPnP IGD, NAT-PMP, PCP), reports the NAT like tailscale netcheck, \
               keeps tailscaled's paths warm and reports its status locally and over MQTT."
HOMEPAGE = "https://edgereach.invalid/"
BUGTRACKER = "https://edgereach.invalid/issues"
SECTION = "net"
CVE_PRODUCT = "edgereach"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# The layer ships inside the edgereach repository and builds the checkout it
# sits in (four directories up). To build a release from your own git server
# instead, drop externalsrc in a bbappend and add the git URI and SRCREV to
# SRC_URI; the crate entries below stay as they are.
inherit externalsrc
EXTERNALSRC = "${@os.path.abspath(os.path.join(d.getVar('FILE_DIRNAME'), '..', '..', '..', '..'))}"

require ${BPN}-crates.inc

inherit cargo systemd

SYSTEMD_SERVICE:${PN} = "${BPN}.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/config/${BPN}.service ${D}${systemd_system_unitdir}/${BPN}.service
    # The commented example with every key and its default: the site edits
    # it, so it is a conffile and an upgrade never overwrites it.
    install -d ${D}${sysconfdir}/${BPN}
    install -m 0644 ${S}/config/${BPN}.toml ${D}${sysconfdir}/${BPN}/${BPN}.toml
    # The account the unit runs as, created by systemd-sysusers at boot.
    install -d ${D}${nonarch_libdir}/sysusers.d
    install -m 0644 ${S}/config/${BPN}.sysusers ${D}${nonarch_libdir}/sysusers.d/${BPN}.conf
}

CONFFILES:${PN} = "${sysconfdir}/${BPN}/${BPN}.toml"
FILES:${PN} += "${nonarch_libdir}/sysusers.d/${BPN}.conf"
