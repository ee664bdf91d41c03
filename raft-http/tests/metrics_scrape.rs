//! `/metrics` scraped over HTTP parses as Prometheus text exposition format and carries the
//! metric names of ARCHITECTURE.md ("Metrics"). Its own test binary: it installs the process's
//! global recorder.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use raft_core::{NodeId, Transport};
use raft_http::metrics as names;
use raft_http::{HttpTransport, RaftService, ServerConfig};

/// Checks one line of the text format; returns the metric name of a sample line.
fn check_line(line: &str) -> Result<Option<String>, String> {
    if line.is_empty() {
        return Ok(None);
    }
    if let Some(comment) = line.strip_prefix("# ") {
        let mut words = comment.splitn(3, ' ');
        return match (words.next(), words.next(), words.next()) {
            (Some("HELP"), Some(name), _) if is_name(name) => Ok(None),
            (Some("TYPE"), Some(name), Some(kind)) if is_name(name) => match kind {
                "counter" | "gauge" | "histogram" | "summary" | "untyped" => Ok(None),
                _ => Err(format!("unknown type {kind}")),
            },
            _ => Err("bad comment".to_owned()),
        };
    }
    let (series, value) = line.rsplit_once(' ').ok_or("no value")?;
    value.parse::<f64>().or_else(|_| match value {
        "+Inf" | "-Inf" | "NaN" => Ok(0.0),
        _ => Err(format!("bad value {value}")),
    })?;
    let (name, labels) = match series.split_once('{') {
        None => (series, None),
        Some((name, rest)) => (name, Some(rest.strip_suffix('}').ok_or("unclosed labels")?)),
    };
    if !is_name(name) {
        return Err(format!("bad name {name}"));
    }
    if let Some(labels) = labels {
        check_labels(labels)?;
    }
    Ok(Some(name.to_owned()))
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `key="value",key="value"` with `\\`, `\"` and `\n` escapes in values.
fn check_labels(mut rest: &str) -> Result<(), String> {
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").ok_or("label without =\"")?;
        if !is_name(key) {
            return Err(format!("bad label name {key}"));
        }
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    chars.next().ok_or("dangling escape")?;
                }
                Some((i, '"')) => break i,
                Some(_) => {}
                None => return Err("unterminated label value".to_owned()),
            }
        };
        rest = &after[end + 1..];
        if let Some(next) = rest.strip_prefix(',') {
            rest = next;
        } else if !rest.is_empty() {
            return Err(format!("junk after a label: {rest}"));
        }
    }
    Ok(())
}

#[test]
fn the_line_checker_refuses_broken_lines() {
    assert!(check_line("a_total{x=\"1\",y=\"q\\\"\"} 3").is_ok());
    assert!(check_line("# TYPE a_total counter").is_ok());
    for bad in [
        "a b c",
        "a{x=1} 2",
        "a{x=\"1\" 2",
        "# TYPE a nonsense",
        "1a 2",
        "a{x=\"1\"}",
    ] {
        assert!(check_line(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_format() {
    // Named through raft-http: no direct dependency on metrics-exporter-prometheus needed.
    let handle: raft_http::PrometheusHandle =
        raft_http::metrics::install_prometheus_recorder().expect("first recorder");
    assert!(
        raft_http::metrics::install_prometheus_recorder().is_err(),
        "only one recorder per process"
    );
    let handler = FakeHandler::new();
    let mut service = service_config();
    service.node = Some(NodeId(2));
    let service = RaftService::new(handler.clone(), service).with_metrics(handle);
    let server = serve_on("127.0.0.1:0", service, ServerConfig::default()).await;

    let mut client = client_config();
    client.node = Some(NodeId(1));
    let transport = HttpTransport::new([(NodeId(2), server.addr.to_string())], client).unwrap();
    for seq in 0..5 {
        transport
            .append_entries(NodeId(2), append_request(seq, 3))
            .await
            .unwrap();
    }
    transport
        .request_vote(NodeId(2), vote_request(1, true))
        .await
        .unwrap();
    let snapshot = snapshot_data(1000);
    transport
        .install_snapshot(NodeId(2), snapshot_request(1, &snapshot, 0, 1000))
        .await
        .unwrap();
    // A refused request and a client error, so those series exist too.
    let refused = http1(
        server.addr,
        post("/raft/v1/vote", Bytes::from_static(b"junk")),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let mut unreachable = client_config();
    unreachable.connect_timeout = Duration::from_millis(100);
    let nowhere =
        HttpTransport::new([(NodeId(3), closed_port().await.to_string())], unreachable).unwrap();
    assert!(
        nowhere
            .request_vote(NodeId(3), vote_request(1, true))
            .await
            .is_err()
    );

    let scrape = Request::builder()
        .method("GET")
        .uri("/metrics")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = http1(server.addr, scrape).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{answer:?}"
    );
    let text = answer.body;
    let mut samples = Vec::new();
    for line in text.lines() {
        match check_line(line) {
            Ok(Some(name)) => samples.push((name, line)),
            Ok(None) => {}
            Err(why) => panic!("line {line:?} is not exposition format ({why}) in:\n{text}"),
        }
    }
    let has = |needle: &str| samples.iter().any(|(_, line)| line.contains(needle));
    assert!(
        has(r#"raft_http_requests_total{node="2",route="append",status="200"} 5"#),
        "{text}"
    );
    assert!(
        has(r#"raft_http_requests_total{node="2",route="vote",status="400"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"raft_http_requests_total{node="2",route="snapshot",status="200"} 1"#),
        "{text}"
    );
    for name in [
        names::SERVER_RECEIVED_BYTES,
        names::SERVER_SENT_BYTES,
        names::CLIENT_SENT_BYTES,
        names::CLIENT_RECEIVED_BYTES,
        names::CLIENT_CONNECTS,
    ] {
        assert!(
            samples.iter().any(|(n, _)| n == name),
            "{name} missing:\n{text}"
        );
    }
    assert!(
        has(r#"raft_http_client_errors_total{peer="3",kind="connect"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"raft_http_rpc_latency_seconds_bucket{node="1",peer="2",route="append""#),
        "the RPC latency is a histogram:\n{text}"
    );
    assert!(
        has(r#"raft_http_rpc_latency_seconds_bucket{node="1",peer="2",route="snapshot""#),
        "snapshot chunks have their latency series:\n{text}"
    );
    // HEAD answers without a body; other methods are refused.
    let mut head = post("/metrics", Bytes::new());
    *head.method_mut() = "HEAD".parse().unwrap();
    assert_eq!(http1(server.addr, head).await.status, StatusCode::OK);
    let answer = http1(server.addr, post("/metrics", Bytes::new())).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.headers["allow"], "GET, HEAD");
    server.stop().await;
}
