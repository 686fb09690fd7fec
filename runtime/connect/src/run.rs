//! What a connector's task holds, and the waits it shares between sources and sinks:
//! honouring pause and stop, and sleeping in a way an operator can interrupt.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use weir_broker::Broker;
use weir_broker::Topic;
use weir_broker::cluster::Fence;
use weir_broker::plugins::{ConnectorSettings, Slot};

use crate::backoff::Backoff;
use crate::control::Desired;
use crate::status::{RunState, Tracker};

/// One connector's task context.
pub(crate) struct RunContext {
    pub name: String,
    pub slot: Arc<Slot>,
    pub broker: Broker,
    pub settings: ConnectorSettings,
    pub topics: Vec<String>,
    pub tracker: Arc<Tracker>,
    pub desired: watch::Receiver<Desired>,
    pub backoff: Backoff,
    /// The topics and settings the task was started with (see [`crate::fingerprint`]).
    pub fingerprint: String,
    /// In cluster mode, the connector's lease: every publish and commit is refused
    /// once another node took it over.
    pub fence: Option<Fence>,
}

/// The dead-letter topic `name`, created with one partition if missing.
pub(crate) async fn dead_letter_topic(broker: &Broker, name: &str) -> Result<Arc<Topic>, String> {
    broker
        .ensure_topic(name, 1)
        .await
        .map_err(|e| e.to_string())
}

/// Why a task stopped working on the current batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Halt {
    /// Paused or stopped by an operator (or failed with `on_failure = "pause"`).
    Interrupted,
    /// The manager is gone: the task ends.
    Ended,
}

impl RunContext {
    /// Commits a sink's offsets: fenced by the lease in cluster mode.
    pub(crate) async fn commit(
        &self,
        group: &str,
        offsets: &[(String, u32, u64)],
    ) -> weir_broker::Result<()> {
        let groups = self.broker.groups();
        match &self.fence {
            Some(fence) => groups.commit_fenced(group, offsets, fence).await,
            None => groups.commit(group, None, offsets).await,
        }
    }

    /// Returns once the connector should run; `Err(Ended)` if the manager is gone.
    /// `true` when it was stopped (not just paused) on the way, so positions held in
    /// memory are dropped and work starts again from what is committed.
    pub(crate) async fn until_running(&mut self) -> Result<bool, Halt> {
        let mut was_stopped = false;
        loop {
            if self.desired.has_changed().is_err() {
                return Err(Halt::Ended);
            }
            let desired = *self.desired.borrow_and_update();
            match desired {
                Desired::Running => return Ok(was_stopped),
                Desired::Paused => self.tracker.set(RunState::Paused),
                Desired::Stopped => {
                    was_stopped = true;
                    self.tracker.set(RunState::Stopped);
                }
            }
            if self.desired.changed().await.is_err() {
                return Err(Halt::Ended);
            }
        }
    }

    /// Sleeps `wait`, cut short when an operator changes the connector's state.
    /// `Err(Interrupted)` if it should no longer run.
    pub(crate) async fn sleep(&mut self, wait: Duration) -> Result<(), Halt> {
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(()),
            changed = self.desired.changed() => match changed {
                Err(_) => Err(Halt::Ended),
                Ok(()) if *self.desired.borrow() == Desired::Running => Ok(()),
                Ok(()) => Err(Halt::Interrupted),
            },
        }
    }

    /// Whether to stop before the next batch: an operator paused or stopped the
    /// connector (`Interrupted`), or the manager ended the task or a version with
    /// other topics or settings is serving (`Ended`). Checked at
    /// every batch boundary, so a task is never cut off in the middle of a call.
    pub(crate) fn check(&self) -> Result<(), Halt> {
        // A version with other topics or settings is serving: this task is done (the
        // manager starts its successor), even before the manager noticed.
        if let Some(p) = self.slot.current()
            && crate::fingerprint(p.manifest()) != self.fingerprint
        {
            return Err(Halt::Ended);
        }
        match self.desired.has_changed() {
            Err(_) => Err(Halt::Ended),
            Ok(_) if *self.desired.borrow() != Desired::Running => Err(Halt::Interrupted),
            Ok(_) => Ok(()),
        }
    }

    /// Stays failed until an operator resumes (or pauses, stops, resumes) it.
    pub(crate) async fn hold_failed(&mut self, why: String) -> Halt {
        tracing::error!(connector = %self.name, "{why}; waiting for `weir connector resume {}`", self.name);
        self.tracker.failed(why);
        self.tracker.set(RunState::Failed);
        match self.desired.changed().await {
            Ok(()) => Halt::Interrupted,
            Err(_) => Halt::Ended,
        }
    }
}
