//! A record the logic keeps failing on: copied to a dead-letter topic with the
//! reason, and consumed, in one append, so the partition goes on.

use std::borrow::Cow;
use std::sync::Arc;

use weir_storage::batch::ATTR_VALUE_JSON;
use weir_storage::{ReadLimits, Topic};

use super::PartitionRun;
use crate::{Acks, Broker, NewRecord, Result};

impl PartitionRun {
    /// Moves the next record to `dead_letters` with `weir-error` (`reason`) and
    /// `weir-processor` headers and consumes it. `false` when there was none.
    pub async fn dead_letter_next(
        &mut self,
        broker: &Broker,
        dead_letters: Arc<Topic>,
        reason: &str,
    ) -> Result<bool> {
        let one = ReadLimits {
            max_records: 1,
            max_bytes: usize::MAX,
        };
        let read = broker
            .fetch(
                &self.topic,
                self.partition,
                self.next,
                one,
                std::time::Duration::ZERO,
            )
            .await?;
        let Some(r) = read.records().next() else {
            return Ok(false);
        };
        let mut headers: Vec<(Cow<'_, str>, Cow<'_, [u8]>)> = r
            .headers()
            .map(|(n, v)| (Cow::Borrowed(n), Cow::Borrowed(v)))
            .collect();
        headers.push((
            Cow::Borrowed("weir-error"),
            Cow::Borrowed(reason.as_bytes()),
        ));
        headers.push((
            Cow::Borrowed("weir-processor"),
            Cow::Borrowed(self.name.as_bytes()),
        ));
        headers.push((
            Cow::Borrowed("weir-source"),
            Cow::Owned(
                format!("{}/{}/{}", self.topic.name(), self.partition, r.offset).into_bytes(),
            ),
        ));
        let record = NewRecord {
            key: r.key.map(Cow::Borrowed),
            value: r.value.map(Cow::Borrowed),
            value_is_json: r.attributes & ATTR_VALUE_JSON != 0,
            headers,
            ..NewRecord::default()
        };
        let commit = broker.groups().commit_ops(
            &self.group,
            &[(
                self.topic.name().to_string(),
                self.partition,
                read.next_offset,
            )],
        )?;
        let _lease = self.lease.hold().await?;
        broker
            .produce_committing(&[(dead_letters, vec![record])], commit, Acks::All, None)
            .await?;
        self.next = read.next_offset;
        Ok(true)
    }
}
