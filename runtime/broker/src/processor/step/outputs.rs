//! The records a step stores: the logic's outputs (window results stamped with their
//! bounds) and the copies of late events, grouped by topic for one append.

use std::borrow::Cow;
use std::sync::Arc;

use weir_storage::batch::ATTR_VALUE_JSON;
use weir_storage::{RecordView, Topic};

use super::{LatePolicy, Output, PartitionRun};
use crate::{Broker, NewRecord, Result};

impl PartitionRun {
    /// The step's records by topic: the logic's outputs, then late copies.
    #[allow(clippy::type_complexity)]
    pub(super) fn outputs<'a>(
        &self,
        broker: &Broker,
        out: &'a [Output],
        late: &[RecordView<'a>],
    ) -> Result<Vec<(Arc<Topic>, Vec<NewRecord<'a>>)>> {
        let mut by_topic: Vec<(Arc<Topic>, Vec<NewRecord<'a>>)> = Vec::new();
        let mut push = |name: &str, record: NewRecord<'a>| -> Result<()> {
            match by_topic.iter_mut().find(|(t, _)| t.name() == name) {
                Some((_, records)) => records.push(record),
                None => by_topic.push((broker.topic(name)?, vec![record])),
            }
            Ok(())
        };
        for o in out {
            let mut headers: Vec<(Cow<'a, str>, Cow<'a, [u8]>)> = o
                .headers
                .iter()
                .map(|(n, v)| (Cow::Borrowed(n.as_str()), Cow::Borrowed(v.as_slice())))
                .collect();
            if let Some(w) = o.window {
                headers.push((
                    Cow::Borrowed("weir-window-start"),
                    Cow::Owned(w.start_ms.to_string().into_bytes()),
                ));
                headers.push((
                    Cow::Borrowed("weir-window-end"),
                    Cow::Owned(w.end_ms.to_string().into_bytes()),
                ));
            }
            push(
                &o.topic,
                NewRecord {
                    key: o.key.as_deref().map(Cow::Borrowed),
                    value: o.value.as_deref().map(Cow::Borrowed),
                    value_is_json: o.value_is_json,
                    headers,
                    ..NewRecord::default()
                },
            )?;
        }
        if let LatePolicy::Topic(topic) = &self.timing.late {
            for r in late {
                let mut headers: Vec<(Cow<'a, str>, Cow<'a, [u8]>)> = r
                    .headers()
                    .map(|(n, v)| (Cow::Owned(n.to_string()), Cow::Owned(v.to_vec())))
                    .collect();
                headers.push((Cow::Borrowed("weir-late"), Cow::Borrowed(b"true")));
                push(
                    topic,
                    NewRecord {
                        key: r.key.map(Cow::Borrowed),
                        value: r.value.map(Cow::Borrowed),
                        value_is_json: r.attributes & ATTR_VALUE_JSON != 0,
                        headers,
                        ..NewRecord::default()
                    },
                )?;
            }
        }
        Ok(by_topic)
    }
}
