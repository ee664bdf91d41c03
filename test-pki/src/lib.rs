//! Test support for the workspace's TLS tests: a certificate authority made at run time
//! ([`TestCa`]) and the certificates it issues ([`Issued`]), current or already expired, as
//! PEM text. The tests of raft-http, raft-kv and raft-kv-client share it; it is not published.
//!
//! It panics where rcgen fails, which only a broken build of rcgen does: its callers are tests.
//!
//! ```
//! use raft_test_pki::{TestCa, Validity};
//!
//! let ca = TestCa::new("test CA");
//! let node = ca.issue(&["node-1.kv-test".to_owned(), "127.0.0.1".to_owned()], Validity::Current);
//! assert!(ca.pem.starts_with("-----BEGIN CERTIFICATE-----"));
//! assert!(node.certificate.starts_with("-----BEGIN CERTIFICATE-----"));
//! assert!(node.key.contains("PRIVATE KEY"));
//! ```
#![allow(clippy::expect_used)] // test support: rcgen fails only when broken

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

/// A certificate authority.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate, PEM.
    pub pem: String,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").field("pem", &self.pem).finish()
    }
}

/// A certificate and its private key, PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate.
    pub certificate: String,
    /// Its private key.
    pub key: String,
}

/// How long an issued certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// From 2020 to 2200.
    Current,
    /// During 2020 only: expired now.
    Expired,
}

impl TestCa {
    /// A new CA named `name`, valid from 2020 to 2200.
    ///
    /// # Panics
    /// If rcgen cannot make a key or sign.
    #[must_use]
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2200, 1, 1);
        let certificate = params.self_signed(&key).expect("a self-signed CA");
        TestCa {
            pem: certificate.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for server and client use with these names (DNS names; an IP address
    /// becomes an IP name), the first also its common name.
    ///
    /// # Panics
    /// If a name is not a valid DNS name or IP address, or rcgen cannot sign.
    #[must_use]
    pub fn issue(&self, names: &[String], validity: Validity) -> Issued {
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::new(names.to_vec()).expect("certificate names");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        (params.not_before, params.not_after) = match validity {
            Validity::Current => (date_time_ymd(2020, 1, 1), date_time_ymd(2200, 1, 1)),
            Validity::Expired => (date_time_ymd(2020, 1, 1), date_time_ymd(2021, 1, 1)),
        };
        let certificate = params.signed_by(&key, &self.issuer).expect("a signature");
        Issued {
            certificate: certificate.pem(),
            key: key.serialize_pem(),
        }
    }
}
