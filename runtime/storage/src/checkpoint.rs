//! The watermark checkpoint: which offsets were acknowledged, kept in a small file
//! beside sled's so that a store the engine recovers short is noticed.
//!
//! Why: sled checks its log with CRCs and, on a damaged log, recovers up to the last
//! intact write, which looks exactly like a clean store that holds fewer records.
//! Without a second witness a damaged log would serve as a shorter log and acknowledged
//! records would vanish unnoticed. Kafka keeps the same kind of witness
//! (`replication-offset-checkpoint`). The file is written atomically (temp file,
//! fsync, rename, fsync of the directory) about once a second, on topic deletion and
//! at shutdown; it may lag the store, never lead it, so "the store ends before the
//! checkpoint" always means lost data.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};
use crate::topic::Topic;

/// The checkpoint's file name in the data directory.
pub const FILE: &str = "weir-checkpoint.json";

/// High watermarks per topic, as of the last save.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Topic name → its id and the high watermark of each partition.
    pub topics: BTreeMap<String, TopicMark>,
}

/// One topic in the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMark {
    /// The topic's id (a topic deleted and created again has a new one).
    pub id: u32,
    /// High watermark of each partition.
    pub high_watermarks: Vec<u64>,
}

/// A partition that ends before the checkpoint says it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// The topic.
    pub topic: String,
    /// The partition; `None` when the whole topic is missing.
    pub partition: Option<u32>,
    /// Where the store's log of the partition ends.
    pub stored_end: u64,
    /// The high watermark the checkpoint recorded.
    pub acknowledged: u64,
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.partition {
            Some(p) => write!(
                f,
                "topic '{}' partition {p} ends at offset {} but offsets up to {} were acknowledged",
                self.topic, self.stored_end, self.acknowledged
            ),
            None => write!(
                f,
                "topic '{}' is missing but was acknowledged up to {} records",
                self.topic, self.acknowledged
            ),
        }
    }
}

impl Checkpoint {
    /// The high watermarks of `topics` now.
    pub fn of<'a>(topics: impl IntoIterator<Item = &'a Arc<Topic>>) -> Self {
        let topics = topics
            .into_iter()
            .filter(|t| !t.is_deleted())
            .map(|t| {
                let marks = t.partitions.iter().map(|p| p.high_watermark()).collect();
                (
                    t.name.clone(),
                    TopicMark {
                        id: t.id,
                        high_watermarks: marks,
                    },
                )
            })
            .collect();
        Self { topics }
    }

    /// Reads the checkpoint of `dir`; `None` if there is none yet.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                StorageError::corrupt(format!("{} does not parse: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::Engine(sled::Error::Io(e))),
        }
    }

    /// Writes the checkpoint to `dir` atomically and durably.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join(format!("{FILE}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(FILE))?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// Partitions of `topics` that end before this checkpoint says they did, and
    /// checkpointed topics that are gone. Topics created since are not compared.
    pub fn shortfalls<'a>(&self, topics: impl IntoIterator<Item = &'a Topic>) -> Vec<Shortfall> {
        let stored: BTreeMap<&str, &Topic> = topics.into_iter().map(|t| (&*t.name, t)).collect();
        let mut out = Vec::new();
        for (name, mark) in &self.topics {
            let acknowledged: u64 = mark.high_watermarks.iter().sum();
            match stored.get(name.as_str()) {
                None if acknowledged > 0 => out.push(Shortfall {
                    topic: name.clone(),
                    partition: None,
                    stored_end: 0,
                    acknowledged,
                }),
                Some(t) if t.id == mark.id => {
                    for (p, (&want, part)) in
                        mark.high_watermarks.iter().zip(&t.partitions).enumerate()
                    {
                        let end = part.log_end.load(std::sync::atomic::Ordering::Acquire);
                        if end < want {
                            out.push(Shortfall {
                                topic: name.clone(),
                                partition: Some(p as u32),
                                stored_end: end,
                                acknowledged: want,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}
