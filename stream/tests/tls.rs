#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The stream over TLS on the loopback: a follower that trusts the server's CA subscribes and
//! receives its span; one that trusts another CA, or asks for another name, is refused at the
//! handshake with an error that says which CA file and name to check; an `https://` server without
//! a CA, or a CA file that is missing, says which flag fixes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gingham_stream::{
    Batch, ClientTls, Follower, FollowerState, ItemKey, ItemKind, ServerTls, SpanService, StaticTokens, StreamServer,
    serve_tls,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

type Members = BTreeSet<String>;

/// The certificate (PEM) of a CA called `ca_name`, and a serving certificate it signed for `names`.
fn authority(ca_name: &str, names: &[&str]) -> (String, ServerTls) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let cert = CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), ServerTls { cert: cert.pem(), key: key.serialize_pem() })
}

/// Serves n1's span (one set) over TLS on the loopback; returns the `https://` URL.
async fn serve(tls: ServerTls) -> String {
    let tokens = StaticTokens(BTreeMap::from([("t1".to_string(), "n1".to_string())]));
    let (service, publisher) = SpanService::<Members>::new(16, Arc::new(tokens), Duration::from_secs(60));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { serve_tls(service, listener, &tls, std::future::pending()).await.unwrap() });
    let key = ItemKey::new(ItemKind::IpSet, "a");
    let batch = Batch {
        items: BTreeMap::from([(key.clone(), Some(BTreeSet::from(["10.232.0.1".to_string()])))]),
        spans: BTreeMap::from([("n1".to_string(), Some(BTreeSet::from([key])))]),
    };
    publisher.publish(1, batch).unwrap();
    // The publisher must outlive the test's subscriptions.
    std::mem::forget(publisher);
    url
}

/// Follows n1 from `server` until it streams or reports a break; returns the state.
async fn follow(server: StreamServer) -> FollowerState {
    let follower: Follower<Members> = Follower::new(vec![server], "n1", "t1");
    let mut state = follower.state();
    let task = tokio::spawn(follower.run());
    let settled =
        tokio::time::timeout(Duration::from_secs(10), state.wait_for(|s| !matches!(s, FollowerState::Connecting)));
    let outcome = settled.await.expect("the follower settles within 10 s").unwrap().clone();
    task.abort();
    outcome
}

fn trusting(url: &str, ca_file: &Path, server_name: Option<&str>) -> StreamServer {
    let tls = ClientTls { ca_file: ca_file.to_path_buf(), server_name: server_name.map(str::to_string) };
    url.parse::<StreamServer>().unwrap().verified_by(&tls)
}

#[tokio::test]
async fn a_follower_streams_over_tls_only_from_a_server_its_ca_vouches_for() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, tls) = authority("gingham-stream-ca", &["gingham-stream.gingham-system.svc"]);
    let (other_ca, _) = authority("another-ca", &["gingham-stream.gingham-system.svc"]);
    let (ca_file, other_ca_file) = (dir.path().join("ca.crt"), dir.path().join("other-ca.crt"));
    std::fs::write(&ca_file, ca).unwrap();
    std::fs::write(&other_ca_file, other_ca).unwrap();
    let url = serve(tls).await;
    let name = Some("gingham-stream.gingham-system.svc");

    let streaming = follow(trusting(&url, &ca_file, name)).await;
    assert!(matches!(&streaming, FollowerState::Streaming { revision: 1, server } if server.starts_with("https://")));

    // (CA file, name asked for, what the reason must say)
    let refused = [
        (&other_ca_file, name, vec!["UnknownIssuer", "other-ca.crt", "--stream-ca-file"]),
        (
            &ca_file,
            Some("elsewhere.example"),
            vec!["not valid for name \"elsewhere.example\"", "--stream-tls-server-name"],
        ),
        (&ca_file, None, vec!["127.0.0.1", "--stream-tls-server-name"]),
    ];
    for (file, server_name, fragments) in refused {
        let state = follow(trusting(&url, file, server_name)).await;
        let FollowerState::Disconnected { revision: None, reason } = &state else { panic!("{state:?}") };
        for fragment in fragments {
            assert!(reason.contains(fragment), "{fragment:?} in {reason}");
        }
    }
}

#[tokio::test]
async fn an_https_server_without_a_usable_ca_says_which_flag_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.crt");
    std::fs::write(&empty, "").unwrap();
    let url = "https://127.0.0.1:1";
    let no_ca = url.parse::<StreamServer>().unwrap();
    assert!(no_ca.is_tls());
    let cases = [
        (no_ca, vec!["https://", "--stream-ca-file"]),
        (trusting(url, &dir.path().join("missing.crt"), None), vec!["missing.crt", "--stream-ca-file"]),
        (trusting(url, &empty, None), vec!["no PEM certificate", "empty.crt"]),
    ];
    for (server, fragments) in cases {
        let state = follow(server).await;
        let FollowerState::Disconnected { reason, .. } = &state else { panic!("{state:?}") };
        for fragment in fragments {
            assert!(reason.contains(fragment), "{fragment:?} in {reason}");
        }
    }
    assert!(!"http://127.0.0.1:1".parse::<StreamServer>().unwrap().is_tls());
    let unexpanded = "https://$(GINGHAM_STREAM_SERVICE_HOST):5473".parse::<StreamServer>().unwrap_err();
    assert!(unexpanded.to_string().contains("did not exist when the pod started"), "{unexpanded}");
    let scheme = "ftp://127.0.0.1:1".parse::<StreamServer>().unwrap_err();
    assert!(scheme.to_string().contains("http:// or https://"), "{scheme}");
}
