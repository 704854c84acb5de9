//! How a gateway logs in to its cluster: a leaf the wire codec, the stored
//! assignment and the status section share.

use serde::{Deserialize, Serialize};

/// How a gateway logs in to its cluster, as the admission service says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// With a pre-auth key (sent along when the gateway needs one).
    Authkey,
    /// No key needed: the node is known to the cluster already.
    None,
    /// An interactive login, which an unattended gateway can't do.
    Oidc,
}

impl AuthMode {
    /// Name as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            AuthMode::Authkey => "authkey",
            AuthMode::None => "none",
            AuthMode::Oidc => "oidc",
        }
    }

    /// The mode named `text`, if it is one.
    pub fn from_name(text: &str) -> Option<Self> {
        [AuthMode::Authkey, AuthMode::None, AuthMode::Oidc]
            .into_iter()
            .find(|m| m.name() == text)
    }
}

impl std::fmt::Display for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
