//! Groups another protocol coordinates: the Kafka listener's consumer groups, whose
//! members join and assign partitions the Kafka way (client-side), but whose
//! committed offsets are this coordinator's. Their members are shown beside HTTP
//! members (one `describe`, one lag), and a group is coordinated by one protocol at
//! a time, as Kafka refuses members of another protocol type.

use super::{GroupInfo, Groups, MemberInfo};
use crate::error::{BrokerError, Result};

/// What another coordinator publishes about one of its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalGroup {
    /// Who coordinates it (`kafka`).
    pub protocol: &'static str,
    /// Its generation.
    pub generation: u64,
    /// Its live members and the partitions they took.
    pub members: Vec<MemberInfo>,
}

impl Groups {
    /// Publishes the members another coordinator holds in `group` (`None` once it
    /// holds none).
    pub fn set_external(&self, group: &str, view: Option<ExternalGroup>) {
        match view {
            Some(v) if !v.members.is_empty() => {
                self.inner.external.insert(group.to_string(), v);
            }
            _ => {
                self.inner.external.remove(group);
            }
        }
    }

    /// Whether `group` has live members coordinated here (HTTP members): another
    /// protocol must not join it meanwhile.
    pub fn has_members(&self, group: &str) -> bool {
        self.require_no_http_members(group).is_err()
    }

    /// Refuses an HTTP member while another protocol coordinates `group`.
    pub(super) fn refuse_if_external(&self, group: &str) -> Result<()> {
        match self.inner.external.get(group) {
            Some(v) => Err(BrokerError::GroupInUse {
                group: group.to_string(),
                protocol: v.protocol,
            }),
            None => Ok(()),
        }
    }

    /// The external members of `group` added to what `describe` found.
    pub(super) fn add_external(&self, info: &mut GroupInfo) {
        let Some(v) = self.inner.external.get(&info.group) else {
            return;
        };
        info.generation = v.generation;
        for m in &v.members {
            for (topic, partitions) in &m.assignments {
                for p in info
                    .partitions
                    .iter_mut()
                    .filter(|p| &p.topic == topic && partitions.contains(&p.partition))
                {
                    p.owner = Some(m.member.clone());
                }
            }
        }
        info.members.extend(v.members.iter().cloned());
    }

    /// Names of groups other coordinators hold members in.
    pub(super) fn external_names(&self) -> Vec<String> {
        self.inner
            .external
            .iter()
            .map(|e| e.key().clone())
            .collect()
    }
}
