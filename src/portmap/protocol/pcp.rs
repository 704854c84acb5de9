//! PCP (RFC 6887) codec.
