//! SOAP decode errors and the body bound, shared by the tag reader and
//! every action codec (a leaf: it imports nothing of the codec).

/// Largest SOAP body the parsers accept, in bytes.
pub const MAX_BODY_LEN: usize = 64 * 1024;
/// A UPnP error carried in a SOAP fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpnpFault {
    /// errorCode, e.g. [`UpnpFault::NO_SUCH_ENTRY_IN_ARRAY`].
    pub code: u16,
    /// errorDescription (empty when absent).
    pub description: String,
}

impl UpnpFault {
    /// 402 Invalid Args.
    pub const INVALID_ARGS: u16 = 402;
    /// 501 Action Failed.
    pub const ACTION_FAILED: u16 = 501;
    /// 714 NoSuchEntryInArray: the mapping does not exist.
    pub const NO_SUCH_ENTRY_IN_ARRAY: u16 = 714;
    /// 718 ConflictInMappingEntry: the port is mapped to another client.
    pub const CONFLICT_IN_MAPPING_ENTRY: u16 = 718;
    /// 725 OnlyPermanentLeasesSupported: retry with lease duration 0.
    pub const ONLY_PERMANENT_LEASES_SUPPORTED: u16 = 725;
}

/// What went wrong decoding a SOAP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoapError {
    /// The body exceeds [`MAX_BODY_LEN`].
    #[error("SOAP body is {0} bytes, more than the {MAX_BODY_LEN} allowed")]
    TooLarge(usize),
    /// The XML is broken at this byte offset, for this reason.
    #[error("malformed SOAP XML at byte {0}: {1}")]
    Malformed(usize, &'static str),
    /// The router answered with a UPnP fault.
    #[error("router returned UPnP error {} ({})", .0.code, .0.description)]
    Fault(UpnpFault),
    /// Neither the expected response element nor a fault is present.
    #[error("SOAP body has no <{0}> element")]
    MissingResponse(&'static str),
    /// A required argument is missing from the response.
    #[error("SOAP response has no <{0}> element")]
    MissingElement(&'static str),
    /// An argument appears twice.
    #[error("SOAP response has more than one <{0}> element")]
    DuplicateElement(&'static str),
    /// An argument's text (first 64 characters kept) does not parse.
    #[error("SOAP response element <{0}> has invalid value {1:?}")]
    InvalidValue(&'static str, String),
}
