//! Secure by default: a node any of whose addresses is not on loopback (where others can reach
//! it) must protect its peer routes with mutual TLS or a shared secret, or be told to serve them
//! unprotected (`--insecure`), which it then says in its log.
//!
//! Without either, anyone who reaches the port could send an AppendEntries with a higher term
//! and take over the node's log. On loopback only the machine's own users can, which keeps
//! `raft-kv local` (and a `serve` cluster on `127.0.0.1`) zero-config.
//!
//! The addresses checked are the listening and advertised addresses, every `--peer` and the
//! `--join` URL. A host is on loopback when it is an IP address in `127.0.0.0/8` or `::1`, or
//! `localhost`; any other name counts as reachable (names are not resolved), and so do
//! `0.0.0.0` and `[::]`, every interface.

use tracing::warn;

use crate::error::Error;

/// What guards a node's routes, as far as the check cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Guards {
    /// Mutual TLS between peers (`--tls-*`).
    pub(crate) tls: bool,
    /// A shared secret on every peer request (`--secret`).
    pub(crate) secret: bool,
    /// A bearer token on writes and the admin routes of the client API (`--api-token`).
    pub(crate) api_token: bool,
    /// `--insecure`: serve unprotected all the same.
    pub(crate) insecure: bool,
}

/// What the check concluded: the reason to refuse, or the warnings to log.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Refuse(String),
    Start(Vec<String>),
}

/// Checks `addresses` (what each is, such as `--listen`, and the address) against `guards`,
/// logs the warnings and refuses with [`Error::Unprotected`] when the node must not start.
pub(crate) fn check(addresses: &[(&str, &str)], guards: Guards) -> Result<(), Error> {
    match assess(addresses, guards) {
        Verdict::Refuse(reason) => Err(Error::Unprotected(reason)),
        Verdict::Start(warnings) => {
            for warning in warnings {
                warn!("{warning}");
            }
            Ok(())
        }
    }
}

/// The decision, without logging.
pub(crate) fn assess(addresses: &[(&str, &str)], guards: Guards) -> Verdict {
    let Some((what, address)) = addresses.iter().find(|(_, address)| !is_loopback(address)) else {
        return Verdict::Start(Vec::new());
    };
    let mut warnings = Vec::new();
    if !guards.tls && !guards.secret {
        if !guards.insecure {
            return Verdict::Refuse(format!(
                "{what} {address} is not a loopback address, and the peer routes are \
                 unprotected: anyone who reaches the port could send Raft messages and take over \
                 the log. Configure mutual TLS (--tls-ca, --tls-cert, --tls-key) or a shared \
                 secret (--secret), or pass --insecure to serve unprotected anyway"
            ));
        }
        warnings.push(format!(
            "--insecure: serving the peer routes unprotected at {what} {address}; anyone who \
             reaches the port can send Raft messages and take over this node's log"
        ));
    } else if !guards.tls {
        warnings.push(format!(
            "without TLS, the secret that guards the peer routes travels in clear text to and \
             from {what} {address}: anyone who can read the network can take it (configure \
             --tls-ca, --tls-cert and --tls-key)"
        ));
    }
    if !guards.api_token {
        warnings.push(format!(
            "the client API at {what} {address} takes writes from anyone who reaches it \
             (set --api-token)"
        ));
    }
    Verdict::Start(warnings)
}

/// Whether the host of `address` (`host:port`, `[v6]:port`, optionally a URL with a scheme and
/// a path) is on loopback.
pub(crate) fn is_loopback(address: &str) -> bool {
    let host = host_of(address);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The host of an address or URL, without brackets.
fn host_of(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or(bracketed);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised_in_every_address_form() {
        for address in [
            "127.0.0.1:7001",
            "127.3.4.5:1",
            "localhost:7001",
            "LOCALHOST:1",
            "[::1]:7001",
            "http://127.0.0.1:7001",
            "https://localhost:7001/admin",
        ] {
            assert!(is_loopback(address), "{address}");
        }
        for address in [
            "0.0.0.0:7001",
            "[::]:7001",
            "10.0.0.1:7001",
            "node-1.example:7001",
            "https://10.0.0.2:7001",
            "localhost.example:1",
            "",
        ] {
            assert!(!is_loopback(address), "{address}");
        }
    }

    #[test]
    fn exposed_addresses_need_tls_a_secret_or_insecure() {
        let loopback = [("--listen", "127.0.0.1:7001"), ("--peer", "localhost:7002")];
        assert_eq!(
            assess(&loopback, Guards::default()),
            Verdict::Start(Vec::new())
        );
        let exposed = [("--listen", "127.0.0.1:7001"), ("--peer", "10.0.0.2:7001")];
        match assess(&exposed, Guards::default()) {
            Verdict::Refuse(reason) => {
                assert!(reason.starts_with("--peer 10.0.0.2:7001"), "{reason}");
                assert!(reason.contains("--insecure"), "{reason}");
            }
            other => panic!("started: {other:?}"),
        }
        let with = |guards: Guards| match assess(&exposed, guards) {
            Verdict::Start(warnings) => warnings,
            Verdict::Refuse(reason) => panic!("refused: {reason}"),
        };
        let tls = Guards {
            tls: true,
            api_token: true,
            ..Guards::default()
        };
        assert!(with(tls).is_empty());
        let secret = with(Guards {
            secret: true,
            api_token: true,
            ..Guards::default()
        });
        assert!(secret.len() == 1 && secret[0].contains("clear text"));
        let insecure = with(Guards {
            insecure: true,
            ..Guards::default()
        });
        assert!(insecure[0].contains("--insecure"));
        assert!(insecure[1].contains("--api-token"));
    }
}
