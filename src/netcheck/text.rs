//! `edgereach netcheck` text, in `tailscale netcheck`'s layout.

use std::fmt::Write;

use super::report::Report;

fn yes_no(v: &Option<String>, os_has: bool) -> String {
    match v {
        Some(a) => format!("yes, {a}"),
        None if os_has => "no, but OS has support".into(),
        None => "no, unavailable in OS".into(),
    }
}

fn tri(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "true",
        Some(false) => "false",
        None => "",
    }
}

/// Render a report like tailscale does, with edgereach's extra lines last.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "\nReport:");
    let _ = writeln!(o, "\t* Time: {}", r.time);
    let _ = writeln!(o, "\t* UDP: {}", r.udp);
    let _ = writeln!(o, "\t* IPv4: {}", yes_no(&r.ipv4, true));
    let _ = writeln!(o, "\t* IPv6: {}", yes_no(&r.ipv6, r.os_has_ipv6));
    let _ = writeln!(
        o,
        "\t* MappingVariesByDestIP: {}",
        tri(r.mapping_varies_by_dest_ip)
    );
    let pm: Vec<&str> = r
        .port_mapping
        .iter()
        .map(|p| match p.as_str() {
            "upnp" => "UPnP",
            "nat-pmp" => "NAT-PMP",
            "pcp" => "PCP",
            other => other,
        })
        .collect();
    let _ = writeln!(o, "\t* PortMapping: {}", pm.join(", "));
    let _ = writeln!(o, "\t* CaptivePortal: {}", tri(r.captive_portal));
    let nearest = r
        .preferred_region
        .as_ref()
        .map(|p| p.code.as_str())
        .unwrap_or("");
    let _ = writeln!(o, "\t* Nearest DERP: {nearest}");
    let _ = writeln!(o, "\t* DERP latency:");
    let mut lat: Vec<(&String, &f64)> = r.region_latency_ms.iter().collect();
    lat.sort_by(|a, b| a.1.total_cmp(b.1));
    for (code, ms) in lat {
        let _ = writeln!(o, "\t\t- {code}: {ms:.1}ms");
    }
    let _ = writeln!(
        o,
        "\t* Filtering: {}",
        r.filtering
            .map_or("unknown (no RFC 5780 server answered)", |f| f.name())
    );
    let _ = writeln!(
        o,
        "\t* MappingLifetime: {}",
        r.mapping_lifetime_s
            .map_or("not measured yet".to_string(), |s| format!("at least {s}s"))
    );
    let _ = writeln!(
        o,
        "\t* Took: {}ms, sent {} bytes",
        r.duration_ms, r.bytes_sent
    );
    o
}
