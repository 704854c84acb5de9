//! A nudge from a view to an actor: "do your check now".
//!
//! The page's actions ("run netcheck now", "re-map now") must not reach into
//! the actors; they only poke them. Pokes coalesce: many pokes before the
//! actor looks give one extra run, so a flood of requests cannot queue work.

use std::sync::Arc;

use tokio::sync::Notify;

/// One actor's poke handle; clones share it.
#[derive(Clone, Debug, Default)]
pub struct Poke(Arc<Notify>);

impl Poke {
    /// A fresh handle nobody has poked yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the actor to act now (kept until it next waits, at most once).
    pub fn poke(&self) {
        self.0.notify_one();
    }

    /// Resolve at the next poke, or at once if one is waiting.
    pub async fn wait(&self) {
        self.0.notified().await;
    }
}

/// The pokes the daemon hands out: one per actor that can be asked to act.
#[derive(Clone, Debug, Default)]
pub struct Pokes {
    /// Run a full NAT report now.
    pub netcheck: Poke,
    /// Delete and re-add every mapping now; retry what is not held.
    pub portmap: Poke,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn pokes_coalesce_and_are_kept_until_waited_for() {
        let p = Poke::new();
        let quick = |p: Poke| async move {
            tokio::time::timeout(Duration::from_millis(50), p.wait())
                .await
                .is_ok()
        };
        assert!(!quick(p.clone()).await, "nothing poked yet");
        p.poke();
        p.poke();
        p.poke();
        assert!(quick(p.clone()).await, "a poke before waiting is kept");
        assert!(!quick(p.clone()).await, "three pokes are one run");
        let waiter = tokio::spawn({
            let p = p.clone();
            async move { p.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        p.poke();
        assert!(tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .is_ok());
    }
}
