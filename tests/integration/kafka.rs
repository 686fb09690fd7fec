//! The Kafka wire protocol with a real Kafka client nobody here wrote: kcat
//! (librdkafka's command line, from Debian), against the real `weir` binary.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use weir_test_artifacts as artifacts;

use crate::harness::{ServerProcess, install_plugin};

const KAFKA: &str = "[kafka]\nlisten = \"127.0.0.1:0\"\n";

/// Runs kcat with `args` and `input` on stdin, asserting success; its stdout.
fn kcat(args: &[&str], input: &str) -> String {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is needed for the Kafka tests (tests/install.sh installs Debian's kcat)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_produces_and_consumes_keys_headers_and_every_compression() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_configured(dir.path(), KAFKA);
    let api = server.client();
    api.create_topic("orders", json!({ "partitions": 2 })).await;
    let broker = server.kafka_addr();
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        // JSON string values: HTTP readers get them as JSON, as if published so.
        let lines: String = (0..20).map(|i| format!("k{i}:\"{codec}-{i}\"\n")).collect();
        kcat(
            &[
                "-P", "-b", &broker, "-t", "orders", "-K:", "-z", codec, "-H", "via=kcat", "-X",
                "acks=all",
            ],
            &lines,
        );
    }
    // HTTP readers see what Kafka clients produced: keys, values, headers.
    let mut stored = Vec::new();
    for p in 0..2 {
        stored.extend(api.fetch_all("orders", p, 0).await);
    }
    assert_eq!(stored.len(), 100);
    for codec in codecs {
        for i in 0..20 {
            let r = stored
                .iter()
                .find(|r| r["value"] == format!("{codec}-{i}"))
                .unwrap_or_else(|| panic!("{codec}-{i} not stored"));
            assert_eq!(r["key"], format!("k{i}"), "{r}");
            assert_eq!(r["headers"]["via"], "kcat", "{r}");
        }
    }
    // A key's records share a partition, as with any Kafka producer's partitioner.
    // kcat reads them back, from both partitions, with their keys and headers.
    let out = kcat(
        &[
            "-C",
            "-b",
            &broker,
            "-t",
            "orders",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k|%s|%h\n",
        ],
        "",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 100, "{out}");
    assert!(lines.contains(&"k7|\"zstd-7\"|via=kcat"), "{out}");
    // Metadata and offsets as Kafka tools expect them.
    let meta = kcat(&["-L", "-b", &broker, "-t", "orders"], "");
    assert!(
        meta.contains("topic \"orders\" with 2 partitions"),
        "{meta}"
    );
    let tail = kcat(
        &[
            "-C", "-b", &broker, "-t", "orders", "-p", "0", "-o", "-1", "-e", "-f", "%o\n",
        ],
        "",
    );
    let (_, end) = api.offsets("orders", 0).await;
    assert_eq!(
        tail.trim(),
        (end - 1).to_string(),
        "the last record of partition 0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_produced_over_kafka_go_through_the_topics_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    install_plugin(
        &dir.path().join("plugins"),
        "paid-only",
        "filter",
        artifacts::JSON_FILTER,
        "[config]\npath = \"/status\"\nequals = \"paid\"\n[[attach]]\ntopic = \"payments\"\non_error = \"dead_letter\"",
    );
    install_plugin(
        &dir.path().join("plugins"),
        "redact",
        "transform",
        artifacts::REDACT,
        "[config]\nfields = [\"/card\"]\n[[attach]]\ntopic = \"payments\"\non_error = \"reject\"",
    );
    let server = ServerProcess::start_configured(dir.path(), KAFKA);
    let api = server.client();
    api.create_topic("payments", json!({ "partitions": 1 }))
        .await;
    let broker = server.kafka_addr();
    let lines = [
        r#"{"status":"paid","card":"4111"}"#,
        r#"{"status":"open","card":"4222"}"#,
        r#"{"status":"paid","card":"4333"}"#,
        "not json",
    ]
    .join("\n");
    kcat(
        &["-P", "-b", &broker, "-t", "payments", "-X", "acks=all"],
        &format!("{lines}\n"),
    );
    let stored = api.fetch_all("payments", 0, 0).await;
    let values: Vec<&Value> = stored.iter().map(|r| &r["value"]).collect();
    assert_eq!(
        values,
        [
            &json!({ "status": "paid", "card": "***" }),
            &json!({ "status": "paid", "card": "***" })
        ],
        "filtered and redacted exactly as an HTTP publish"
    );
    assert!(stored.iter().all(|r| {
        r["headers"]["weir-lineage"]
            .as_str()
            .unwrap()
            .contains("redact@")
    }));
    // The record the filter could not read is a dead letter, as over HTTP.
    let dead = api.fetch_all("payments.dlq", 0, 0).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
}

/// Sends `frame` (size-prefixed) and reads one answer, or `None` when the server
/// closed the connection instead.
async fn exchange(addr: &str, frame: &[u8]) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(frame).await.unwrap();
    let size = match s.read_i32().await {
        Ok(n) => n as usize,
        Err(_) => return None,
    };
    let mut body = vec![0; size];
    s.read_exact(&mut body).await.ok()?;
    Some(body)
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_configured(dir.path(), KAFKA);
    let broker = server.kafka_addr();
    // A size over the request limit (16 MiB by default), an unknown API, a Metadata
    // request whose body is cut short, and bytes that are not a frame at all.
    let mut cut = vec![0, 3, 0, 9, 0, 0, 0, 1, 0, 4];
    cut.extend_from_slice(b"we");
    for frame in [
        (64i32 << 20).to_be_bytes().to_vec(),
        framed(&[0x7f, 0x00, 0, 0, 0, 0, 0, 7]),
        framed(&cut),
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
    ] {
        assert_eq!(exchange(&broker, &frame).await, None, "{frame:?}");
    }
    // ApiVersions at a version from the future: answered at v0 with
    // UNSUPPORTED_VERSION (35) and the versions Weir serves, as KIP-511 asks.
    let answer = exchange(&broker, &framed(&[0, 18, 0, 99, 0, 0, 0, 42, 0xff, 0xff]))
        .await
        .expect("an answer");
    assert_eq!(&answer[..4], &42i32.to_be_bytes(), "the correlation id");
    assert_eq!(&answer[4..6], &35i16.to_be_bytes(), "UNSUPPORTED_VERSION");
    // The server logged why and serves everyone else.
    assert!(!server.log_lines("Kafka connection closed").is_empty());
    let meta = kcat(&["-L", "-b", &broker], "");
    assert!(meta.contains("1 brokers"), "{meta}");
    assert!(server.client().get("/v1/topics").await.status == 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_kafka_consumer_gets_an_http_publish_as_it_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_configured(dir.path(), KAFKA);
    let api = server.client();
    api.create_topic("live", json!({ "partitions": 1 })).await;
    let broker = server.kafka_addr();
    // kcat reads the empty topic from its start, long-polling, for one record.
    let consumer = Command::new("kcat")
        .args([
            "-C",
            "-b",
            &broker,
            "-t",
            "live",
            "-o",
            "beginning",
            "-c",
            "1",
            "-f",
            "%s\n",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Whether its fetch is already waiting or not, the record reaches it.
    api.publish("live", json!([{ "value": { "n": 1 } }])).await;
    let out = tokio::task::spawn_blocking(move || consumer.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"n":1}"#);
}
