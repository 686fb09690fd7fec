//! TLS and mTLS end to end, with certificates made by the test: a CA, a server
//! certificate for 127.0.0.1, and client certificates whose common name becomes the
//! principal the ACL policy sees.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use weir_server::config::{TlsConfig, TokenConfig};
use weir_test_artifacts as artifacts;

use crate::harness::{TestServer, install_plugin};

pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    pub(crate) server: (String, String),
    /// CN `svc-orders`, signed by the CA.
    client: (String, String),
    /// CN `svc-orders` too, but from another CA: must not be accepted.
    stranger: (String, String),
}

fn ca(name: &str) -> (Issuer<'static, KeyPair>, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    (Issuer::new(params, key), cert.pem())
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    cn: &str,
    sans: &[&str],
    client: bool,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

pub(crate) fn pki() -> Pki {
    let (issuer, ca_pem) = ca("weir test CA");
    let (other, _) = ca("another CA");
    Pki {
        server: leaf(&issuer, "weir", &["127.0.0.1", "localhost"], false),
        client: leaf(&issuer, "svc-orders", &[], true),
        stranger: leaf(&other, "svc-orders", &[], true),
        ca_pem,
    }
}

/// One HTTPS request; `client` is a (cert, key) PEM pair for mTLS.
async fn https(
    url: &str,
    ca_pem: &str,
    client: Option<&(String, String)>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(|c| c.unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let addr = url.trim_start_matches("http://");
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .unwrap();
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())?
    };
    Ok((status, value))
}

pub(crate) fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_client_certificates_end_to_end() {
    let pki = pki();
    let certs = tempfile::tempdir().unwrap();
    let tls = TlsConfig {
        cert: write(certs.path(), "server.pem", &pki.server.0),
        key: write(certs.path(), "server.key", &pki.server.1),
        client_ca: Some(write(certs.path(), "ca.pem", &pki.ca_pem)),
        require_client_cert: false,
    };
    let server = TestServer::start_with(move |plugins, c| {
        install_plugin(
            plugins,
            "acl-rules",
            "acl",
            artifacts::ACL_RULES,
            "[[config.rules]]\neffect = \"allow\"\nprincipals = [\"admin\"]\noperations = [\"*\"]\nresources = [\"*\"]\n\
             [[config.rules]]\neffect = \"allow\"\nprincipals = [\"svc-orders\"]\noperations = [\"produce\"]\nresources = [\"topic:orders\"]",
        );
        c.tls = Some(tls);
        c.auth.enabled = true;
        c.auth.tokens = vec![TokenConfig {
            principal: "admin".into(),
            sha256: Sha256::digest(b"admin-token")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            groups: vec![],
        }];
        c.acl.plugin = Some("acl-rules".into());
    })
    .await;
    let url = server.url.clone();
    // A token over TLS.
    for t in ["orders", "other"] {
        let (status, body) = https(
            &url,
            &pki.ca_pem,
            None,
            "PUT",
            &format!("/v1/topics/{t}"),
            Some("admin-token"),
            Some(json!({ "partitions": 1 })),
        )
        .await
        .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    // The client certificate is the principal.
    let records = json!({ "records": [{ "value": 1 }] });
    let (status, body) = https(
        &url,
        &pki.ca_pem,
        Some(&pki.client),
        "POST",
        "/v1/topics/orders/records",
        None,
        Some(records.clone()),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = https(
        &url,
        &pki.ca_pem,
        Some(&pki.client),
        "POST",
        "/v1/topics/other/records",
        None,
        Some(records.clone()),
    )
    .await
    .unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["principal"], "svc-orders");
    // Without a certificate or token: 401.
    let (status, _) = https(
        &url,
        &pki.ca_pem,
        None,
        "POST",
        "/v1/topics/orders/records",
        None,
        Some(records.clone()),
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    // A certificate from another CA with the same name is refused in the handshake.
    let refused = https(
        &url,
        &pki.ca_pem,
        Some(&pki.stranger),
        "POST",
        "/v1/topics/orders/records",
        None,
        Some(records.clone()),
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("{url}/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    server.stop().await;
}
