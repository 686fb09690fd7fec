//! Kafka clients nobody here wrote, from PyPI (tests/kafka/requirements.txt):
//! librdkafka through confluent-kafka and the pure-Python kafka-python, in a
//! consumer group that rebalances, commits and resumes after the broker is killed;
//! idempotent producers whose retries store nothing twice; and one group read
//! through one protocol at a time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, GroupId, InitProducerIdRequest, InitProducerIdResponse, JoinGroupRequest,
    JoinGroupResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde_json::{Value, json};

use crate::harness::ServerProcess;

const KAFKA: &str = "[kafka]\nlisten = \"127.0.0.1:0\"\n";

/// Runs `tests/kafka/clients.py COMMAND ARGS` with the project's virtualenv (where
/// tests/install.sh puts the clients); its JSON report.
pub(crate) fn clients(command: &str, server: &ServerProcess, args: &[&str]) -> Value {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = Command::new(format!("{root}/.venv/bin/python"))
        .arg(format!("{root}/tests/kafka/clients.py"))
        .arg(command)
        .args([
            "--bootstrap",
            &server.kafka_addr(),
            "--http",
            &server.client().url,
        ])
        .args(args)
        .output()
        .expect("the Kafka clients' virtualenv is needed (tests/install.sh makes it)");
    assert!(
        out.status.success(),
        "clients.py {command}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every partition of `topic` in the group's HTTP description: (committed, high
/// watermark, lag).
async fn group_over_http(server: &ServerProcess, group: &str) -> Vec<(Value, u64, u64)> {
    let g = server.client().get(&format!("/v1/groups/{group}")).await;
    assert_eq!(g.status, 200, "{}", g.body);
    g.body["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["committed_offset"].clone(),
                p["high_watermark"].as_u64().unwrap(),
                p["lag_records"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Three members on `members` share a group that rebalances when one leaves,
/// committing each record; after SIGKILL a member on `resumer` reads exactly what
/// was produced since.
async fn a_group_rebalances_commits_and_resumes_after_a_kill(members: &str, resumer: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_configured(dir.path(), KAFKA);
    server
        .client()
        .create_topic("orders", json!({ "partitions": 6 }))
        .await;
    let group = ["--topic", "orders", "--group", "billing"];

    let args = [&group[..], &["--client", members, "--count", "600"]].concat();
    let report = clients("group", &server, &args);
    assert_eq!(report["three"], json!([2, 2, 2]), "{report}");
    assert_eq!(report["two"], json!([3, 3]), "{report}");
    assert_eq!(
        report["members_over_http"].as_array().unwrap().len(),
        3,
        "{report}"
    );
    assert_eq!(report["delivered"], 600, "{report}");
    assert_eq!(report["distinct_offsets"], 600, "{report}");
    assert_eq!(report["consumed_distinct"], 600, "{report}");
    assert_eq!(
        report["members_that_consumed"],
        json!([0, 1, 2]),
        "{report}"
    );
    assert_eq!(report["errors"], json!([]), "{report}");
    // What the Kafka consumers committed is the group HTTP shows: nothing left.
    let partitions = group_over_http(&server, "billing").await;
    assert_eq!(partitions.len(), 6);
    for (committed, hw, lag) in &partitions {
        assert_eq!((committed.as_u64(), *lag), (Some(*hw), 0), "{partitions:?}");
    }
    assert_eq!(partitions.iter().map(|p| p.1).sum::<u64>(), 600);

    // SIGKILL; the group resumes from its committed offsets: exactly the 50 records
    // produced since.
    server.kill();
    let server = ServerProcess::start_configured(dir.path(), KAFKA);
    let args = [
        &group[..],
        &["--client", resumer, "--start", "600", "--count", "50"],
    ]
    .concat();
    let report = clients("resume", &server, &args);
    let seen: Vec<u64> = serde_json::from_value(report["seen"].clone()).unwrap();
    assert_eq!(seen, (600..650).collect::<Vec<_>>(), "{report}");
    assert_eq!(report["assigned"], json!([0, 1, 2, 3, 4, 5]), "{report}");
    let partitions = group_over_http(&server, "billing").await;
    assert_eq!(partitions.iter().map(|p| p.1).sum::<u64>(), 650);
    assert!(
        partitions
            .iter()
            .all(|(c, hw, lag)| c.as_u64() == Some(*hw) && *lag == 0),
        "{partitions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_members_rebalance_and_kafka_python_resumes_after_a_kill() {
    a_group_rebalances_commits_and_resumes_after_a_kill("confluent", "kafka-python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_members_rebalance_and_librdkafka_resumes_after_a_kill() {
    a_group_rebalances_commits_and_resumes_after_a_kill("kafka-python", "confluent").await;
}

/// A Kafka connection speaking raw frames, for what a client library does not let
/// a test do on purpose (send the same batch twice).
struct Raw {
    stream: TcpStream,
    correlation: i32,
}

impl Raw {
    fn connect(server: &ServerProcess) -> Raw {
        Raw {
            stream: TcpStream::connect(server.kafka_addr()).unwrap(),
            correlation: 0,
        }
    }

    fn call<Q: Encodable, A: Decodable>(&mut self, key: ApiKey, version: i16, request: &Q) -> A {
        self.correlation += 1;
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("raw")))
            .encode(&mut body, key.request_header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).unwrap();
        let mut len = [0; 4];
        self.stream.read_exact(&mut len).unwrap();
        let mut answer = vec![0; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut answer).unwrap();
        let mut answer = Bytes::from(answer);
        let header =
            ResponseHeader::decode(&mut answer, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        A::decode(&mut answer, version).unwrap()
    }

    /// Produces `count` records as producer `id` from `sequence`, acks=all: the
    /// partition's error code and base offset.
    fn produce(&mut self, id: i64, sequence: i32, count: i32) -> (i16, i64) {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: id,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                sequence: sequence + i,
                timestamp: 0,
                key: None,
                value: Some(Bytes::from(format!("{{\"n\":{}}}", sequence + i))),
                headers: Default::default(),
            })
            .collect();
        let mut batch = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut batch, &records, &options).unwrap();
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("payments")))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch.freeze())),
                    ]),
            ]);
        let answer: ProduceResponse = self.call(ApiKey::Produce, 9, &request);
        let p = &answer.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_idempotent_batch_is_stored_once_even_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_configured(dir.path(), KAFKA);
    server
        .client()
        .create_topic("payments", json!({ "partitions": 1 }))
        .await;
    let mut raw = Raw::connect(&server);
    let init: InitProducerIdResponse = raw.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1),
    );
    assert_eq!((init.error_code, init.producer_epoch), (0, 0));
    let id = init.producer_id.0;
    assert!(id > 0);
    assert_eq!(raw.produce(id, 0, 3), (0, 0));
    // The retry of a batch (its answer lost, say) gets the first answer.
    assert_eq!(raw.produce(id, 0, 3), (0, 0));
    assert_eq!(raw.produce(id, 3, 2), (0, 3));
    // A gap is refused with the code producers act on.
    let out_of_order = kafka_protocol::ResponseError::OutOfOrderSequenceNumber.code();
    assert_eq!(raw.produce(id, 9, 1).0, out_of_order);
    // A producer id the broker has no session for, past its first batch.
    let unknown = kafka_protocol::ResponseError::UnknownProducerId.code();
    assert_eq!(raw.produce(id + 1, 5, 1).0, unknown);

    // SIGKILL: the dedup state was stored with the records, so the retry of the
    // last batch still gets its answer and stores nothing.
    server.kill();
    let server = ServerProcess::start_configured(dir.path(), KAFKA);
    let mut raw = Raw::connect(&server);
    assert_eq!(raw.produce(id, 3, 2), (0, 3));
    assert_eq!(raw.produce(id, 5, 1), (0, 5));
    let stored = server.client().fetch_all("payments", 0, 0).await;
    let values: Vec<u64> = stored
        .iter()
        .map(|r| r["value"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(values, vec![0, 1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_read_through_one_protocol_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_configured(dir.path(), KAFKA);
    let api = server.client();
    api.create_topic("events", json!({ "partitions": 2 })).await;
    let join = |group: &'static str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str(group)))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
            ])
    };
    // A Kafka member holds "kafka-side": an HTTP member is refused, and HTTP shows
    // the Kafka member.
    let mut raw = Raw::connect(&server);
    let joined: JoinGroupResponse = raw.call(ApiKey::JoinGroup, 5, &join("kafka-side"));
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    let refused = api
        .get("/v1/topics/events/records?group=kafka-side&member=h1")
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.body["code"], "group_in_use", "{}", refused.body);
    let g = api.get("/v1/groups/kafka-side").await.body;
    assert_eq!(g["members"][0]["member"], joined.member_id.as_str(), "{g}");

    // An HTTP member holds "http-side": a Kafka member is refused.
    let fetched = api
        .get("/v1/topics/events/records?group=http-side&member=h1&timeout_ms=0")
        .await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    let joined: JoinGroupResponse = raw.call(ApiKey::JoinGroup, 5, &join("http-side"));
    assert_eq!(
        joined.error_code,
        kafka_protocol::ResponseError::InconsistentGroupProtocol.code()
    );
}
