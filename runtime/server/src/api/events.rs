//! Server-Sent Events subscriptions: `GET /v1/topics/{t}/events`.
//!
//! Without a group the stream reads every partition from `from` (or from the
//! `Last-Event-ID` a reconnecting client sends) and each event's id names the position
//! of every partition, so a resume continues exactly after the last delivered record.
//! With `group=` the stream is a group member: it gets its share of the partitions,
//! starts at the committed offsets and commits what it has written to the connection
//! each time it reads more. Records are read from storage only as fast as the client
//! takes them (the stream is pulled by the connection), so a slow client costs no
//! buffering; an idle client gets a keep-alive comment every 15 s.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use futures_util::stream::{self, Stream};
use serde_json::json;
use weir_broker::groups::{FetchRequest, Groups, OffsetReset};
use weir_broker::pipeline::SubscriptionFilter;
use weir_broker::{Broker, ReadLimits, ReadResult, Topic};

use super::AppState;
use super::groups::parse_reset;
use super::params::{FILTER_PARAMS, FilterParams, unknown_param};
use super::problem::Problem;
use crate::auth::Principal;
use crate::wire::records::write_delivered;

/// Records read from storage per refill of a stream's queue.
const REFILL_RECORDS: usize = 500;
/// Longest wait for new records before the loop checks the connection again.
const IDLE_WAIT: Duration = Duration::from_secs(10);

/// `GET /v1/topics/{t}/events?from=earliest|latest|<p>:<o>,...` or `?group=g[&member=m]`.
pub async fn stream(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let expires_at = principal.and_then(|p| p.expires_at);
    let mut from = None;
    let mut group = None;
    let mut member = None;
    let mut reset = OffsetReset::Latest;
    let mut filter = FilterParams::default();
    for (k, v) in &query {
        match k.as_str() {
            "from" => from = Some(v.as_str()),
            "group" => {
                super::params::writable_group(v)?;
                group = Some(v.clone());
            }
            "member" => member = Some(super::params::non_empty(k, v)?.to_string()),
            "auto_offset_reset" => reset = parse_reset(v)?,
            other if filter.take(other, v)? => {}
            other => {
                return Err(unknown_param(
                    other,
                    &format!("from, group, member, auto_offset_reset, {FILTER_PARAMS}"),
                ));
            }
        }
    }
    let t = state.broker.topic(&topic)?;
    let filter = filter.build(&state.broker)?;
    let keep_alive = KeepAlive::new().interval(Duration::from_secs(15));
    if let Some(group) = group {
        if from.is_some() {
            return Err(Problem::invalid_request(
                "'from' does not apply to a group stream: it starts at the group's committed offsets \
                 (auto_offset_reset for a new group)",
            ));
        }
        weir_broker::groups::validate_group_name(&group)?;
        let groups = state.broker.groups().clone();
        let member = match member {
            Some(m) => m,
            None => format!("sse-{}", unique_suffix()),
        };
        let s = GroupStream {
            _leave: LeaveOnDrop {
                groups: groups.clone(),
                group: group.clone(),
                member: member.clone(),
            },
            groups,
            group,
            member,
            topic: t.clone(),
            filter,
            reset,
            queue: VecDeque::new(),
            assignment: None,
            done: false,
            telemetry: state.telemetry.clone(),
        };
        return Ok(Sse::new(until(expires_at, group_events(s)))
            .keep_alive(keep_alive)
            .into_response());
    }
    let next = start_positions(&t, from.unwrap_or("latest"), last_event_id(&headers))?;
    let s = PlainStream {
        broker: state.broker.clone(),
        telemetry: state.telemetry.clone(),
        topic: t,
        filter,
        next,
        queue: VecDeque::new(),
        done: false,
    };
    Ok(Sse::new(until(expires_at, plain_events(s)))
        .keep_alive(keep_alive)
        .into_response())
}

/// Ends `events` when the caller's credential expires (a JWT's `exp`): a stream must
/// not outlive the right to read it.
fn until<S: Stream + Send + 'static>(
    expires_at: Option<SystemTime>,
    events: S,
) -> impl Stream<Item = S::Item> + Send {
    match expires_at {
        None => events.left_stream(),
        Some(at) => {
            let left = at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            events.take_until(tokio::time::sleep(left)).right_stream()
        }
    }
}

fn last_event_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

/// A random suffix for member ids of group streams (std's hasher keys are random).
fn unique_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

/// Parses `p:o,p:o` pairs; `o` may be -1 in event ids ("nothing delivered yet").
fn parse_positions(text: &str, what: &str) -> Result<Vec<(u32, i64)>, Problem> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (p, o) = pair.split_once(':').ok_or_else(|| {
                Problem::invalid_request(format!("{what}: '{pair}' is not <partition>:<offset>"))
            })?;
            let p = p.trim().parse::<u32>().map_err(|_| {
                Problem::invalid_request(format!("{what}: bad partition in '{pair}'"))
            })?;
            let o = o
                .trim()
                .parse::<i64>()
                .map_err(|_| Problem::invalid_request(format!("{what}: bad offset in '{pair}'")))?;
            Ok((p, o))
        })
        .collect()
}

/// Where each partition starts: `from`, overridden per partition by `Last-Event-ID`.
fn start_positions(
    topic: &Topic,
    from: &str,
    last_id: Option<String>,
) -> Result<Vec<u64>, Problem> {
    let n = topic.partition_count() as usize;
    let mut next = Vec::with_capacity(n);
    for p in 0..n as u32 {
        let part = topic.partition(p)?;
        next.push(match from {
            "earliest" => part.log_start_offset(),
            _ => part.high_watermark(),
        });
    }
    if from != "earliest" && from != "latest" {
        // Partitions the list leaves out start at the earliest offset.
        for (p, part) in topic.offsets().iter().enumerate() {
            next[p] = part.log_start_offset;
        }
        for (p, o) in parse_positions(from, "from")? {
            let part = topic.partition(p)?;
            let (start, hw) = (part.log_start_offset(), part.high_watermark());
            if o < 0 || (o as u64) < start || o as u64 > hw {
                return Err(weir_broker::BrokerError::from(
                    weir_broker::StorageError::OffsetOutOfRange {
                        offset: o.max(0) as u64,
                        log_start_offset: start,
                        high_watermark: hw,
                    },
                )
                .into());
            }
            next[p as usize] = o as u64;
        }
    }
    if let Some(id) = last_id {
        // The id names the last delivered offset per partition: resume after it. If
        // retention has passed it, resume at what is still there.
        for (p, o) in parse_positions(&id, "Last-Event-ID")? {
            let part = topic.partition(p)?;
            let resume = (o + 1).max(0) as u64;
            next[p as usize] = resume.clamp(part.log_start_offset(), part.high_watermark());
        }
    }
    Ok(next)
}

fn error_event(p: Problem) -> Event {
    Event::default()
        .event("error")
        .data(json!({ "code": p.code(), "detail": p.detail() }).to_string())
}

/// The SSE `data` of each record a read delivers, with its offset.
async fn record_events(
    telemetry: &crate::telemetry::Telemetry,
    filter: Option<&SubscriptionFilter>,
    topic: &Arc<Topic>,
    partition: u32,
    read: ReadResult,
) -> Result<Vec<(u64, String)>, Problem> {
    let (read, delivery) = match filter {
        Some(f) => {
            let (r, d) = f.apply(topic, read).await?;
            (r, Some(d))
        }
        None => (read, None),
    };
    telemetry.delivered(topic.name(), &read);
    let mut buf = Vec::with_capacity(read.count * 160);
    let mut marks: Vec<(u64, usize)> = Vec::new();
    write_delivered(
        &mut buf,
        &read,
        delivery.as_ref(),
        Some((topic.name(), partition)),
        |out, offset| marks.push((offset, out.len())),
    );
    let ends = marks.iter().skip(1).map(|(_, at)| *at).chain([buf.len()]);
    Ok(marks
        .iter()
        .zip(ends)
        .map(|((offset, start), end)| {
            (
                *offset,
                String::from_utf8_lossy(&buf[*start..end]).into_owned(),
            )
        })
        .collect())
}

/// A stream over every partition of a topic, without a group.
struct PlainStream {
    broker: Broker,
    telemetry: crate::telemetry::SharedTelemetry,
    topic: Arc<Topic>,
    filter: Option<SubscriptionFilter>,
    /// Next offset to read, per partition.
    next: Vec<u64>,
    queue: VecDeque<Event>,
    done: bool,
}

impl PlainStream {
    /// The id of an event: one partition's offset, or every partition's last position.
    fn event_id(&self, partition: u32, offset: u64) -> String {
        if self.next.len() == 1 {
            return format!("{partition}:{offset}");
        }
        let mut id = String::with_capacity(self.next.len() * 8);
        for (p, next) in self.next.iter().enumerate() {
            if p > 0 {
                id.push(',');
            }
            let last = if p as u32 == partition {
                offset as i64
            } else {
                *next as i64 - 1
            };
            id.push_str(&format!("{p}:{last}"));
        }
        id
    }

    async fn refill(&mut self) -> Result<(), Problem> {
        let mut budget = REFILL_RECORDS;
        for p in 0..self.next.len() {
            if budget == 0 {
                break;
            }
            let limits = ReadLimits {
                max_records: budget,
                ..ReadLimits::default()
            };
            let r = self
                .broker
                .fetch(&self.topic, p as u32, self.next[p], limits, Duration::ZERO)
                .await?;
            budget -= r.count;
            let read_to = r.next_offset;
            for (offset, data) in record_events(
                &self.telemetry,
                self.filter.as_ref(),
                &self.topic,
                p as u32,
                r,
            )
            .await?
            {
                let id = self.event_id(p as u32, offset);
                self.next[p] = offset + 1;
                self.queue
                    .push_back(Event::default().id(id).event("record").data(data));
            }
            self.next[p] = self.next[p].max(read_to);
        }
        Ok(())
    }

    async fn wait(&self) {
        let waits = self.next.iter().enumerate().map(|(p, next)| {
            let topic = self.topic.clone();
            let next = *next;
            Box::pin(async move {
                if let Ok(part) = topic.partition(p as u32) {
                    part.wait_beyond(next, IDLE_WAIT).await;
                }
            })
        });
        futures_util::future::select_all(waits).await;
    }
}

fn plain_events(s: PlainStream) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(s, |mut s| async move {
        loop {
            if let Some(e) = s.queue.pop_front() {
                return Some((Ok(e), s));
            }
            if s.done || s.topic.is_deleted() {
                return None;
            }
            if let Err(p) = s.refill().await {
                s.done = true;
                return Some((Ok(error_event(p)), s));
            }
            if s.queue.is_empty() {
                s.wait().await;
            }
        }
    })
}

/// Leaves the group when the stream ends (the client went away), so the member's
/// partitions move to the others at once instead of after the session timeout.
struct LeaveOnDrop {
    groups: Groups,
    group: String,
    member: String,
}

impl Drop for LeaveOnDrop {
    fn drop(&mut self) {
        let (groups, group, member) =
            (self.groups.clone(), self.group.clone(), self.member.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = groups.leave(&group, &member).await {
                    tracing::warn!(error = %e, group, member, "leaving a group failed");
                }
            });
        }
    }
}

/// A stream that is one member of a group.
struct GroupStream {
    /// Held for its `Drop`: leaving the group when the stream ends.
    _leave: LeaveOnDrop,
    groups: Groups,
    group: String,
    member: String,
    topic: Arc<Topic>,
    filter: Option<SubscriptionFilter>,
    reset: OffsetReset,
    queue: VecDeque<Event>,
    assignment: Option<(u64, Vec<u32>)>,
    done: bool,
    telemetry: crate::telemetry::SharedTelemetry,
}

impl GroupStream {
    async fn refill(&mut self) -> Result<(), Problem> {
        // First without waiting, so a new assignment is announced at once; then, if
        // there was nothing to send, wait for records (a rebalance ends the wait too).
        for wait in [Duration::ZERO, IDLE_WAIT] {
            let f = self
                .groups
                .fetch(FetchRequest {
                    group: &self.group,
                    member: Some(&self.member),
                    topic: self.topic.name(),
                    limits: ReadLimits {
                        max_records: REFILL_RECORDS,
                        ..ReadLimits::default()
                    },
                    wait,
                    // Commits what the previous refill handed to the connection.
                    auto_commit: true,
                    reset: self.reset,
                })
                .await?;
            let now = (f.generation, f.partitions.clone());
            if self.assignment.as_ref() != Some(&now) {
                self.queue.push_back(Event::default().event("assignment").data(
                    json!({ "member": f.member, "generation": f.generation, "partitions": f.partitions })
                        .to_string(),
                ));
                self.assignment = Some(now);
            }
            for (p, r) in f.results {
                for (offset, data) in
                    record_events(&self.telemetry, self.filter.as_ref(), &self.topic, p, r).await?
                {
                    self.queue.push_back(
                        Event::default()
                            .id(format!("{p}:{offset}"))
                            .event("record")
                            .data(data),
                    );
                }
            }
            if !self.queue.is_empty() {
                break;
            }
        }
        Ok(())
    }
}

fn group_events(s: GroupStream) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(s, |mut s| async move {
        loop {
            if let Some(e) = s.queue.pop_front() {
                return Some((Ok(e), s));
            }
            if s.done {
                return None;
            }
            if let Err(p) = s.refill().await {
                s.done = true;
                return Some((Ok(error_event(p)), s));
            }
        }
    })
}
