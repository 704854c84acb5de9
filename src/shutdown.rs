//! A shutdown signal every task can wait on.

use tokio::sync::watch;

/// Held by the daemon; tells every task to stop.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Held by each task; resolves once shutdown is asked for.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger and signal.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Ask every task to stop.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Another signal connected to this trigger.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Wait until shutdown is asked for (or the trigger is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether shutdown was asked for already.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }
}
