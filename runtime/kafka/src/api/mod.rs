//! Requests by API: the versions Weir serves, decoding, dispatch and the encoded
//! answer.

mod commits;
mod fetch;
mod groups;
mod metadata;
mod offsets;
mod produce;
mod producers;
pub(crate) mod sasl;
mod topics;
mod versions;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::Context;
use crate::frame::{FrameError, Start};

/// The APIs Weir serves and their versions: the ones whose topics are named (not
/// only identified by id), with record batches of magic v2.
pub(crate) const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::InitProducerId, 0, 4),
    // v1 only: v0 sends the credentials outside Kafka frames.
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// What a connection may ask before it has authenticated.
const BEFORE_AUTHENTICATION: [ApiKey; 3] = [
    ApiKey::ApiVersions,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
];

/// Who sent a request: its client id and the host it connected from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Client {
    pub id: String,
    pub host: String,
}

fn supported(api_key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|(k, min, max)| *k == api_key && (*min..=*max).contains(&version))
}

/// Answers one request: `None` when no answer is due (a produce with `acks=0`).
pub(crate) async fn handle(
    cx: &mut Context,
    sasl: &mut sasl::Sasl,
    peer: &str,
    start: Start,
    mut body: Bytes,
) -> Result<Option<BytesMut>, FrameError> {
    let unsupported = FrameError::Unsupported {
        api_key: start.api_key,
        version: start.version,
    };
    let Ok(api_key) = ApiKey::try_from(start.api_key) else {
        return Err(unsupported);
    };
    if !supported(api_key, start.version) {
        // A client asking for ApiVersions at a version Weir does not know is told
        // the versions it knows, at version 0, and tries again (KIP-511).
        if api_key == ApiKey::ApiVersions {
            let answer = versions::unsupported_version();
            return encode(ApiKey::ApiVersions, 0, start.correlation_id, answer).map(Some);
        }
        return Err(unsupported);
    }
    // Kafka brokers with SASL close a connection that asks anything else first.
    if cx.caller.is_none() && !BEFORE_AUTHENTICATION.contains(&api_key) {
        return Err(FrameError::Unauthenticated(format!("{api_key:?}")));
    }
    let (header, request) = decode(api_key, start.version, &mut body)?;
    let version = start.version;
    let client = Client {
        id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        host: peer.to_string(),
    };
    let answer = match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(versions::answer()),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::answer(cx, r).await),
        RequestKind::Produce(r) => match produce::answer(cx, r).await {
            Some(a) => ResponseKind::Produce(a),
            None => return Ok(None),
        },
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::answer(cx, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(offsets::answer(cx, r).await),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(topics::create(cx, r).await),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(topics::delete(cx, r).await),
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(cx, r))
        }
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(groups::join(cx, &client, r).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups::sync(cx, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(cx, r).await),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave(cx, r).await),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(commits::commit(cx, r).await),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(commits::fetch(cx, r).await),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(groups::describe(cx, r).await)
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list(cx, r).await),
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(producers::init(r)),
        RequestKind::SaslHandshake(r) => ResponseKind::SaslHandshake(sasl::handshake(sasl, r)),
        RequestKind::SaslAuthenticate(r) => {
            ResponseKind::SaslAuthenticate(sasl::authenticate(cx, sasl, r))
        }
        _ => return Err(unsupported),
    };
    tracing::trace!(api = ?api_key, version, client = ?header.client_id, "Kafka request answered");
    encode(api_key, version, header.correlation_id, answer).map(Some)
}

/// A request's header and body.
fn decode(
    api_key: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<(RequestHeader, RequestKind), FrameError> {
    let malformed = |e: anyhow::Error| FrameError::Malformed {
        api: format!("{api_key:?}"),
        version,
        reason: format!("{e:#}"),
    };
    let header =
        RequestHeader::decode(body, api_key.request_header_version(version)).map_err(malformed)?;
    let request = RequestKind::decode(api_key, body, version).map_err(malformed)?;
    Ok((header, request))
}

/// Decodes a request frame as a connection would (header, body, and a produce's
/// record batches, decompressed within `limit` bytes), without a broker: what the
/// fuzz target drives. Never panics, whatever `frame` holds.
pub fn decode_frame(frame: &[u8], limit: usize) -> Result<usize, String> {
    let Some(start) = frame.get(..4) else {
        return Err("too short".into());
    };
    let api_key = i16::from_be_bytes([start[0], start[1]]);
    let version = i16::from_be_bytes([start[2], start[3]]);
    let Ok(api_key) = ApiKey::try_from(api_key) else {
        return Err(format!("unknown API key {api_key}"));
    };
    if !supported(api_key, version) {
        return Err(format!("unsupported {api_key:?} v{version}"));
    }
    let mut body = Bytes::copy_from_slice(frame);
    let (_, request) = decode(api_key, version, &mut body).map_err(|e| e.to_string())?;
    let mut records = 0;
    if let RequestKind::Produce(p) = request {
        for pd in p.topic_data.into_iter().flat_map(|t| t.partition_data) {
            let decoded = crate::records::Decoded::decode(pd.records.unwrap_or_default(), limit)
                .map_err(|e| format!("{e:?}"))?;
            records += decoded.new_records(0).len();
        }
    }
    Ok(records)
}

fn encode(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    answer: ResponseKind,
) -> Result<BytesMut, FrameError> {
    let mut out = BytesMut::with_capacity(256);
    let failed = |e: anyhow::Error| FrameError::Malformed {
        api: format!("{api_key:?}"),
        version,
        reason: format!("the answer did not encode: {e}"),
    };
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, api_key.response_header_version(version))
        .map_err(failed)?;
    answer.encode(&mut out, version).map_err(failed)?;
    Ok(out)
}
