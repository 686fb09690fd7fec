//! An ACL policy that allows everything except resources named `trap` (it panics)
//! and `loop` (it never returns): the broker must deny those with
//! `policy_unavailable`, never allow them.

use weir_sdk::{Acl, AclRequest, Decision};

/// Accepts any config.
#[derive(serde::Deserialize)]
pub struct Config {}

/// The policy.
pub struct HostileAcl;

impl Acl for HostileAcl {
    type Config = Config;

    fn init(_: Config) -> Result<Self, String> {
        Ok(HostileAcl)
    }

    fn authorize(&self, r: &AclRequest) -> Decision {
        match r.resource_name.as_str() {
            "trap" => panic!("the policy traps on purpose"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => Decision::Allow,
        }
    }
}

weir_sdk::export_acl!(HostileAcl);
