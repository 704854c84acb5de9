//! Why a UPnP operation failed, and igd-next's errors typed back into it:
//! igd-next names some UPnP codes as variants and passes the others through,
//! and our retries (718, 724, 725, 402) read the code, so it is kept.

use igd_next::{AddAnyPortError, AddPortError, PinholeError, RequestError};
use std::net::{IpAddr, Ipv4Addr};

use crate::portmap::protocol::soap::UpnpFault;

/// Why a UPnP operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UpnpError {
    /// Discovery found no IGD at the default gateway.
    #[error("no UPnP IGD answered at {0}:1900")]
    NotFound(Ipv4Addr),
    /// The IGD found lives elsewhere than the default gateway.
    #[error("UPnP IGD at {found} is not the default gateway {router}; ignored")]
    Untrusted {
        /// Address that answered.
        found: IpAddr,
        /// The default gateway.
        router: Ipv4Addr,
    },
    /// The router refused the action with a UPnP error.
    #[error("UPnP {action}: router returned error {} ({})", .fault.code, .fault.description)]
    Fault {
        /// SOAP action.
        action: &'static str,
        /// The router's error.
        fault: UpnpFault,
    },
    /// A request failed or timed out.
    #[error("UPnP {action}: {detail}")]
    Request {
        /// SOAP action or step.
        action: &'static str,
        /// What went wrong.
        detail: String,
    },
}

impl UpnpError {
    /// The UPnP error code, when the router answered with a fault.
    pub(super) fn fault_code(&self) -> Option<u16> {
        match self {
            UpnpError::Fault { fault, .. } => Some(fault.code),
            _ => None,
        }
    }
}

pub(super) fn req_err(action: &'static str, detail: impl ToString) -> UpnpError {
    UpnpError::Request {
        action,
        detail: detail.to_string(),
    }
}

/// The standard UPnP error name of the codes igd-next turns into variants
/// (it keeps the router's text only for the codes it passes through).
pub(super) fn fault(code: u16) -> UpnpFault {
    let description = match code {
        605 => "StringArgumentTooLong",
        606 => "Action not authorized",
        714 => "NoSuchEntryInArray",
        718 => "ConflictInMappingEntry",
        724 => "SamePortValuesRequired",
        725 => "OnlyPermanentLeasesSupported",
        728 => "NoPortMapsAvailable",
        701 => "PinholeSpaceExhausted",
        702 => "FirewallDisabled",
        703 => "InboundPinholeNotAllowed",
        704 => "NoSuchEntry",
        _ => "",
    };
    UpnpFault {
        code,
        description: description.into(),
    }
}

/// igd-next's transport-level error, typed back: a router fault keeps its
/// code (the retry logic reads 718, 724, 725, 402).
pub(super) fn from_request(action: &'static str, e: RequestError) -> UpnpError {
    match e {
        RequestError::ErrorCode(code, description) => UpnpError::Fault {
            action,
            fault: UpnpFault { code, description },
        },
        RequestError::IoError(e) => req_err(action, e),
        RequestError::InvalidResponse(text) => req_err(
            action,
            format!(
                "invalid answer: {:?}",
                text.chars().take(64).collect::<String>()
            ),
        ),
        other => req_err(action, other),
    }
}

pub(super) fn from_add_port(action: &'static str, e: AddPortError) -> UpnpError {
    let code = match e {
        AddPortError::DescriptionTooLong => 605,
        AddPortError::ActionNotAuthorized => 606,
        AddPortError::PortInUse => UpnpFault::CONFLICT_IN_MAPPING_ENTRY,
        AddPortError::SamePortValuesRequired => 724,
        AddPortError::OnlyPermanentLeasesSupported => UpnpFault::ONLY_PERMANENT_LEASES_SUPPORTED,
        AddPortError::RequestError(e) => return from_request(action, e),
        other => return req_err(action, other),
    };
    UpnpError::Fault {
        action,
        fault: fault(code),
    }
}

pub(super) fn from_add_any(action: &'static str, e: AddAnyPortError) -> UpnpError {
    let code = match e {
        AddAnyPortError::DescriptionTooLong => 605,
        AddAnyPortError::ActionNotAuthorized => 606,
        // The last port tried (the internal one, on a router that wants
        // both equal) is mapped to another client.
        AddAnyPortError::ExternalPortInUse => UpnpFault::CONFLICT_IN_MAPPING_ENTRY,
        AddAnyPortError::OnlyPermanentLeasesSupported => UpnpFault::ONLY_PERMANENT_LEASES_SUPPORTED,
        AddAnyPortError::NoPortsAvailable => 728,
        AddAnyPortError::RequestError(e) => return from_request(action, e),
        other => return req_err(action, other),
    };
    UpnpError::Fault {
        action,
        fault: fault(code),
    }
}
/// 725 OnlyPermanentLeasesSupported, or 402 Invalid Args from IGDs older
/// than that code, both meaning: ask again with lease 0.
pub(super) fn permanent_only(e: &UpnpError) -> bool {
    matches!(
        e.fault_code(),
        Some(UpnpFault::ONLY_PERMANENT_LEASES_SUPPORTED | UpnpFault::INVALID_ARGS)
    )
}

/// A WANIPv6FirewallControl refusal, typed back.
pub(super) fn from_pinhole(action: &'static str, e: PinholeError) -> UpnpError {
    let code = match e {
        PinholeError::ActionNotAuthorized => 606,
        PinholeError::PinholeSpaceExhausted => 701,
        PinholeError::FirewallDisabled => 702,
        PinholeError::InboundPinholeNotAllowed => 703,
        PinholeError::NoSuchEntry => 704,
        PinholeError::RequestError(e) => return from_request(action, e),
        other => return req_err(action, other),
    };
    UpnpError::Fault {
        action,
        fault: fault(code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn igd_next_errors_keep_the_fault_codes_the_retries_read() {
        let code = |e: UpnpError| e.fault_code();
        assert_eq!(code(from_add_port("a", AddPortError::PortInUse)), Some(718));
        let permanent = from_add_port("a", AddPortError::OnlyPermanentLeasesSupported);
        assert!(permanent_only(&permanent), "{permanent}");
        let old_igd = RequestError::ErrorCode(402, "Invalid Args".into());
        let e = from_add_port("a", AddPortError::RequestError(old_igd));
        assert!(permanent_only(&e));
        assert_eq!(
            e.to_string(),
            "UPnP a: router returned error 402 (Invalid Args)"
        );
        let e = from_add_any("a", AddAnyPortError::OnlyPermanentLeasesSupported);
        assert!(permanent_only(&e));
        let no_action = RequestError::ErrorCode(401, "Invalid Action".into());
        let e = from_add_any("a", AddAnyPortError::RequestError(no_action));
        assert_eq!(code(e), Some(401));
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let e = from_request("a", RequestError::IoError(timeout));
        assert_eq!(
            (e.fault_code(), e.to_string()),
            (None, "UPnP a: timed out".into())
        );
    }

    #[test]
    fn pinhole_refusals_say_which() {
        let e = from_pinhole("AddPinhole", PinholeError::InboundPinholeNotAllowed);
        assert_eq!(
            e.to_string(),
            "UPnP AddPinhole: router returned error 703 (InboundPinholeNotAllowed)"
        );
        let e = from_pinhole("UpdatePinhole", PinholeError::NoSuchEntry);
        assert_eq!(e.fault_code(), Some(704));
        let e = from_pinhole("AddPinhole", PinholeError::FirewallControlUnavailable);
        assert_eq!(e.fault_code(), None);
    }
}
