//! Group commit for appends: concurrent appends share one atomic batch.
//!
//! Every atomic batch costs the cluster one round of Raft and, with
//! `sync_interval: always`, one fsync on each server, whatever it holds. So appends
//! that arrive while earlier ones are being stored are published together: a
//! committer task takes everything queued (up to one batch's limits), publishes it as
//! one atomic batch, and hands each append its own sequences. A few batches may be
//! in flight at once, so a big append does not hold the small ones behind it.
//! Appends in one batch stand or fall together, which is no weaker than each alone:
//! none of them is acknowledged unless all are stored.

use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::publish::{MAX_MESSAGES, OutMsg, PublishError, publish_atomic};

/// Most payload bytes one shared batch gathers (a single larger append goes alone).
const MAX_BYTES: usize = 4 << 20;
/// Batches in flight at once.
const IN_FLIGHT: usize = 4;

struct Pending {
    messages: Vec<OutMsg>,
    done: oneshot::Sender<Result<Vec<u64>, PublishError>>,
}

impl Pending {
    fn bytes(&self) -> usize {
        self.messages.iter().map(|m| m.payload.len()).sum()
    }
}

/// The queue into the committer task.
#[derive(Debug)]
pub(crate) struct Committer {
    queue: mpsc::UnboundedSender<Pending>,
}

/// What the committer publishes with.
pub(crate) struct Publisher {
    /// Where each batch is counted as one flush of its appends.
    pub(crate) stats: Arc<weir_storage::Stats>,
    pub(crate) client: Client,
    pub(crate) probe: String,
    pub(crate) timeout: Duration,
    pub(crate) deadline: Duration,
}

impl Committer {
    /// Starts the committer task; it ends when the committer is dropped.
    pub(crate) fn start(publisher: Publisher) -> Committer {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(Arc::new(publisher), rx));
        Committer { queue }
    }

    /// Publishes `messages` atomically, possibly with other appends; returns their
    /// sequences.
    pub(crate) async fn append(&self, messages: Vec<OutMsg>) -> Result<Vec<u64>, PublishError> {
        let (done, answer) = oneshot::channel();
        let stopped = || PublishError::Storage(weir_storage::StorageError::ShuttingDown);
        self.queue
            .send(Pending { messages, done })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(publisher: Arc<Publisher>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut carry: Option<Pending> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let (mut count, mut bytes) = (first.messages.len(), first.bytes());
        let mut group = vec![first];
        while let Ok(p) = rx.try_recv() {
            if count + p.messages.len() > MAX_MESSAGES || bytes + p.bytes() > MAX_BYTES {
                carry = Some(p);
                break;
            }
            count += p.messages.len();
            bytes += p.bytes();
            group.push(p);
        }
        let publisher = publisher.clone();
        tokio::spawn(async move {
            publish_group(&publisher, group).await;
            drop(slot);
        });
    }
}

async fn publish_group(p: &Publisher, group: Vec<Pending>) {
    let all: Vec<OutMsg> = group
        .iter()
        .flat_map(|g| g.messages.iter().cloned())
        .collect();
    let started = std::time::Instant::now();
    let result = publish_atomic(&p.client, &p.probe, &all, p.timeout, p.deadline).await;
    match result {
        Ok(seqs) => {
            let records = all.iter().map(OutMsg::records).sum();
            p.stats
                .record_flush(started.elapsed(), group.len() as u64, records);
            let mut at = 0;
            for g in group {
                let n = g.messages.len();
                let _ = g.done.send(Ok(seqs[at..at + n].to_vec()));
                at += n;
            }
        }
        Err(e) => {
            for g in group {
                let _ = g.done.send(Err(clone_error(&e)));
            }
        }
    }
}

/// A copy of `e` for one waiter (storage errors are not `Clone`).
fn clone_error(e: &PublishError) -> PublishError {
    match e {
        PublishError::Conflict(m) => PublishError::Conflict(m.clone()),
        PublishError::Storage(weir_storage::StorageError::InvalidRecord(m)) => {
            PublishError::Storage(weir_storage::StorageError::InvalidRecord(m.clone()))
        }
        PublishError::Storage(weir_storage::StorageError::Unavailable(m)) => {
            PublishError::Storage(weir_storage::StorageError::Unavailable(m.clone()))
        }
        PublishError::Storage(s) => {
            PublishError::Storage(weir_storage::StorageError::Unavailable(s.to_string()))
        }
    }
}
