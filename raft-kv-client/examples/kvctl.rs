//! A small command-line client of a raft-kv cluster.
//!
//! ```text
//! cargo run -p raft-kv-client --example kvctl -- \
//!     --endpoint http://127.0.0.1:7001 --endpoint http://127.0.0.1:7002 \
//!     [--token TOKEN] [--ca CA.pem] [--http1] [--consistency stale] \
//!     get KEY | put KEY VALUE | put-if KEY VERSION VALUE | create KEY VALUE |
//!     delete KEY | incr KEY
//! ```
//!
//! Endpoints default to `$RAFT_KV_ENDPOINTS` (comma-separated), then `http://127.0.0.1:7001`.

use std::io::Write;
use std::process::ExitCode;

use raft_kv_client::{Client, Condition, Consistency, Error, Protocol, TlsConfig};

const USAGE: &str = "usage: kvctl [--endpoint URL]... [--token TOKEN] [--ca CA.pem] [--http1] \
    [--consistency linearizable|follower|lease|stale] \
    get KEY | put KEY VALUE | put-if KEY VERSION VALUE | create KEY VALUE | delete KEY | incr KEY";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "kvctl: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Vec<String>) -> Result<(), String> {
    let mut endpoints = Vec::new();
    let mut builder_steps: Vec<(String, String)> = Vec::new();
    let mut http1 = false;
    let mut words = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--endpoint" | "--token" | "--ca" | "--consistency" => {
                let value = args.next().ok_or(format!("{arg} needs a value"))?;
                if arg == "--endpoint" {
                    endpoints.push(value);
                } else {
                    builder_steps.push((arg, value));
                }
            }
            "--http1" => http1 = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            _ => words.push(arg),
        }
    }
    if endpoints.is_empty() {
        endpoints = std::env::var("RAFT_KV_ENDPOINTS")
            .unwrap_or_else(|_| "http://127.0.0.1:7001".to_owned())
            .split(',')
            .map(str::to_owned)
            .collect();
    }
    let mut builder = Client::builder(endpoints);
    if http1 {
        builder = builder.protocol(Protocol::Http1);
    }
    for (option, value) in builder_steps {
        builder = match option.as_str() {
            "--token" => builder.api_token(value),
            "--ca" => builder.tls(TlsConfig::with_ca_file(value).map_err(|e| e.to_string())?),
            _ => builder.consistency(match value.as_str() {
                "linearizable" => Consistency::Linearizable,
                "follower" => Consistency::Follower,
                "lease" => Consistency::Lease,
                "stale" => Consistency::Stale,
                other => return Err(format!("unknown consistency {other}")),
            }),
        };
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let line = match words.as_slice() {
        ["get", key] => client.get(key).await.map(|read| {
            format!(
                "{} (version {})",
                String::from_utf8_lossy(&read.value),
                read.version.map_or("?".to_owned(), |v| v.to_string())
            )
        }),
        ["put", key, value] => client
            .put(key, value.to_string())
            .await
            .map(|w| format!("ok (version {})", w.version)),
        ["put-if", key, version, value] => {
            let version = version.parse().map_err(|_| "VERSION is a number")?;
            client
                .put_if(key, value.to_string(), Condition::Version(version))
                .await
                .map(|w| format!("ok (version {})", w.version))
        }
        ["create", key, value] => client
            .put_if(key, value.to_string(), Condition::Absent)
            .await
            .map(|w| format!("ok (version {})", w.version)),
        ["delete", key] => client
            .delete(key)
            .await
            .map(|w| format!("ok (version {})", w.version)),
        ["incr", key] => client.incr(key).await.map(|i| i.value.to_string()),
        _ => return Err(USAGE.to_owned()),
    };
    match line {
        Ok(line) => {
            let _ = writeln!(std::io::stdout(), "{line}");
            Ok(())
        }
        Err(Error::NotFound) => Err("no such key".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}
