//! What the codec's two halves share: the `[version, message]` envelope every
//! body travels in ([`WIRE_VERSION`], written by [`write_envelope`] and checked by
//! [`open_envelope`]), the errors of encoding and decoding ([`EncodeError`], [`DecodeError`]),
//! and [`share`], which turns the bytes a decoder borrowed from a body into a slice of it.
//!
//! `codec.rs` (the serde messages, InstallSnapshot) and `codec/append.rs` (AppendEntries, by
//! hand) both import from here, and this file imports from neither.

use bytes::Bytes;

/// The wire version this crate speaks. Version 2 added membership entries to AppendEntries and
/// the whole membership (outgoing voters, learners, addresses) to InstallSnapshot's meta;
/// version 1 peers are refused with [`DecodeError::UnsupportedVersion`] (all nodes of a cluster
/// run the same version).
pub const WIRE_VERSION: u16 = 2;

/// Why a body could not be decoded. Servers answer it with 400 and this message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body does not start with the `[version, message]` envelope.
    #[error("not a [version, message] envelope: {0}")]
    Envelope(String),
    /// The envelope's version is not [`WIRE_VERSION`].
    #[error("unsupported wire version {found} (this node speaks version {WIRE_VERSION})")]
    UnsupportedVersion {
        /// The version the body carries.
        found: u64,
    },
    /// The message inside the envelope is malformed or truncated.
    #[error("malformed message: {0}")]
    Message(String),
}

/// A message that could not be encoded (it cannot happen with raft-core's messages, which are
/// plain data, but serde's interface allows it).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the message: {0}")]
pub struct EncodeError(pub(super) String);

/// The envelope's head: a 2-array and the version; the message follows.
pub(super) fn write_envelope(buffer: &mut Vec<u8>) -> Result<(), EncodeError> {
    rmp::encode::write_array_len(buffer, 2).map_err(|e| EncodeError(e.to_string()))?;
    rmp::encode::write_uint(buffer, u64::from(WIRE_VERSION))
        .map_err(|e| EncodeError(e.to_string()))?;
    Ok(())
}

/// Checks the envelope and returns the bytes of the message inside it.
pub(super) fn open_envelope(body: &[u8]) -> Result<&[u8], DecodeError> {
    let mut rest = body;
    let items = rmp::decode::read_array_len(&mut rest)
        .map_err(|e| DecodeError::Envelope(format!("{e:?}")))?;
    if items != 2 {
        return Err(DecodeError::Envelope(format!(
            "an array of {items} items, expected 2"
        )));
    }
    let version: u64 = rmp::decode::read_int(&mut rest)
        .map_err(|e| DecodeError::Envelope(format!("no version number ({e:?})")))?;
    if version != u64::from(WIRE_VERSION) {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    Ok(rest)
}

/// `part` as a slice of `whole` when it lies inside it (it always does: the decoder borrows from
/// the body), else a copy, so that no input can make this panic.
pub(super) fn share(whole: &Bytes, part: &[u8]) -> Bytes {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize);
    match start {
        Some(start)
            if start
                .checked_add(part.len())
                .is_some_and(|end| end <= whole.len()) =>
        {
            whole.slice(start..start + part.len())
        }
        _ => Bytes::copy_from_slice(part),
    }
}
