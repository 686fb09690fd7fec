//! Redis Streams with the append-only file on (`redis-server --appendonly yes`), driven
//! by redis-rs over one multiplexed connection.
//!
//! Durability: with `appendfsync always` Redis fsyncs the AOF before it answers the
//! commands of an event-loop round (group commit, like Weir's `acks=all`); with
//! `everysec` it writes the AOF every round and fsyncs once a second.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use redis::Value;
use redis::aio::MultiplexedConnection;

use super::Server;
use crate::system::{Durability, Follower, System, latency_of};

/// Entries asked for per XRANGE when reading a stream from its start.
const RANGE_COUNT: usize = 10_000;

/// When Redis fsyncs its append-only file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFsync {
    Always,
    EverySec,
}

impl AppendFsync {
    fn setting(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::EverySec => "everysec",
        }
    }
}

/// Starts `redis-server` with AOF on and `appendfsync` as asked, on a free loopback
/// port, snapshots off (the AOF is the durability under test) and AOF rewrites off
/// (a rewrite forks the server mid-measurement).
pub async fn start(program: &Path, fsync: AppendFsync) -> anyhow::Result<Server> {
    Server::start_on_free_port(program, |port, dir| {
        [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--dir",
            &dir.display().to_string(),
            "--appendonly",
            "yes",
            "--appendfsync",
            fsync.setting(),
            "--save",
            "",
            "--auto-aof-rewrite-percentage",
            "0",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
        ]
        .map(String::from)
        .to_vec()
    })
    .await
}

/// One multiplexed connection shared by clones (how redis-rs is used from async code),
/// plus the client for dedicated connections (blocking reads must not hold up the
/// shared one).
#[derive(Clone)]
pub struct RedisStreams {
    client: redis::Client,
    conn: MultiplexedConnection,
    fsync: AppendFsync,
}

impl std::fmt::Debug for RedisStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreams")
            .field("fsync", &self.fsync)
            .finish_non_exhaustive()
    }
}

impl RedisStreams {
    pub async fn connect(port: u16, fsync: AppendFsync) -> anyhow::Result<RedisStreams> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
        let conn = connection(&client).await?;
        Ok(RedisStreams {
            client,
            conn,
            fsync,
        })
    }
}

/// A multiplexed connection without a response timeout: a pipeline of a thousand
/// fsynced XADDs may take longer than a default would allow.
async fn connection(client: &redis::Client) -> anyhow::Result<MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .context("connecting to redis-server")
}

fn xadd(pipe: &mut redis::Pipeline, stream: &str, value: &[u8]) {
    pipe.cmd("XADD").arg(stream).arg("*").arg("v").arg(value);
}

/// The entries of an XRANGE or of one stream in an XREAD answer: (id, field values).
fn entries(reply: &Value) -> impl Iterator<Item = (&[u8], &[Value])> {
    let list = match reply {
        Value::Array(list) => &list[..],
        _ => &[],
    };
    list.iter().filter_map(|entry| match entry {
        Value::Array(parts) => match (parts.first(), parts.get(1)) {
            (Some(Value::BulkString(id)), Some(Value::Array(fields))) => {
                Some((&id[..], &fields[..]))
            }
            _ => None,
        },
        _ => None,
    })
}

/// The value of the one field every entry has.
fn field_value(fields: &[Value]) -> &[u8] {
    match fields.get(1) {
        Some(Value::BulkString(v)) => v,
        _ => &[],
    }
}

impl System for RedisStreams {
    fn label(&self) -> String {
        format!("Redis Streams (appendfsync {})", self.fsync.setting())
    }

    fn durability(&self) -> Durability {
        match self.fsync {
            AppendFsync::Always => Durability::FsyncPerAck,
            AppendFsync::EverySec => Durability::Periodic,
        }
    }

    async fn create(&self, stream: &str) -> anyhow::Result<()> {
        // A stream exists from its first XADD; make sure it starts empty.
        self.delete(stream).await
    }

    async fn delete(&self, stream: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL").arg(stream).query_async(&mut conn).await?;
        Ok(())
    }

    async fn publish(&self, stream: &str, value: &Bytes, count: usize) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for _ in 0..count {
            xadd(&mut pipe, stream, value);
        }
        let ids: Vec<Value> = pipe.query_async(&mut conn).await?;
        anyhow::ensure!(
            ids.len() == count,
            "{} of {count} XADDs answered",
            ids.len()
        );
        Ok(())
    }

    async fn consume(&self, stream: &str, count: u64) -> anyhow::Result<u64> {
        let mut conn = self.conn.clone();
        let (mut start, mut received, mut bytes) = ("-".to_string(), 0u64, 0u64);
        while received < count {
            let reply: Value = redis::cmd("XRANGE")
                .arg(stream)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(RANGE_COUNT)
                .query_async(&mut conn)
                .await?;
            let mut last = None;
            for (id, fields) in entries(&reply) {
                received += 1;
                bytes += field_value(fields).len() as u64;
                last = Some(id);
            }
            let last = last.with_context(|| format!("{stream} ended at {received} of {count}"))?;
            // Exclusive range start: the next entry after the last one read.
            start = format!("({}", String::from_utf8_lossy(last));
        }
        Ok(bytes)
    }

    async fn follow(&self, stream: &str) -> anyhow::Result<Follower> {
        let mut conn = connection(&self.client).await?;
        let stream = stream.to_string();
        Ok(Follower::spawn(move |tx| async move {
            let mut last = b"0-0".to_vec();
            loop {
                let reply: Result<Value, _> = redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(RANGE_COUNT)
                    .arg("BLOCK")
                    .arg(Duration::from_secs(1).as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg(&last)
                    .query_async(&mut conn)
                    .await;
                let Ok(reply) = reply else { return };
                // [[stream, [entries..]]], or nil after the block timeout.
                let Value::Array(streams) = reply else {
                    continue;
                };
                for s in &streams {
                    let Value::Array(pair) = s else { continue };
                    let Some(list) = pair.get(1) else { continue };
                    for (id, fields) in entries(list) {
                        last = id.to_vec();
                        if let Some(lat) = latency_of(field_value(fields))
                            && tx.send(lat).is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }))
    }
}
