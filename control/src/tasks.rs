//! The control plane's background tasks (the job worker, the status monitor, the driver
//! folder's watcher) and the signal that stops them. Shutdown asks each to stop and waits: the
//! worker finishes the jobs it is running (each within its driver calls' deadlines) and starts
//! no new one, the others stop at their next tick.

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// Told when the host shuts down.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Resolves once shutdown is asked for (at once if it already was).
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// A set of named background tasks that shutdown drains.
pub struct Tasks {
    set: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self {
            set: JoinSet::new(),
            stop: watch::channel(false).0,
        }
    }
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// The signal tasks watch to know when to stop.
    pub fn stop_signal(&self) -> Stop {
        Stop(self.stop.subscribe())
    }

    /// Runs `task` until it ends; it must end soon after its stop signal fires.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.set.spawn(async move {
            task.await;
            tracing::debug!(task = name, "background task stopped");
        });
    }

    /// How many tasks are still running.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Asks every task to stop and waits until each has.
    pub async fn drain(mut self) {
        self.stop.send_replace(true);
        while let Some(ended) = self.set.join_next().await {
            if let Err(error) = ended {
                tracing::error!(%error, "a background task failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn drain_stops_every_task_and_waits_for_its_last_step() {
        let mut tasks = Tasks::new();
        let finished = Arc::new(AtomicBool::new(false));
        let mut stop = tasks.stop_signal();
        let done = finished.clone();
        tasks.spawn("slow to stop", async move {
            stop.requested().await;
            tokio::task::yield_now().await;
            done.store(true, Ordering::SeqCst);
        });
        let mut stop = tasks.stop_signal();
        tasks.spawn("loop", async move {
            loop {
                tokio::select! {
                    () = stop.requested() => return,
                    () = tokio::task::yield_now() => {}
                }
            }
        });
        assert_eq!(tasks.len(), 2);
        tasks.drain().await;
        assert!(finished.load(Ordering::SeqCst));
    }
}
