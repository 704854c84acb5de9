//! Capabilities whose actors are not built yet report honestly why they are
//! not working: switched off or not implemented in this build. Each actor, once
//! written, replaces its entry here and owns its section of the status.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::netwatch::NetState;
use crate::shutdown::Shutdown;
use crate::status::{CapabilityStatus, State, StatusHub};

/// How often prerequisites that have no change notification (a socket file
/// appearing) are looked at again.
const RECHECK: Duration = Duration::from_secs(10);

/// Keep the pending sections current until shutdown.
pub async fn run(
    hub: StatusHub,
    mut config: watch::Receiver<Arc<Config>>,
    mut net: watch::Receiver<NetState>,
    mut shutdown: Shutdown,
) {
    loop {
        let cfg = config.borrow_and_update().clone();
        net.borrow_and_update();
        hub.update(|s| {
            apply(&mut s.admission, admission(&cfg));
        });
        tokio::select! {
            _ = shutdown.wait() => return,
            r = config.changed() => if r.is_err() { return },
            r = net.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(RECHECK) => {}
        }
    }
}

type Verdict = (State, String);

fn apply(section: &mut CapabilityStatus, (state, reason): Verdict) {
    section.health.set(state, Some(reason));
}

fn not_built(what: &str) -> Verdict {
    (
        State::Unavailable,
        format!("{what} is not implemented in this build yet"),
    )
}

fn admission(cfg: &Config) -> Verdict {
    if cfg.admission.url.is_empty() {
        return (State::Disabled, "admission.url is empty".into());
    }
    not_built("admission")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_config_and_network() {
        let cfg = Config::default();
        assert_eq!(admission(&cfg).0, State::Disabled);
    }
}
