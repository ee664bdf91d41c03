//! The crypto provider of every TLS configuration.

use std::sync::Arc;

/// The crypto of every TLS configuration: rustls's `ring` provider, which builds with a C
/// compiler alone (aws-lc-rs, rustls's default, brings a large C build). rustls 0.23.48
/// deprecated it for lacking post-quantum key exchange; swapping in
/// `rustls::crypto::aws_lc_rs::default_provider()` here (and the feature in Cargo.toml) is
/// the whole change when that matters more than the build.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
