//! The group protocol's membership APIs: FindCoordinator (this broker coordinates
//! every group), JoinGroup, SyncGroup, Heartbeat, LeaveGroup, DescribeGroups and
//! ListGroups, over [`crate::groups`].

use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    BrokerId, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Client;
use crate::Context;
use crate::groups::state::{Answer, JoinAsk};

/// Session timeouts a member may ask for (Kafka's `group.min/max.session.timeout.ms`,
/// with a lower floor so tests and quick failovers can use short sessions).
const SESSION_BOUNDS: (i32, i32) = (1_000, 1_800_000);
/// FindCoordinator's key type for transactions, which Weir does not have.
const TRANSACTION_KEY: i8 = 1;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn valid_group(name: &str) -> bool {
    weir_broker::groups::validate_group_name(name).is_ok()
}

pub(super) fn find_coordinator(
    cx: &Context,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let host = text(cx.settings.advertised_host.clone());
    let port = i32::from(cx.settings.advertised_port);
    let answer = |key_type: i8| -> (i16, Option<StrBytes>) {
        if key_type == TRANSACTION_KEY {
            (
                ResponseError::CoordinatorNotAvailable.code(),
                Some(text("Weir has no transactions")),
            )
        } else {
            (0, None)
        }
    };
    let (code, message) = answer(request.key_type);
    // v4 asks for several keys at once; earlier versions for one.
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(0))
                .with_host(host.clone())
                .with_port(port)
                .with_error_code(code)
                .with_error_message(message.clone())
        })
        .collect();
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(0))
        .with_host(host)
        .with_port(port)
        .with_error_code(code)
        .with_error_message(message)
        .with_coordinators(coordinators)
}

pub(super) async fn join(
    cx: &Context,
    client: &Client,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let name = request.group_id.as_str().to_string();
    let refused = |e: ResponseError| {
        JoinGroupResponse::default()
            .with_error_code(e.code())
            .with_generation_id(-1)
            .with_member_id(request.member_id.clone())
    };
    if !valid_group(&name) {
        return refused(ResponseError::InvalidGroupId);
    }
    if !cx.allowed_group("consume", &name).await {
        return refused(ResponseError::GroupAuthorizationFailed);
    }
    let session = request.session_timeout_ms;
    if !(SESSION_BOUNDS.0..=SESSION_BOUNDS.1).contains(&session) {
        return refused(ResponseError::InvalidSessionTimeout);
    }
    // HTTP members hold the group: one protocol at a time, as Kafka refuses a
    // member of another protocol type.
    if cx.broker.groups().has_members(&name) {
        return refused(ResponseError::InconsistentGroupProtocol);
    }
    // v0 has no rebalance timeout: the session timeout serves.
    let rebalance = if request.rebalance_timeout_ms > 0 {
        request.rebalance_timeout_ms.min(SESSION_BOUNDS.1)
    } else {
        session
    };
    let ask = JoinAsk {
        member: request.member_id.as_str().to_string(),
        instance: request.group_instance_id.as_ref().map(|i| i.to_string()),
        client_id: client.id.clone(),
        client_host: client.host.clone(),
        session: Duration::from_millis(session as u64),
        rebalance: Duration::from_millis(rebalance as u64),
        protocol_type: request.protocol_type.as_str().to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.as_str().to_string(), p.metadata.clone()))
            .collect(),
    };
    let answer = {
        let g = cx.groups.group(&name);
        let mut st = g.lock();
        let answer = st.join(ask, cx.groups.new_member_id(&client.id), Instant::now());
        cx.groups.publish(&name, &st);
        answer
    };
    let outcome = match answer {
        Answer::Now(r) => r,
        Answer::Later(rx) => rx.await.unwrap_or(Err(ResponseError::RebalanceInProgress)),
    };
    match outcome {
        Ok(j) => JoinGroupResponse::default()
            .with_generation_id(j.generation)
            .with_protocol_type(Some(text(j.protocol_type)))
            .with_protocol_name(Some(text(j.protocol)))
            .with_leader(text(j.leader))
            .with_member_id(text(j.member))
            .with_members(
                j.members
                    .into_iter()
                    .map(|(id, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(text(id))
                            .with_metadata(metadata)
                    })
                    .collect(),
            ),
        Err(e) => refused(e),
    }
}

pub(super) async fn sync(cx: &Context, request: SyncGroupRequest) -> SyncGroupResponse {
    let name = request.group_id.as_str();
    let refused = |e: ResponseError| SyncGroupResponse::default().with_error_code(e.code());
    if !cx.allowed_group("consume", name).await {
        return refused(ResponseError::GroupAuthorizationFailed);
    }
    let Some(g) = cx.groups.existing(name) else {
        return refused(ResponseError::UnknownMemberId);
    };
    let assignments = request
        .assignments
        .into_iter()
        .map(|a| (a.member_id.as_str().to_string(), a.assignment))
        .collect();
    let (answer, protocol_type, protocol) = {
        let mut st = g.lock();
        let answer = st.sync(
            request.generation_id,
            request.member_id.as_str(),
            assignments,
            Instant::now(),
        );
        cx.groups.publish(name, &st);
        (answer, st.protocol_type.clone(), st.protocol.clone())
    };
    let outcome = match answer {
        Answer::Now(r) => r,
        Answer::Later(rx) => rx.await.unwrap_or(Err(ResponseError::RebalanceInProgress)),
    };
    match outcome {
        Ok(assignment) => SyncGroupResponse::default()
            .with_assignment(assignment)
            .with_protocol_type(protocol_type.map(text))
            .with_protocol_name(protocol.map(text)),
        Err(e) => refused(e),
    }
}

pub(super) async fn heartbeat(cx: &Context, request: HeartbeatRequest) -> HeartbeatResponse {
    if !cx.allowed_group("consume", request.group_id.as_str()).await {
        return HeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let answer = match cx.groups.existing(request.group_id.as_str()) {
        Some(g) => g.lock().heartbeat(
            request.generation_id,
            request.member_id.as_str(),
            Instant::now(),
        ),
        None => Err(ResponseError::UnknownMemberId),
    };
    HeartbeatResponse::default().with_error_code(answer.err().map_or(0, |e| e.code()))
}

pub(super) async fn leave(cx: &Context, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let name = request.group_id.as_str();
    if !cx.allowed_group("consume", name).await {
        return LeaveGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    // v0-2 name one member; v3+ a list.
    let ids: Vec<(String, Option<String>)> = if request.members.is_empty() {
        vec![(request.member_id.as_str().to_string(), None)]
    } else {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.as_str().to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    };
    let known = match cx.groups.existing(name) {
        Some(g) => {
            let mut st = g.lock();
            let known = st.leave(&ids, Instant::now());
            cx.groups.publish(name, &st);
            known
        }
        None => vec![false; ids.len()],
    };
    let code = |k: bool| {
        if k {
            0
        } else {
            ResponseError::UnknownMemberId.code()
        }
    };
    let members = request
        .members
        .iter()
        .zip(&known)
        .map(|(m, k)| {
            MemberResponse::default()
                .with_member_id(m.member_id.clone())
                .with_group_instance_id(m.group_instance_id.clone())
                .with_error_code(code(*k))
        })
        .collect();
    // v3+ answer per member; earlier versions for their one member.
    let single = if request.members.is_empty() {
        code(known[0])
    } else {
        0
    };
    LeaveGroupResponse::default()
        .with_error_code(single)
        .with_members(members)
}

pub(super) async fn describe(
    cx: &Context,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(request.groups.len());
    for id in request.groups {
        let name = id.as_str().to_string();
        let described = DescribedGroup::default().with_group_id(id);
        if !cx.allowed_group("describe", &name).await {
            groups.push(described.with_error_code(ResponseError::GroupAuthorizationFailed.code()));
            continue;
        }
        let described = match cx.groups.existing(&name) {
            Some(g) => {
                let st = g.lock();
                let protocol = st.protocol.clone().unwrap_or_default();
                described
                    .with_group_state(text(st.phase.name()))
                    .with_protocol_type(text(st.protocol_type.clone().unwrap_or_default()))
                    .with_protocol_data(text(protocol.clone()))
                    .with_members(
                        st.members
                            .iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(text(m.id.clone()))
                                    .with_client_id(text(m.client_id.clone()))
                                    .with_client_host(text(m.client_host.clone()))
                                    .with_member_metadata(m.metadata(&protocol))
                                    .with_member_assignment(m.assignment.clone())
                            })
                            .collect(),
                    )
            }
            // A group HTTP members read, or one with only committed offsets.
            None if cx.broker.groups().describe(&name).await.is_ok() => {
                described.with_group_state(text(if cx.broker.groups().has_members(&name) {
                    "Stable"
                } else {
                    "Empty"
                }))
            }
            None if valid_group(&name) => described.with_group_state(text("Dead")),
            None => described.with_error_code(ResponseError::InvalidGroupId.code()),
        };
        groups.push(described);
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(super) async fn list(cx: &Context, request: ListGroupsRequest) -> ListGroupsResponse {
    let mut names = match cx.broker.groups().list() {
        Ok(n) => n,
        Err(e) => {
            return ListGroupsResponse::default().with_error_code(crate::errors::code(&e));
        }
    };
    for n in cx.groups.names() {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names.sort();
    // Only the groups the caller may describe, as Kafka lists them.
    let mut visible = Vec::with_capacity(names.len());
    for name in names {
        if cx.allowed_group("describe", &name).await {
            visible.push(name);
        }
    }
    let names = visible;
    let filter: Vec<&str> = request.states_filter.iter().map(|s| s.as_str()).collect();
    let groups = names
        .into_iter()
        .filter_map(|name| {
            let (protocol_type, group_state) = match cx.groups.existing(&name) {
                Some(g) => {
                    let st = g.lock();
                    (
                        st.protocol_type.clone().unwrap_or_default(),
                        st.phase.name(),
                    )
                }
                None if cx.broker.groups().has_members(&name) => (String::new(), "Stable"),
                None => (String::new(), "Empty"),
            };
            (filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(group_state))).then(
                || {
                    ListedGroup::default()
                        .with_group_id(GroupId(text(name)))
                        .with_protocol_type(text(protocol_type))
                        .with_group_state(text(group_state))
                },
            )
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
