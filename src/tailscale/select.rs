//! Which peers get keepalive pings (`tailscale.keepalive_peers`).

use std::net::IpAddr;

use super::api::TsPeer;

/// One entry of `tailscale.keepalive_peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSelector {
    /// Every peer.
    All,
    /// Peers carrying this ACL tag (stored with its "tag:" prefix).
    Tag(String),
    /// A peer by tailnet address.
    Ip(IpAddr),
    /// A peer by hostname or the first label of its MagicDNS name (ASCII
    /// case-insensitive).
    Host(String),
}

impl PeerSelector {
    /// Parse an entry; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(SelectorError::Empty);
        }
        if t == "all" {
            return Ok(Self::All);
        }
        if let Some(tag) = t.strip_prefix("tag:") {
            if tag.is_empty() {
                return Err(SelectorError::EmptyTag(s.to_owned()));
            }
            return Ok(Self::Tag(t.to_string()));
        }
        if let Ok(ip) = t.parse() {
            return Ok(Self::Ip(ip));
        }
        if t.len() > 253
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        {
            return Err(SelectorError::Invalid(s.to_owned()));
        }
        Ok(Self::Host(t.to_ascii_lowercase()))
    }

    /// Whether `peer` is selected.
    pub fn matches(&self, peer: &TsPeer) -> bool {
        match self {
            Self::All => true,
            Self::Tag(t) => peer.tags.iter().any(|p| p == t),
            Self::Ip(ip) => peer.tailscale_ips.contains(ip),
            Self::Host(h) => {
                peer.host_name.eq_ignore_ascii_case(h)
                    || peer
                        .dns_name
                        .split('.')
                        .next()
                        .is_some_and(|l| !l.is_empty() && l.eq_ignore_ascii_case(h))
                    || peer.dns_name.trim_end_matches('.').eq_ignore_ascii_case(h)
            }
        }
    }
}

/// Why a `keepalive_peers` entry was refused (the entry is quoted back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Blank.
    #[error("empty entry: expected \"all\", \"tag:NAME\", a hostname or a tailnet IP")]
    Empty,
    /// `tag:` with nothing after it.
    #[error("{0:?}: a tag needs a name after \"tag:\"")]
    EmptyTag(String),
    /// Neither keyword, tag, IP nor hostname.
    #[error("{0:?}: not \"all\", \"tag:NAME\", a tailnet IP or a hostname")]
    Invalid(String),
}

/// Parse every entry, skipping none: config validation already refused bad ones.
pub fn parse_all(entries: &[String]) -> Vec<PeerSelector> {
    entries
        .iter()
        .filter_map(|e| PeerSelector::parse(e).ok())
        .collect()
}

/// Whether any selector picks `peer`.
pub fn selected(selectors: &[PeerSelector], peer: &TsPeer) -> bool {
    selectors.iter().any(|s| s.matches(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(host: &str, dns: &str, ip: &str, tags: &[&str]) -> TsPeer {
        TsPeer {
            public_key: "nodekey:1".into(),
            host_name: host.into(),
            dns_name: dns.into(),
            tailscale_ips: vec![ip.parse().unwrap()],
            tags: tags.iter().map(|t| t.to_string()).collect(),
            addrs: vec![],
            cur_addr: String::new(),
            relay: String::new(),
            online: true,
            active: false,
        }
    }

    #[test]
    fn selectors_parse_and_match() {
        let a = peer(
            "Plant-A",
            "plant-a.tail.example.",
            "100.64.0.2",
            &["tag:scada"],
        );
        let b = peer("b", "", "100.64.0.3", &[]);
        let cases = [
            ("all", true, true),
            ("tag:scada", true, false),
            ("100.64.0.3", false, true),
            ("plant-a", true, false),
            ("PLANT-A.tail.example", true, false),
        ];
        for (entry, on_a, on_b) in cases {
            let s = PeerSelector::parse(entry).unwrap();
            assert_eq!(s.matches(&a), on_a, "{entry} on a");
            assert_eq!(s.matches(&b), on_b, "{entry} on b");
        }
        for bad in ["", "tag:", "no spaces", "a/b"] {
            assert!(PeerSelector::parse(bad).is_err(), "{bad:?}");
        }
        let sels = parse_all(&["tag:none".into(), "b".into()]);
        assert!(selected(&sels, &b) && !selected(&sels, &a));
    }
}
