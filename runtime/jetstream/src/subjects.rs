//! Where everything lives in the one stream: subject names and their parsing.
//!
//! One stream holds the whole cluster's state, because JetStream's atomic batches
//! cover one stream only and Weir's appends are atomic across topics (a pipeline's
//! outputs and dead letters) and with key-value commits (a source's cursor):
//!
//! ```text
//! <prefix>.r.<topic id>.<partition>   record chunks of one partition
//! <prefix>.m.t.<hex of topic name>    a topic's id and config (or its deletion)
//! <prefix>.m.id                       the next topic id
//! <prefix>.m.s.<topic id>.<partition> a partition's log start after retention
//! <prefix>.m.c.<topic id>.<partition> messages compaction deletes (the last pass)
//! <prefix>.k.<hex of key>             one key-value pair (rolled up: the last wins)
//! <prefix>.probe                      duplicate checks of a retried append
//! ```
//!
//! Names and keys are hex-encoded because subjects split on `.` and forbid `*`, `>`
//! and whitespace, which topic names and keys may contain.

/// The subjects of one cluster (one prefix).
#[derive(Debug, Clone)]
pub(crate) struct Subjects {
    prefix: String,
}

/// What a subject of the stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    Records { topic: u32, partition: u32 },
    Topic { name: String },
    NextTopicId,
    LogStart { topic: u32, partition: u32 },
    Compacted { topic: u32, partition: u32 },
    Kv { key: Vec<u8> },
    Other,
}

impl Subjects {
    pub(crate) fn new(prefix: &str) -> Self {
        Subjects {
            prefix: prefix.to_string(),
        }
    }

    /// Every subject of the cluster (the stream's subject filter).
    pub(crate) fn all(&self) -> String {
        format!("{}.>", self.prefix)
    }

    pub(crate) fn records(&self, topic: u32, partition: u32) -> String {
        format!("{}.r.{topic}.{partition}", self.prefix)
    }

    pub(crate) fn all_records(&self) -> String {
        format!("{}.r.>", self.prefix)
    }

    pub(crate) fn topic_records(&self, topic: u32) -> String {
        format!("{}.r.{topic}.>", self.prefix)
    }

    pub(crate) fn topic(&self, name: &str) -> String {
        format!("{}.m.t.{}", self.prefix, hex(name.as_bytes()))
    }

    pub(crate) fn next_topic_id(&self) -> String {
        format!("{}.m.id", self.prefix)
    }

    pub(crate) fn log_start(&self, topic: u32, partition: u32) -> String {
        format!("{}.m.s.{topic}.{partition}", self.prefix)
    }

    pub(crate) fn topic_log_starts(&self, topic: u32) -> String {
        format!("{}.m.s.{topic}.>", self.prefix)
    }

    /// Which messages of a partition compaction deletes (announced before it does).
    pub(crate) fn compacted(&self, topic: u32, partition: u32) -> String {
        format!("{}.m.c.{topic}.{partition}", self.prefix)
    }

    pub(crate) fn topic_compacted(&self, topic: u32) -> String {
        format!("{}.m.c.{topic}.>", self.prefix)
    }

    pub(crate) fn all_meta(&self) -> String {
        format!("{}.m.>", self.prefix)
    }

    pub(crate) fn kv(&self, key: &[u8]) -> String {
        // An empty key still needs a token.
        format!("{}.k.x{}", self.prefix, hex(key))
    }

    pub(crate) fn all_kv(&self) -> String {
        format!("{}.k.>", self.prefix)
    }

    pub(crate) fn probe(&self) -> String {
        format!("{}.probe", self.prefix)
    }

    pub(crate) fn parse(&self, subject: &str) -> Subject {
        let Some(rest) = subject
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('.'))
        else {
            return Subject::Other;
        };
        let tokens: Vec<&str> = rest.split('.').collect();
        let num = |t: &str| t.parse::<u32>().ok();
        match tokens.as_slice() {
            ["r", t, p] => match (num(t), num(p)) {
                (Some(topic), Some(partition)) => Subject::Records { topic, partition },
                _ => Subject::Other,
            },
            ["m", "t", name] => match unhex(name).and_then(|b| String::from_utf8(b).ok()) {
                Some(name) => Subject::Topic { name },
                None => Subject::Other,
            },
            ["m", "id"] => Subject::NextTopicId,
            ["m", "s", t, p] => match (num(t), num(p)) {
                (Some(topic), Some(partition)) => Subject::LogStart { topic, partition },
                _ => Subject::Other,
            },
            ["m", "c", t, p] => match (num(t), num(p)) {
                (Some(topic), Some(partition)) => Subject::Compacted { topic, partition },
                _ => Subject::Other,
            },
            ["k", key] => match key.strip_prefix('x').and_then(unhex) {
                Some(key) => Subject::Kv { key },
                None => Subject::Other,
            },
            _ => Subject::Other,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subject_parses_back() {
        let s = Subjects::new("weir");
        assert_eq!(
            s.parse(&s.records(7, 3)),
            Subject::Records {
                topic: 7,
                partition: 3
            }
        );
        assert_eq!(
            s.parse(&s.topic("orders.eu-1")),
            Subject::Topic {
                name: "orders.eu-1".into()
            }
        );
        assert_eq!(s.parse(&s.next_topic_id()), Subject::NextTopicId);
        assert_eq!(
            s.parse(&s.log_start(1, 0)),
            Subject::LogStart {
                topic: 1,
                partition: 0
            }
        );
        for key in [&b""[..], b"offsets/g/1/0", b"\x00\xff.*>"] {
            assert_eq!(s.parse(&s.kv(key)), Subject::Kv { key: key.to_vec() });
        }
        assert_eq!(s.parse(&s.probe()), Subject::Other);
        assert_eq!(s.parse("other.r.1.2"), Subject::Other);
        assert_eq!(s.parse("weir.r.x.2"), Subject::Other);
    }
}
