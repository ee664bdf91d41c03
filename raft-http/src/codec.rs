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
//! share of the `http` benchmark; the rare membership entries go through serde inside it), and
//! InstallSnapshot ([`decode_install_snapshot`]
//! does the same with the chunk's data; its meta carries the whole membership: voters, the
//! outgoing voters of a joint configuration, learners and addresses). The server collects a
//! body into one buffer, which
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
use raft_core::{Membership, NodeId, Payload, SnapshotMeta, Term};
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
    append_entries_after(request, 0).map(Bytes::from)
}

/// The length of a frame's head on an entry stream (`/raft/v1/stream`): the length of the
/// frame's body, a big-endian `u32`. The body is what [`encode`] (or
/// [`encode_append_entries`]) writes for the message.
pub const FRAME_HEAD_BYTES: usize = 4;

/// Encodes an AppendEntries as one frame of an entry stream: the head and the body that
/// [`encode_append_entries`] writes, in one buffer.
///
/// # Errors
/// As [`encode_append_entries`], and for a body over `u32::MAX` bytes.
pub fn encode_append_entries_frame(request: &AppendEntries) -> Result<Bytes, EncodeError> {
    let buffer = append_entries_after(request, FRAME_HEAD_BYTES)?;
    close_frame(buffer)
}

/// Encodes `message` as one frame of an entry stream (the head, then what [`encode`] writes).
///
/// ```
/// use raft_core::message::TimeoutNow;
/// use raft_core::{NodeId, Term};
/// use raft_http::codec::{self, FRAME_HEAD_BYTES};
///
/// let message = TimeoutNow { term: Term(3), leader_id: NodeId(1) };
/// let frame = codec::encode_frame(&message)?;
/// let (head, body) = frame.split_at(FRAME_HEAD_BYTES);
/// assert_eq!(u32::from_be_bytes(head.try_into()?) as usize, body.len());
/// assert_eq!(codec::decode::<TimeoutNow>(body)?, message);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`encode`], and for a body over `u32::MAX` bytes.
pub fn encode_frame<T: Serialize + ?Sized>(message: &T) -> Result<Bytes, EncodeError> {
    let mut buffer = Vec::with_capacity(64);
    buffer.extend_from_slice(&[0; FRAME_HEAD_BYTES]);
    write_envelope(&mut buffer)?;
    rmp_serde::encode::write(&mut buffer, message).map_err(|e| EncodeError(e.to_string()))?;
    close_frame(buffer)
}

/// Writes the frame's head (the length of what follows it) into its first bytes.
fn close_frame(mut buffer: Vec<u8>) -> Result<Bytes, EncodeError> {
    let body = buffer.len().saturating_sub(FRAME_HEAD_BYTES);
    let length = u32::try_from(body)
        .map_err(|_| EncodeError(format!("a frame of {body} bytes is over 4 GiB")))?;
    if let Some(head) = buffer.get_mut(..FRAME_HEAD_BYTES) {
        head.copy_from_slice(&length.to_be_bytes());
    }
    Ok(Bytes::from(buffer))
}

/// An AppendEntries encoded after `reserved` zero bytes, in a buffer sized for it.
fn append_entries_after(request: &AppendEntries, reserved: usize) -> Result<Vec<u8>, EncodeError> {
    let payload_bytes: usize = request
        .entries
        .iter()
        .map(|e| match &e.payload {
            Payload::Membership(membership) => membership_bound(membership),
            other => usize::try_from(other.len()).unwrap_or(usize::MAX),
        })
        .fold(0, usize::saturating_add);
    // Per entry: the array and enum headers, two u64s and a bin header, at most ~32 bytes.
    let capacity = (64 + reserved + request.entries.len() * 32).saturating_add(payload_bytes);
    let mut buffer = Vec::with_capacity(capacity);
    buffer.resize(reserved, 0);
    write_envelope(&mut buffer)?;
    append::write(&mut buffer, request)?;
    Ok(buffer)
}

/// Encodes an InstallSnapshot chunk into one buffer sized for its data up front.
///
/// # Errors
/// [`EncodeError`] if serde refuses the value.
pub fn encode_install_snapshot(request: &InstallSnapshot) -> Result<Bytes, EncodeError> {
    // The fixed fields and the meta without its membership take under 128 bytes.
    let capacity = 128 + membership_bound(&request.meta.membership) + request.data.len();
    encode_with_capacity(request, capacity)
}

/// At most the bytes rmp-serde writes for `membership`: a 4-array; three id lists (array
/// header up to 5 bytes, up to 9 per id; the outgoing one may be a 1-byte nil instead); the
/// address map (header up to 5 bytes, per address an id and a string header, up to 14 bytes,
/// and the string).
fn membership_bound(membership: &Membership) -> usize {
    let ids = membership.voters().count()
        + membership.outgoing_voters().count()
        + membership.learners().count();
    let addresses: usize = membership
        .addresses()
        .values()
        .map(|address| 14 + address.len())
        .sum();
    1 + 4 * 5 + 9 * ids + addresses
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
    use raft_core::{Entry, LogId, LogIndex, MembershipChange};

    /// A joint configuration with a learner and addresses: every part of a membership.
    fn joint() -> Membership {
        Membership::new([NodeId(1), NodeId(2), NodeId(3)])
            .with_address(NodeId(1), "10.0.0.1:7000")
            .apply(&MembershipChange::add_learner(NodeId(4), "10.0.0.4:7000"))
            .unwrap()
            .apply(&MembershipChange::add_learner(NodeId(5), "10.0.0.5:7000"))
            .unwrap()
            .apply(
                &MembershipChange::default()
                    .promote(NodeId(4))
                    .remove(NodeId(3)),
            )
            .unwrap()
    }

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
                Entry {
                    log_id: LogId::new(4, 12),
                    payload: Payload::Membership(joint()),
                },
                Entry {
                    log_id: LogId::new(4, 13),
                    payload: Payload::Membership(joint().leave_joint()),
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
        assert_eq!(encode_append_entries(&append_entries()).unwrap(), body);
    }

    #[test]
    fn membership_entries_round_trip_with_learners_joint_voters_and_addresses() {
        let body = encode_append_entries(&append_entries()).unwrap();
        let decoded = decode_append_entries(&body).unwrap();
        let Payload::Membership(membership) = &decoded.entries[2].payload else {
            panic!("a membership");
        };
        assert_eq!(membership, &joint());
        assert!(membership.is_joint() && membership.is_learner(NodeId(5)));
        assert_eq!(membership.address(NodeId(4)), Some("10.0.0.4:7000"));
        assert_eq!(decoded, append_entries());
        let capacity = 64 + 4 * 32 + 3 + 2 * membership_bound(&joint());
        assert!(body.len() <= capacity, "{} > {capacity}", body.len());
    }

    #[test]
    fn a_damaged_membership_is_a_malformed_message() {
        let request = AppendEntries {
            entries: vec![Entry {
                log_id: LogId::new(4, 10),
                payload: Payload::Membership(joint()),
            }],
            ..append_entries()
        };
        let body = encode_append_entries(&request).unwrap().to_vec();
        let at = body
            .windows(b"Membership".len())
            .position(|w| w == b"Membership")
            .unwrap()
            + b"Membership".len();
        // Its 4-array becomes a string or nil: refused, naming the membership.
        for marker in [0xa1, 0xc0] {
            let mut damaged = body.clone();
            damaged[at] = marker;
            let error = decode_append_entries(&Bytes::from(damaged)).unwrap_err();
            assert!(
                matches!(&error, DecodeError::Message(m) if m.contains("membership")),
                "{error}"
            );
        }
        // A 3-array or a map: the rest no longer parses; refused by both decoders alike.
        for marker in [0x93, 0x81] {
            let mut damaged = body.clone();
            damaged[at] = marker;
            assert!(decode::<AppendEntries>(&damaged).is_err());
            let error = decode_append_entries(&Bytes::from(damaged)).unwrap_err();
            assert!(matches!(error, DecodeError::Message(_)), "{error}");
        }
        // An id that is not a number.
        let mut damaged = body.clone();
        damaged[at + 2] = 0xa1;
        assert!(matches!(
            decode_append_entries(&Bytes::from(damaged)),
            Err(DecodeError::Message(_))
        ));
    }

    #[test]
    fn the_previous_version_is_refused_as_unsupported() {
        let mut body = Vec::new();
        rmp::encode::write_array_len(&mut body, 2).unwrap();
        rmp::encode::write_uint(&mut body, 1).unwrap();
        rmp_serde::encode::write(&mut body, &append_entries()).unwrap();
        let error = decode::<AppendEntries>(&body).unwrap_err();
        assert!(matches!(
            error,
            DecodeError::UnsupportedVersion { found: 1 }
        ));
        assert!(
            error.to_string().contains("version 1") && error.to_string().contains("version 2"),
            "{error}"
        );
        assert!(decode_append_entries(&Bytes::from(body)).is_err());
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
                membership: joint(),
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
        // The whole membership travels: joint voters, learners, addresses.
        assert_eq!(decoded.meta.membership, joint());
        let body_range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        assert!(body_range.contains(&(decoded.data.as_ptr() as usize)));
        assert_eq!(decode::<InstallSnapshot>(&body).unwrap(), decoded);
        assert_eq!(encode(&install_snapshot()).unwrap(), body);
    }

    #[test]
    fn install_snapshot_is_encoded_in_one_buffer_sized_up_front() {
        let request = install_snapshot();
        let body = encode_install_snapshot(&request).unwrap();
        let capacity = 128 + membership_bound(&request.meta.membership) + request.data.len();
        assert!(body.len() <= capacity, "{} > {capacity}", body.len());
        // The bound holds for the largest ids and a simple configuration too.
        let mut big = request.clone();
        big.meta.membership = Membership::new([NodeId(u64::MAX), NodeId(u64::MAX - 1)])
            .with_address(NodeId(u64::MAX), "x".repeat(300));
        let body = encode_install_snapshot(&big).unwrap();
        let capacity = 128 + membership_bound(&big.meta.membership) + big.data.len();
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
