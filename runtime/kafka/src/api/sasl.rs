//! SASL: SaslHandshake picks a mechanism, SaslAuthenticate carries the
//! credentials, and the connection takes the principal Weir's guard finds behind
//! them. PLAIN's password and OAUTHBEARER's token are what an HTTP client sends as
//! `Authorization: Bearer`: an API token or a JWT, so the ACL policy plugin decides
//! for Kafka clients as for HTTP ones. A client may authenticate again on the same
//! connection before its credential expires (KIP-368); a failed attempt closes it.

use std::time::SystemTime;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::Context;

/// The mechanisms served, in the names clients use.
const MECHANISMS: [&str; 2] = ["PLAIN", "OAUTHBEARER"];

/// A connection's SASL exchange.
#[derive(Debug, Default)]
pub(crate) struct Sasl {
    mechanism: Option<&'static str>,
    /// The last attempt failed: the connection is closed after its answer.
    pub(crate) failed: bool,
}

pub(super) fn handshake(sasl: &mut Sasl, request: SaslHandshakeRequest) -> SaslHandshakeResponse {
    let offered = MECHANISMS.map(StrBytes::from_static_str).to_vec();
    let answer = SaslHandshakeResponse::default().with_mechanisms(offered);
    match MECHANISMS
        .iter()
        .find(|m| **m == request.mechanism.as_str())
    {
        Some(m) => {
            sasl.mechanism = Some(m);
            answer
        }
        None => answer.with_error_code(ResponseError::UnsupportedSaslMechanism.code()),
    }
}

pub(super) fn authenticate(
    cx: &mut Context,
    sasl: &mut Sasl,
    request: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let refused = |sasl: &mut Sasl, e: ResponseError, message: String| {
        sasl.failed = true;
        SaslAuthenticateResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    let credentials = match sasl.mechanism.take() {
        Some("PLAIN") => plain(&request.auth_bytes),
        Some(_) => oauthbearer(&request.auth_bytes).map(|token| (None, token)),
        None => {
            return refused(
                sasl,
                ResponseError::IllegalSaslState,
                "SaslAuthenticate before a SaslHandshake chose a mechanism".into(),
            );
        }
    };
    let caller =
        credentials.and_then(|(user, secret)| cx.authorizer.authenticate(user.as_deref(), &secret));
    // Authenticating again (KIP-368) renews the credential of the same principal.
    let caller = caller.and_then(|c| match &cx.caller {
        Some(before) if cx.authorizer.connected(None).is_none() && before.name() != c.name() => {
            Err("authenticating again as another principal".to_string())
        }
        _ => Ok(c),
    });
    match caller {
        Ok(caller) => {
            let lifetime = caller.expires_at().map_or(0, |at| {
                at.duration_since(SystemTime::now())
                    .map_or(1, |d| d.as_millis().max(1) as i64)
            });
            tracing::debug!(principal = caller.name(), "a Kafka client authenticated");
            cx.caller = Some(caller);
            SaslAuthenticateResponse::default()
                .with_auth_bytes(Bytes::new())
                .with_session_lifetime_ms(lifetime)
        }
        Err(why) => {
            tracing::info!(reason = %why, "a Kafka client failed to authenticate");
            refused(sasl, ResponseError::SaslAuthenticationFailed, why)
        }
    }
}

/// PLAIN (RFC 4616): `authzid NUL authcid NUL password`; an authorization id, if
/// given, must be the user's own.
fn plain(bytes: &[u8]) -> Result<(Option<String>, String), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "PLAIN credentials are not UTF-8")?;
    let mut parts = text.split('\0');
    let (Some(authz), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("PLAIN credentials are authzid NUL username NUL password".into());
    };
    if !authz.is_empty() && authz != user {
        return Err("PLAIN: acting as another user is not supported".into());
    }
    if password.is_empty() {
        return Err("PLAIN: an empty password".into());
    }
    Ok((Some(user.to_string()), password.to_string()))
}

/// OAUTHBEARER (RFC 7628): `n,[a=authzid],` then `\x01`-separated `key=value`
/// pairs, one of them `auth=Bearer TOKEN`.
fn oauthbearer(bytes: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "OAUTHBEARER message is not UTF-8")?;
    let rest = text
        .strip_prefix("n,")
        .and_then(|r| r.split_once(','))
        .ok_or("OAUTHBEARER message does not start with a GS2 header (n,,)")?;
    let (authzid, rest) = rest;
    if !authzid.is_empty() {
        return Err("OAUTHBEARER: acting as another user (a=) is not supported".into());
    }
    rest.split('\x01')
        .find_map(|kv| kv.strip_prefix("auth="))
        .and_then(|auth| {
            auth.strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "OAUTHBEARER message has no auth=Bearer token".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_as_the_rfcs_say() {
        assert_eq!(
            plain(b"\0alice\0alice-token"),
            Ok((Some("alice".into()), "alice-token".into()))
        );
        assert_eq!(
            plain(b"alice\0alice\0t"),
            Ok((Some("alice".into()), "t".into()))
        );
        assert!(plain(b"bob\0alice\0t").is_err());
        assert!(plain(b"\0alice").is_err());
        assert!(plain(b"\0alice\0").is_err());
        assert_eq!(
            oauthbearer(b"n,,\x01auth=Bearer eyJ.x.y\x01\x01"),
            Ok("eyJ.x.y".into())
        );
        assert_eq!(
            oauthbearer(b"n,,\x01host=h\x01auth=Bearer t\x01\x01"),
            Ok("t".into())
        );
        assert!(oauthbearer(b"n,a=svc,\x01auth=Bearer t\x01\x01").is_err());
        assert!(oauthbearer(b"\x01auth=Bearer t\x01\x01").is_err());
        assert!(oauthbearer(b"n,,\x01auth=Basic t\x01\x01").is_err());
    }
}
