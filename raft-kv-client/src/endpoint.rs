//! [`Endpoint`]: a node's address as the client dials it (`http://host:port` or
//! `https://host:port`), read from the configuration or from a redirect's `Location`.

use std::fmt;
use std::sync::Arc;

/// A node the client can dial: TLS or not, and `host:port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Endpoint {
    /// `https` (true) or `http`.
    pub(crate) tls: bool,
    /// `host:port` (`[::1]:7001` for an IPv6 address).
    pub(crate) authority: Arc<str>,
}

impl Endpoint {
    /// Reads `http://host:port`, `https://host:port` or `host:port` (then `https` when
    /// `default_tls`); a trailing `/` is allowed, any other path is not.
    pub(crate) fn parse(text: &str, default_tls: bool) -> Result<Endpoint, String> {
        let text = text.trim();
        let (tls, rest) = match text.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            Some((scheme, _)) => {
                return Err(format!("{text}: the scheme {scheme} is not http or https"));
            }
            None => (default_tls, text),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!("{text}: expected http://host:port"));
        }
        let Some((host, port)) = authority.rsplit_once(':') else {
            return Err(format!("{text}: the port is missing (host:port)"));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("{text}: expected host:port with a numeric port"));
        }
        Ok(Endpoint {
            tls,
            authority: Arc::from(authority),
        })
    }

    /// The endpoint of a redirect's `Location` (`http://host:port/kv/...`), if it has one.
    pub(crate) fn from_location(location: &str) -> Option<Endpoint> {
        let (scheme, rest) = location.split_once("://")?;
        let authority = rest.split(['/', '?']).next()?;
        Endpoint::parse(&format!("{scheme}://{authority}"), false).ok()
    }

    /// `http` or `https`.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// The host, without the port and without an IPv6 address's brackets (the TLS server
    /// name).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn host(&self) -> &str {
        let host = self
            .authority
            .rsplit_once(':')
            .map_or(&*self.authority, |(host, _)| host);
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.authority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_or_without_a_scheme() {
        let plain = Endpoint::parse("127.0.0.1:7001", false).unwrap();
        assert_eq!(plain.to_string(), "http://127.0.0.1:7001");
        assert_eq!(
            Endpoint::parse("kv-1.example:7001", true)
                .unwrap()
                .to_string(),
            "https://kv-1.example:7001"
        );
        let v6 = Endpoint::parse("https://[::1]:7001/", false).unwrap();
        assert!(v6.tls);
        assert_eq!(&*v6.authority, "[::1]:7001");
        assert_eq!(v6.host(), "::1");
        assert_eq!(plain.host(), "127.0.0.1");
    }

    #[test]
    fn malformed_endpoints_are_refused() {
        for bad in [
            "",
            "ftp://h:1",
            "http://h",
            "http://h:port",
            "http://h:1/kv",
            "http://:1",
            "http://u@h:1",
        ] {
            assert!(Endpoint::parse(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_location_gives_its_endpoint() {
        let leader = Endpoint::from_location("http://127.0.0.1:7002/kv/a%2Fb?consistency=lease");
        assert_eq!(
            leader.map(|e| e.to_string()).as_deref(),
            Some("http://127.0.0.1:7002")
        );
        assert_eq!(
            Endpoint::from_location("https://n2:9/kv/x").map(|e| e.tls),
            Some(true)
        );
        assert!(Endpoint::from_location("/kv/x").is_none());
    }
}
