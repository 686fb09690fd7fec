//! Fencing by generation: which run of a processor may commit.
//!
//! Every start of a processor's runs (a broker start, a new version, a reset) takes
//! the next generation, stored durably so it only grows across restarts. A step
//! commits while holding its [`Lease`]: a shared lock on the processor's current
//! generation, checked against the lease's own. Taking a new generation waits for
//! commits in flight and then moves the current one on, so a run that lost its
//! partitions finds itself fenced at its next commit and writes nothing more: two
//! runs never both commit a batch of the same partition.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{RwLock, RwLockReadGuard};

use crate::{Broker, BrokerError, Result};

/// Where generations are stored in the broker's state.
const NAMESPACE: &str = "processor-generation";

/// The current generation of every processor this broker runs.
#[derive(Debug, Default)]
pub struct Generations {
    current: Mutex<HashMap<String, Arc<RwLock<u64>>>>,
}

/// The right of one generation of a processor to commit.
#[derive(Debug, Clone)]
pub struct Lease {
    processor: String,
    generation: u64,
    current: Arc<RwLock<u64>>,
}

impl Generations {
    /// Takes the next generation of `processor`, fencing every earlier lease once
    /// their commits in flight are done.
    pub async fn next(&self, broker: &Broker, processor: &str) -> Result<Lease> {
        let cell = self
            .current
            .lock()
            .entry(processor.to_string())
            .or_default()
            .clone();
        let mut current = cell.write().await;
        let stored = broker
            .state(NAMESPACE, processor)?
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_be_bytes);
        let generation = stored.max(*current) + 1;
        broker
            .save_state(
                NAMESPACE,
                processor,
                Some(generation.to_be_bytes().to_vec()),
            )
            .await?;
        *current = generation;
        Ok(Lease {
            processor: processor.to_string(),
            generation,
            current: cell.clone(),
        })
    }
}

impl Lease {
    /// Its generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a newer generation has taken over.
    pub fn is_fenced(&self) -> bool {
        self.current
            .try_read()
            .is_ok_and(|current| *current != self.generation)
    }

    /// Holds the lease for a commit; refused once a newer generation took over.
    pub async fn hold(&self) -> Result<RwLockReadGuard<'_, u64>> {
        let current = self.current.read().await;
        if *current != self.generation {
            return Err(BrokerError::ProcessorFenced {
                processor: self.processor.clone(),
                generation: self.generation,
                current: *current,
            });
        }
        Ok(current)
    }
}
