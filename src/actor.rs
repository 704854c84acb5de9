//! The one shape of every capability actor (portmap, pinholes, netcheck,
//! tailscale, admission, telemetry, web, control, netwatch).
//!
//! An actor is `run(ctx: Context, links: Links)`: a service loop whose state
//! lives in a struct, one method per event. [`Context`] is what every actor
//! starts with: the status hub it publishes its own section into (for the
//! views only), the configuration and network watches, and the stop signal.
//! `Links` is the actor's own: the senders of the channels it owns (its
//! handle for the others: a `watch` receiver or a [`crate::poke::Poke`],
//! both cloneable) and the receivers of the channels other actors own.
//! Actors never read each other's state out of the status.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Config;
use crate::netwatch::model::NetState;
use crate::shutdown::Shutdown;
use crate::status::StatusHub;

/// What every actor is started with.
#[derive(Clone)]
pub struct Context {
    /// The status: each actor writes its own section, for the views.
    pub hub: StatusHub,
    /// The configuration, replaced on reload.
    pub config: watch::Receiver<Arc<Config>>,
    /// The network as netwatch sees it (netwatch is its only sender).
    pub net: watch::Receiver<NetState>,
    /// Resolves when the daemon stops.
    pub stop: Shutdown,
}
