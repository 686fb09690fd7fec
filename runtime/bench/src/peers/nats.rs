//! NATS JetStream with file storage (`nats-server -js`), driven by async-nats.
//!
//! Durability: JetStream acknowledges a publish once the message is written to its
//! block file (the OS page cache) and fsyncs on a timer (`sync_interval`, 2 minutes by
//! default). Servers from 2.10 can be told `sync_interval: always`; Debian 12's
//! nats-server 2.9 cannot, so JetStream runs in the periodic class here.

use std::path::Path;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;

use super::Server;
use crate::system::{Durability, Follower, System, latency_of};

/// Messages asked for per pull request when reading a stream from its start.
const PULL_BATCH: usize = 10_000;
/// A read that brings nothing for this long has reached the end of the stream.
const IDLE: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts `nats-server` with JetStream on a free loopback port and a temporary
/// store directory.
pub async fn start(program: &Path) -> anyhow::Result<Server> {
    Server::start_on_free_port(program, |port, dir| {
        let store = dir.join("jetstream").display().to_string();
        [
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-js",
            "-sd",
            &store,
        ]
        .map(String::from)
        .to_vec()
    })
    .await
}

/// A JetStream context on one connection, shared by clones (NATS clients multiplex).
#[derive(Debug, Clone)]
pub struct JetStream {
    js: jetstream::Context,
}

impl JetStream {
    pub async fn connect(port: u16) -> anyhow::Result<JetStream> {
        let client = async_nats::connect(format!("127.0.0.1:{port}"))
            .await
            .context("connecting to nats-server")?;
        Ok(JetStream {
            js: jetstream::new(client),
        })
    }

    async fn pull_consumer(
        &self,
        stream: &str,
    ) -> anyhow::Result<consumer::Consumer<consumer::pull::Config>> {
        let s = self.js.get_stream(stream).await?;
        Ok(s.create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await?)
    }
}

impl System for JetStream {
    fn label(&self) -> String {
        "NATS JetStream (file)".into()
    }

    fn durability(&self) -> Durability {
        Durability::Periodic
    }

    async fn create(&self, stream: &str) -> anyhow::Result<()> {
        self.js
            .create_stream(stream::Config {
                name: stream.to_string(),
                subjects: vec![stream.to_string()],
                storage: stream::StorageType::File,
                num_replicas: 1,
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    async fn delete(&self, stream: &str) -> anyhow::Result<()> {
        // Deleting a stream that does not exist fails too: what counts is that it is
        // gone afterwards (a re-created stream must not keep old messages).
        let deleted = self.js.delete_stream(stream).await.err();
        if self.js.get_stream(stream).await.is_ok() {
            anyhow::bail!("stream {stream} is still there after delete: {deleted:?}");
        }
        Ok(())
    }

    async fn publish(&self, stream: &str, value: &Bytes, count: usize) -> anyhow::Result<()> {
        // Async publish: send the whole window, then wait for every ack.
        let mut acks = Vec::with_capacity(count);
        for _ in 0..count {
            acks.push(self.js.publish(stream.to_string(), value.clone()).await?);
        }
        for ack in acks {
            ack.await?;
        }
        Ok(())
    }

    async fn consume(&self, stream: &str, count: u64) -> anyhow::Result<u64> {
        let consumer = self.pull_consumer(stream).await?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH)
            .messages()
            .await?;
        let (mut received, mut bytes) = (0u64, 0u64);
        while received < count {
            let m = tokio::time::timeout(IDLE, messages.next())
                .await
                .ok()
                .flatten()
                .with_context(|| format!("{stream} ended at {received} of {count}"))??;
            received += 1;
            bytes += m.payload.len() as u64;
        }
        Ok(bytes)
    }

    async fn follow(&self, stream: &str) -> anyhow::Result<Follower> {
        let consumer = self.pull_consumer(stream).await?;
        let mut messages = consumer.messages().await?;
        Ok(Follower::spawn(move |tx| async move {
            while let Some(Ok(m)) = messages.next().await {
                if let Some(lat) = latency_of(&m.payload)
                    && tx.send(lat).is_err()
                {
                    return;
                }
            }
        }))
    }
}
