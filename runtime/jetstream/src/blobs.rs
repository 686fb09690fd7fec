//! Blobs every node sees: plugin versions deployed through any node, kept in a
//! JetStream object store bucket beside the log's stream (`<PREFIX>_PLUGINS`, same
//! replicas). An object store rather than the log's stream because a component is
//! megabytes: the store chunks it and checks its SHA-256 digest on the way back.

use async_nats::jetstream;
use async_nats::jetstream::object_store::{Config, GetErrorKind, ObjectStore};
use tokio::io::AsyncReadExt;
use weir_storage::{Blobs, LogFuture, StorageError};

use crate::{JetStreamLog, unavailable};

/// The bucket's name for a cluster prefix (bucket names allow `[A-Za-z0-9_-]`).
pub(crate) fn bucket_name(prefix: &str) -> String {
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}_PLUGINS")
}

/// More tries of an upload that failed (see `put`).
const PUT_RETRIES: u64 = 5;

/// The bucket (a newtype: the client's handle has no `Debug`).
pub(crate) struct Bucket(ObjectStore);

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bucket")
    }
}

impl JetStreamLog {
    /// The bucket, created on first use.
    async fn bucket(&self) -> Result<&ObjectStore, StorageError> {
        let inner = &self.inner;
        inner
            .blobs
            .get_or_try_init(|| async {
                let js = jetstream::new(inner.client.clone());
                let name = bucket_name(&inner.options.prefix);
                match js.get_object_store(&name).await {
                    Ok(store) => Ok(Bucket(store)),
                    Err(_) => js
                        .create_object_store(Config {
                            bucket: name.clone(),
                            description: Some(
                                "Weir: plugin versions deployed to the cluster".into(),
                            ),
                            num_replicas: inner.options.replicas,
                            ..Default::default()
                        })
                        .await
                        .map(Bucket)
                        .map_err(unavailable("creating the plugin bucket")),
                }
            })
            .await
            .map(|b| &b.0)
    }
}

impl Blobs for JetStreamLog {
    fn put<'a>(&'a self, name: &'a str, bytes: Vec<u8>) -> LogFuture<'a, String> {
        Box::pin(async move {
            let bucket = self.bucket().await?;
            // Right after the bucket's stream is created, its replicas may not have
            // taken it up yet ("no stream found for given subject"): a put of the same
            // name is safe to repeat, so a few more tries within ~2 s ride that out.
            let mut attempt = 0;
            loop {
                match bucket.put(name, &mut bytes.as_slice()).await {
                    Ok(info) => return Ok(info.digest.unwrap_or_default()),
                    Err(e) if attempt < PUT_RETRIES => {
                        attempt += 1;
                        tracing::debug!(error = %e, attempt, "retrying a plugin version's upload");
                        tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                    }
                    Err(e) => return Err(unavailable("storing a plugin version")(e)),
                }
            }
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> LogFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let bucket = self.bucket().await?;
            let mut object = match bucket.get(name).await {
                Ok(o) => o,
                Err(e) if e.kind() == GetErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(unavailable("reading a plugin version")(e)),
            };
            let mut bytes = Vec::new();
            // The reader checks the digest at the end and fails on a mismatch: damage,
            // which no retry mends.
            object.read_to_end(&mut bytes).await.map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    StorageError::corrupt(format!("reading plugin version {name}: {e}"))
                } else {
                    unavailable("reading a plugin version")(e)
                }
            })?;
            Ok(Some(bytes))
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bucket_names_keep_to_the_allowed_characters() {
        assert_eq!(super::bucket_name("weir"), "WEIR_PLUGINS");
        assert_eq!(super::bucket_name("team-a/x"), "TEAM-A_X_PLUGINS");
    }
}
