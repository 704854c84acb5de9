//! The transport protocol of a mapping or pinhole: one type from the
//! configuration through the status to every wire format (PCP's IANA
//! number, NAT-PMP's opcode, the IGD's "UDP"/"TCP").

use std::fmt;

use serde::{Deserialize, Serialize};

/// Transport protocol of a mapping. The default is UDP: what tailscaled
/// speaks, and all a pinhole is opened for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// UDP, IANA protocol number 17.
    #[default]
    Udp,
    /// TCP, IANA protocol number 6.
    Tcp,
}

impl Protocol {
    /// The IANA protocol number, as carried in PCP.
    pub const fn iana_number(self) -> u8 {
        match self {
            Self::Udp => 17,
            Self::Tcp => 6,
        }
    }

    /// Parses an IANA protocol number; `None` for anything but 6 and 17.
    pub const fn from_iana_number(n: u8) -> Option<Self> {
        match n {
            17 => Some(Self::Udp),
            6 => Some(Self::Tcp),
            _ => None,
        }
    }

    /// The UPnP IGD spelling, `"UDP"` or `"TCP"`.
    pub const fn igd_name(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
        }
    }

    /// The name in the configuration, status and JSON: `udp` or `tcp`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_round_trips() {
        for p in [Protocol::Udp, Protocol::Tcp] {
            assert_eq!(Protocol::from_iana_number(p.iana_number()), Some(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{p}\""));
            assert_eq!(serde_json::from_str::<Protocol>(&json).unwrap(), p);
            assert_eq!(p.igd_name(), p.name().to_ascii_uppercase());
        }
        assert_eq!(Protocol::from_iana_number(1), None);
    }
}
