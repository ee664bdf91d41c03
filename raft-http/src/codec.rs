//! The wire format of request and response bodies: a MessagePack array `[version, message]`,
//! where `version` is [`WIRE_VERSION`] and `message` is the raft-core message encoded by
//! rmp-serde in its compact form (structs as arrays, enum variants by name).
//!
//! The version comes first and is read with rmp's low-level decoder before anything else, so a
//! body from a newer (or older) peer is refused as [`DecodeError::UnsupportedVersion`] instead of
//! being misread. Any change to a message's serde shape must bump the version.
//!
//! The two messages that carry bulk data are decoded without copying it: AppendEntries, the hot
//! path ([`decode_append_entries`] borrows each command from the received body and hands it on
//! as a [`Bytes`] slice of the same buffer; it and [`encode_append_entries`] are written by hand
//! over rmp, byte for byte the serde shape, because serde's per-field visitors were a visible
//! share of the `http` benchmark), and InstallSnapshot ([`decode_install_snapshot`]
//! does the same with the chunk's data). The server collects a body into one buffer, which
//! copies only when it arrived in several HTTP/2 frames. Encoding writes each payload (or the
//! chunk) once into the request buffer, sized up front. Other messages go through plain serde.
//!
//! Decoding never panics on any input (see `tests/codec_proptest.rs`). Bytes after the message
//! are not looked at.
//!
//! The envelope and the errors are in `codec/envelope.rs`, the AppendEntries codec in
//! `codec/append.rs`.
// Untrusted bytes are decoded here: no indexing that could panic (malformed input is an error, never a panic).
#![deny(clippy::indexing_slicing)]

mod append;
mod envelope;

use bytes::Bytes;
use raft_core::message::{AppendEntries, InstallSnapshot};
use raft_core::{NodeId, SnapshotMeta, Term};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use envelope::{DecodeError, EncodeError, WIRE_VERSION};
use envelope::{open_envelope, share, write_envelope};

/// The content type of request and response bodies.
pub const CONTENT_TYPE: &str = "application/msgpack";

/// Encodes `message` in the current wire version.
///
/// ```
/// use raft_core::message::TimeoutNow;
/// use raft_core::{NodeId, Term};
///
/// let message = TimeoutNow { term: Term(3), leader_id: NodeId(1) };
/// let body = raft_http::codec::encode(&message)?;
/// let back: TimeoutNow = raft_http::codec::decode(&body)?;
/// assert_eq!(back, message);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`EncodeError`] if serde refuses the value.
pub fn encode<T: Serialize + ?Sized>(message: &T) -> Result<Bytes, EncodeError> {
    encode_with_capacity(message, 64)
}

/// Encodes an AppendEntries into one buffer sized for its payloads up front (by hand: the bytes
/// are those [`encode`] writes, see `codec/append.rs`).
///
/// # Errors
/// [`EncodeError`] for a request no peer could read (over 2^32 entries, a command over 4 GiB).
pub fn encode_append_entries(request: &AppendEntries) -> Result<Bytes, EncodeError> {
    let payload_bytes: u64 = request.entries.iter().map(|e| e.payload.len()).sum();
    // Per entry: the array and enum headers, two u64s and a bin header, at most ~32 bytes.
    let capacity = 64 + request.entries.len() * 32 + payload_bytes as usize;
    let mut buffer = Vec::with_capacity(capacity);
    write_envelope(&mut buffer)?;
    append::write(&mut buffer, request)?;
    Ok(Bytes::from(buffer))
}

/// Encodes an InstallSnapshot chunk into one buffer sized for its data up front.
///
/// # Errors
/// [`EncodeError`] if serde refuses the value.
pub fn encode_install_snapshot(request: &InstallSnapshot) -> Result<Bytes, EncodeError> {
    // The fixed fields and the meta take under 128 bytes, plus at most 9 per voter.
    let capacity = 128 + request.meta.membership.len() * 9 + request.data.len();
    encode_with_capacity(request, capacity)
}

fn encode_with_capacity<T: Serialize + ?Sized>(
    message: &T,
    capacity: usize,
) -> Result<Bytes, EncodeError> {
    let mut buffer = Vec::with_capacity(capacity);
    write_envelope(&mut buffer)?;
    rmp_serde::encode::write(&mut buffer, message).map_err(|e| EncodeError(e.to_string()))?;
    Ok(Bytes::from(buffer))
}

/// Decodes a message of type `T` from a body in the current wire version.
///
/// # Errors
/// [`DecodeError::Envelope`] or [`DecodeError::Message`] for malformed or truncated bytes,
/// [`DecodeError::UnsupportedVersion`] for another version.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let message = open_envelope(body)?;
    rmp_serde::from_slice(message).map_err(|e| DecodeError::Message(e.to_string()))
}

/// Decodes an AppendEntries whose command payloads are slices of `body` (no copy). It reads
/// what [`encode`] writes for an `AppendEntries`, by hand (see `codec/append.rs`).
///
/// # Errors
/// As [`decode`].
pub fn decode_append_entries(body: &Bytes) -> Result<AppendEntries, DecodeError> {
    let message = open_envelope(body)?;
    append::read(body, message)
}

/// Decodes an InstallSnapshot chunk whose data is a slice of `body` (no copy).
///
/// ```
/// use bytes::Bytes;
/// use raft_core::message::InstallSnapshot;
/// use raft_core::{LogId, Membership, NodeId, SnapshotMeta, Term};
///
/// let data = Bytes::from_static(b"the state machine's state");
/// let chunk = InstallSnapshot {
///     term: Term(5),
///     leader_id: NodeId(1),
///     seq: 12,
///     meta: SnapshotMeta {
///         last_log_id: LogId::new(4, 100),
///         membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
///         size: data.len() as u64,
///         checksum: 0x1234_5678,
///     },
///     offset: 0,
///     data: data.clone(),
///     chunk_crc: 0x1234_5678,
///     done: true,
/// };
/// let body = raft_http::codec::encode_install_snapshot(&chunk)?;
/// let back = raft_http::codec::decode_install_snapshot(&body)?;
/// assert_eq!(back, chunk);
/// // The data points into the body: nothing was copied.
/// let inside = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
/// assert!(inside.contains(&(back.data.as_ptr() as usize)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`decode`].
pub fn decode_install_snapshot(body: &Bytes) -> Result<InstallSnapshot, DecodeError> {
    let message = open_envelope(body)?;
    let wire: WireInstallSnapshot<'_> =
        rmp_serde::from_slice(message).map_err(|e| DecodeError::Message(e.to_string()))?;
    Ok(InstallSnapshot {
        term: wire.term,
        leader_id: wire.leader_id,
        seq: wire.seq,
        meta: wire.meta,
        offset: wire.offset,
        data: share(body, wire.data),
        chunk_crc: wire.chunk_crc,
        done: wire.done,
    })
}

// The borrowed mirror of raft-core's InstallSnapshot: the same fields in the same order, so it
// reads exactly what rmp-serde writes for it (the proptest checks that against the owned decoder).

#[derive(Deserialize)]
struct WireInstallSnapshot<'a> {
    term: Term,
    leader_id: NodeId,
    seq: u64,
    meta: SnapshotMeta,
    offset: u64,
    #[serde(borrow)]
    data: &'a [u8],
    chunk_crc: u32,
    done: bool,
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use raft_core::{Entry, LogId, LogIndex, Payload};

    fn append_entries() -> AppendEntries {
        AppendEntries {
            term: Term(4),
            leader_id: NodeId(1),
            seq: 77,
            prev_log_id: LogId::new(3, 9),
            entries: vec![
                Entry {
                    log_id: LogId::new(4, 10),
                    payload: Payload::Blank,
                },
                Entry {
                    log_id: LogId::new(4, 11),
                    payload: Payload::Command(Bytes::from_static(b"x=1")),
                },
            ],
            leader_commit: LogIndex(9),
        }
    }

    #[test]
    fn append_entries_payloads_are_slices_of_the_body() {
        let body = encode_append_entries(&append_entries()).unwrap();
        let decoded = decode_append_entries(&body).unwrap();
        assert_eq!(decoded, append_entries());
        let Payload::Command(payload) = &decoded.entries[1].payload else {
            panic!("a command");
        };
        let body_range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        assert!(body_range.contains(&(payload.as_ptr() as usize)));
    }

    #[test]
    fn borrowed_and_owned_decoders_agree() {
        let body = encode(&append_entries()).unwrap();
        let owned: AppendEntries = decode(&body).unwrap();
        assert_eq!(owned, decode_append_entries(&body).unwrap());
    }

    #[test]
    fn another_version_is_refused_as_unsupported() {
        let mut body = Vec::new();
        rmp::encode::write_array_len(&mut body, 2).unwrap();
        rmp::encode::write_uint(&mut body, 2).unwrap();
        rmp_serde::encode::write(&mut body, &append_entries()).unwrap();
        let error = decode::<AppendEntries>(&body).unwrap_err();
        assert!(matches!(
            error,
            DecodeError::UnsupportedVersion { found: 2 }
        ));
        assert!(error.to_string().contains("version 2"), "{error}");
    }

    #[test]
    fn a_truncated_body_is_malformed() {
        let body = encode(&append_entries()).unwrap();
        for cut in 0..body.len() {
            assert!(
                decode_append_entries(&body.slice(..cut)).is_err(),
                "cut {cut}"
            );
        }
    }

    fn install_snapshot() -> InstallSnapshot {
        let data = Bytes::from((0..=255u8).cycle().take(3000).collect::<Vec<u8>>());
        InstallSnapshot {
            term: Term(6),
            leader_id: NodeId(2),
            seq: 41,
            meta: SnapshotMeta {
                last_log_id: LogId::new(5, 900),
                membership: raft_core::Membership::new([NodeId(1), NodeId(2), NodeId(3)]),
                size: 10_000,
                checksum: 0xdead_beef,
            },
            offset: 3000,
            chunk_crc: 0x0bad_cafe,
            data,
            done: false,
        }
    }

    #[test]
    fn install_snapshot_data_is_a_slice_of_the_body() {
        let body = encode_install_snapshot(&install_snapshot()).unwrap();
        let decoded = decode_install_snapshot(&body).unwrap();
        assert_eq!(decoded, install_snapshot());
        let body_range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        assert!(body_range.contains(&(decoded.data.as_ptr() as usize)));
        assert_eq!(decode::<InstallSnapshot>(&body).unwrap(), decoded);
        assert_eq!(encode(&install_snapshot()).unwrap(), body);
    }

    #[test]
    fn install_snapshot_is_encoded_in_one_buffer_sized_up_front() {
        let request = install_snapshot();
        let body = encode_install_snapshot(&request).unwrap();
        let capacity = 128 + request.meta.membership.len() * 9 + request.data.len();
        assert!(body.len() <= capacity, "{} > {capacity}", body.len());
    }

    #[test]
    fn a_truncated_snapshot_chunk_is_malformed() {
        let body = encode_install_snapshot(&install_snapshot()).unwrap();
        for cut in 0..body.len() {
            assert!(
                decode_install_snapshot(&body.slice(..cut)).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn share_copies_what_is_not_inside_the_body() {
        let whole = Bytes::from_static(b"abcdef");
        assert_eq!(share(&whole, &whole[2..4]), Bytes::from_static(b"cd"));
        let elsewhere = b"zz".to_vec();
        assert_eq!(share(&whole, &elsewhere), Bytes::from_static(b"zz"));
    }
}
