//! The body decoders never panic on any input, and every message survives encode → decode:
//! AppendEntries and InstallSnapshot through both their zero-copy and their owned decoders.
//! Payloads include memberships (voters, optional outgoing voters, learners, addresses), and
//! snapshot metas carry whole memberships.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{BufMut, Bytes};
use proptest::prelude::*;
use raft_core::message::{
    AppendEntries, AppendEntriesResponse, AppendOutcome, ConflictHint, InstallSnapshot,
    InstallSnapshotResponse, RequestVote, RequestVoteResponse, SnapshotOutcome, TimeoutNow,
};
use raft_core::{Entry, LogId, LogIndex, Membership, NodeId, Payload, SnapshotMeta, Term};
use raft_http::codec::{self, DecodeError};

fn log_id() -> impl Strategy<Value = LogId> {
    (any::<u64>(), any::<u64>()).prop_map(|(term, index)| LogId::new(term, index))
}

/// A membership with the given parts, built through its stable binary form (the only way to
/// set outgoing voters and learners freely: the public API makes them by valid changes only).
#[allow(clippy::unwrap_used)] // a helper outside #[test] fns
fn membership_of(
    voters: &BTreeSet<u64>,
    outgoing: Option<&BTreeSet<u64>>,
    learners: &BTreeSet<u64>,
    addresses: &BTreeMap<u64, String>,
) -> Membership {
    fn ids(out: &mut Vec<u8>, ids: &BTreeSet<u64>) {
        out.put_u32_le(ids.len() as u32);
        for &id in ids {
            out.put_u64_le(id);
        }
    }
    let mut bytes = vec![1, u8::from(outgoing.is_some())];
    ids(&mut bytes, voters);
    ids(&mut bytes, outgoing.unwrap_or(&BTreeSet::new()));
    ids(&mut bytes, learners);
    bytes.put_u32_le(addresses.len() as u32);
    for (&id, address) in addresses {
        bytes.put_u64_le(id);
        bytes.put_u32_le(address.len() as u32);
        bytes.put_slice(address.as_bytes());
    }
    Membership::decode(&bytes).unwrap()
}

/// Memberships of every shape: ids of every size class, joint or not, learners, addresses
/// (empty, ASCII, any Unicode).
fn membership() -> impl Strategy<Value = Membership> {
    fn set(min: usize, max: usize) -> impl Strategy<Value = BTreeSet<u64>> {
        proptest::collection::btree_set(prop_oneof![0u64..8, any::<u64>()], min..max)
    }
    (
        set(0, 6),
        // A joint configuration has two non-empty voter sets (others are refused as damage).
        proptest::option::of(set(1, 6)),
        set(0, 4),
        proptest::collection::btree_map(0u64..12, ".{0,24}", 0..5),
    )
        .prop_map(|(mut voters, outgoing, learners, addresses)| {
            if outgoing.is_some() && voters.is_empty() {
                voters.insert(1);
            }
            let m = membership_of(&voters, outgoing.as_ref(), &learners, &addresses);
            assert_eq!(m.is_joint(), outgoing.is_some());
            m
        })
}

fn entry() -> impl Strategy<Value = Entry> {
    // Commands of every bin length class: bin8 mostly, bin16 and bin32 sometimes.
    let payload = prop_oneof![
        3 => Just(Payload::Blank),
        6 => proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|bytes| Payload::Command(Bytes::from(bytes))),
        1 => (0usize..70_000, any::<u8>())
            .prop_map(|(len, byte)| Payload::Command(Bytes::from(vec![byte; len]))),
        2 => membership().prop_map(Payload::Membership),
    ];
    (log_id(), payload).prop_map(|(log_id, payload)| Entry { log_id, payload })
}

fn append_entries() -> impl Strategy<Value = AppendEntries> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        log_id(),
        proptest::collection::vec(entry(), 0..8),
        any::<u64>(),
    )
        .prop_map(
            |(term, leader, seq, prev_log_id, entries, commit)| AppendEntries {
                term: Term(term),
                leader_id: NodeId(leader),
                seq,
                prev_log_id,
                entries,
                leader_commit: LogIndex(commit),
            },
        )
}

fn append_response() -> impl Strategy<Value = AppendEntriesResponse> {
    let outcome = prop_oneof![
        any::<u64>().prop_map(|i| AppendOutcome::Success {
            match_index: LogIndex(i)
        }),
        (proptest::option::of(any::<u64>()), any::<u64>()).prop_map(|(term, index)| {
            AppendOutcome::Conflict {
                hint: ConflictHint {
                    term: term.map(Term),
                    index: LogIndex(index),
                },
            }
        }),
        Just(AppendOutcome::StaleTerm),
    ];
    (any::<u64>(), any::<u64>(), outcome).prop_map(|(term, seq, outcome)| AppendEntriesResponse {
        term: Term(term),
        seq,
        outcome,
    })
}

fn request_vote() -> impl Strategy<Value = RequestVote> {
    (
        any::<u64>(),
        any::<u64>(),
        log_id(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(term, candidate, last_log_id, pre_vote, transfer)| RequestVote {
                term: Term(term),
                candidate_id: NodeId(candidate),
                last_log_id,
                pre_vote,
                leadership_transfer: transfer,
            },
        )
}

fn snapshot_meta() -> impl Strategy<Value = SnapshotMeta> {
    (log_id(), membership(), any::<u64>(), any::<u32>()).prop_map(
        |(last_log_id, membership, size, checksum)| SnapshotMeta {
            last_log_id,
            membership,
            size,
            checksum,
        },
    )
}

fn install_snapshot() -> impl Strategy<Value = InstallSnapshot> {
    (
        (any::<u64>(), any::<u64>(), any::<u64>()),
        snapshot_meta(),
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..512),
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(
            |((term, leader, seq), meta, offset, data, chunk_crc, done)| InstallSnapshot {
                term: Term(term),
                leader_id: NodeId(leader),
                seq,
                meta,
                offset,
                data: Bytes::from(data),
                chunk_crc,
                done,
            },
        )
}

fn install_snapshot_response() -> impl Strategy<Value = InstallSnapshotResponse> {
    let outcome = prop_oneof![
        any::<u64>().prop_map(|offset| SnapshotOutcome::Continue { offset }),
        Just(SnapshotOutcome::Installed),
        any::<u64>().prop_map(|i| SnapshotOutcome::Covered {
            commit_index: LogIndex(i)
        }),
        Just(SnapshotOutcome::StaleTerm),
    ];
    (any::<u64>(), any::<u64>(), outcome).prop_map(|(term, seq, outcome)| InstallSnapshotResponse {
        term: Term(term),
        seq,
        outcome,
    })
}

/// Runs every decoder on `bytes`; the test fails only if one panics.
fn decode_everything(bytes: &[u8]) {
    let owned = Bytes::copy_from_slice(bytes);
    let _ = codec::decode_append_entries(&owned);
    let _ = codec::decode_install_snapshot(&owned);
    let _ = codec::decode::<InstallSnapshot>(bytes);
    let _ = codec::decode::<InstallSnapshotResponse>(bytes);
    let _ = codec::decode::<AppendEntries>(bytes);
    let _ = codec::decode::<AppendEntriesResponse>(bytes);
    let _ = codec::decode::<RequestVote>(bytes);
    let _ = codec::decode::<RequestVoteResponse>(bytes);
    let _ = codec::decode::<TimeoutNow>(bytes);
    let _ = codec::decode::<()>(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn random_bytes_inside_a_valid_envelope_never_panic_the_decoders(
        bytes in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        // [2-array, the current version] then junk: reaches the message decoder every time.
        let mut body = vec![0x92, codec::WIRE_VERSION as u8];
        body.extend_from_slice(&bytes);
        decode_everything(&body);
    }

    #[test]
    fn corrupted_messages_never_panic_the_decoders(
        request in append_entries(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut body = codec::encode_append_entries(&request).unwrap().to_vec();
        for (at, value) in flips {
            let i = at.index(body.len());
            body[i] = value;
        }
        decode_everything(&body);
        // Whatever the hand-written decoder accepts, serde reads the same way.
        let owned = Bytes::from(body.clone());
        if let Ok(decoded) = codec::decode_append_entries(&owned) {
            prop_assert_eq!(codec::decode::<AppendEntries>(&body).ok(), Some(decoded));
        }
        let cut = cut.index(body.len());
        decode_everything(&body[..cut]);
    }

    #[test]
    fn corrupted_snapshot_chunks_never_panic_the_decoders(
        request in install_snapshot(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let valid = codec::encode_install_snapshot(&request).unwrap();
        // Every prefix of a valid chunk is refused, never misread.
        let cut = cut.index(valid.len());
        prop_assert!(codec::decode_install_snapshot(&valid.slice(..cut)).is_err());
        let mut body = valid.to_vec();
        for (at, value) in flips {
            let i = at.index(body.len());
            body[i] = value;
        }
        decode_everything(&body);
        decode_everything(&body[..cut]);
    }

    #[test]
    fn snapshot_chunks_round_trip_through_both_decoders_without_copying(
        request in install_snapshot(),
        response in install_snapshot_response(),
    ) {
        let body = codec::encode_install_snapshot(&request).unwrap();
        let borrowed = codec::decode_install_snapshot(&body).unwrap();
        prop_assert_eq!(&borrowed, &request);
        prop_assert_eq!(&codec::decode::<InstallSnapshot>(&body).unwrap(), &request);
        prop_assert_eq!(codec::encode(&request).unwrap(), body.clone());
        if !borrowed.data.is_empty() {
            let inside = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
            prop_assert!(inside.contains(&(borrowed.data.as_ptr() as usize)));
        }
        let body = codec::encode(&response).unwrap();
        prop_assert_eq!(codec::decode::<InstallSnapshotResponse>(&body).unwrap(), response);
    }

    #[test]
    fn damaged_membership_entries_are_refused_or_read_like_serde(
        membership in membership(),
        log_id in log_id(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let request = AppendEntries {
            term: Term(1),
            leader_id: NodeId(1),
            seq: 1,
            prev_log_id: LogId::new(0, 0),
            entries: vec![Entry { log_id, payload: Payload::Membership(membership) }],
            leader_commit: LogIndex(0),
        };
        let mut body = codec::encode_append_entries(&request).unwrap().to_vec();
        // Damage only the membership: it starts after the variant name, and is followed by
        // the one-byte leader_commit.
        let name = b"Membership";
        let start = body.windows(name.len()).position(|w| w == name).unwrap() + name.len();
        let len = body.len() - 1 - start;
        for (at, value) in flips {
            body[start + at.index(len)] = value;
        }
        let owned = Bytes::from(body.clone());
        match codec::decode_append_entries(&owned) {
            Ok(decoded) => {
                prop_assert_eq!(codec::decode::<AppendEntries>(&body).ok(), Some(decoded));
            }
            Err(error) => prop_assert!(matches!(error, DecodeError::Message(_)), "{}", error),
        }
    }

    #[test]
    fn append_entries_round_trip_through_both_decoders(request in append_entries()) {
        let body = codec::encode_append_entries(&request).unwrap();
        prop_assert_eq!(&codec::decode_append_entries(&body).unwrap(), &request);
        prop_assert_eq!(&codec::decode::<AppendEntries>(&body).unwrap(), &request);
        prop_assert_eq!(codec::encode(&request).unwrap(), body);
    }

    #[test]
    fn a_blank_payload_in_map_form_is_read_like_serde(request in append_entries()) {
        // `{"Blank": nil}` is the other form rmp-serde reads for a unit variant.
        let mut body = codec::encode_append_entries(&request).unwrap().to_vec();
        let short = [0xa5, b'B', b'l', b'a', b'n', b'k'];
        if let Some(at) = body.windows(short.len()).position(|w| w == short) {
            body.splice(at..at + short.len(), [0x81, 0xa5, b'B', b'l', b'a', b'n', b'k', 0xc0]);
            let owned = Bytes::from(body.clone());
            let decoded = codec::decode_append_entries(&owned);
            let by_serde = codec::decode::<AppendEntries>(&body);
            // A payload byte sequence can look like the name: then both refuse or both agree.
            prop_assert_eq!(decoded.ok(), by_serde.ok());
        }
    }

    #[test]
    fn answers_and_votes_round_trip(
        response in append_response(),
        vote in request_vote(),
        granted in any::<bool>(),
        term in any::<u64>(),
    ) {
        let body = codec::encode(&response).unwrap();
        prop_assert_eq!(codec::decode::<AppendEntriesResponse>(&body).unwrap(), response);
        let body = codec::encode(&vote).unwrap();
        prop_assert_eq!(codec::decode::<RequestVote>(&body).unwrap(), vote.clone());
        let answer = RequestVoteResponse { term: Term(term), granted, pre_vote: vote.pre_vote };
        let body = codec::encode(&answer).unwrap();
        prop_assert_eq!(codec::decode::<RequestVoteResponse>(&body).unwrap(), answer);
        let timeout = TimeoutNow { term: Term(term), leader_id: vote.candidate_id };
        let body = codec::encode(&timeout).unwrap();
        prop_assert_eq!(codec::decode::<TimeoutNow>(&body).unwrap(), timeout);
    }

    #[test]
    fn every_other_version_is_refused(version in any::<u64>(), request in append_entries()) {
        prop_assume!(version != u64::from(codec::WIRE_VERSION));
        let mut body = Vec::new();
        rmp::encode::write_array_len(&mut body, 2).unwrap();
        rmp::encode::write_uint(&mut body, version).unwrap();
        rmp_serde::encode::write(&mut body, &request).unwrap();
        let refused = matches!(
            codec::decode::<AppendEntries>(&body),
            Err(DecodeError::UnsupportedVersion { found }) if found == version
        );
        prop_assert!(refused);
    }
}
