//! Tests of the record format and the scanner.
#![allow(clippy::indexing_slicing)] // tests index their own fixtures

use std::path::PathBuf;

use bytes::BufMut;

use super::*;

fn entry(term: u64, index: u64, payload: &str) -> Entry {
    Entry {
        log_id: LogId::new(term, index),
        payload: if payload.is_empty() {
            Payload::Blank
        } else {
            Payload::Command(Bytes::from(payload.to_owned()))
        },
    }
}

fn segment(entries: &[Entry]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    for entry in entries {
        offsets.push(out.len());
        encode(entry, &mut out).unwrap();
    }
    (out, offsets)
}

fn file() -> PathBuf {
    PathBuf::from("00000000000000000001.seg")
}

/// A joint configuration with a learner and addresses: every part of the encoding.
fn joint() -> Membership {
    use raft_core::{MembershipChange, NodeId};
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

fn membership_entry(term: u64, index: u64, membership: Membership) -> Entry {
    Entry {
        log_id: LogId::new(term, index),
        payload: Payload::Membership(membership),
    }
}

/// Blank, command and membership entries (entry 4 is a membership).
fn sample() -> Vec<Entry> {
    (1..=6)
        .map(|i| match i {
            1 => entry(1, i, ""),
            4 => membership_entry(1 + i / 3, i, joint()),
            _ => entry(1 + i / 3, i, "payload-bytes"),
        })
        .collect()
}

/// A record written by hand: any kind, flags and payload, with valid checksums.
fn raw_record(kind: u8, flags: u8, log_id: LogId, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_u16_le(MAGIC);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32_le(payload.len() as u32);
    out.put_u64_le(log_id.term.0);
    out.put_u64_le(log_id.index.0);
    out.put_u32_le(crc32c::crc32c(payload));
    let header_crc = crc32c::crc32c(&out);
    out.put_u32_le(header_crc);
    out.put_slice(payload);
    out
}

/// Two good records, then `last` (entry 3), then zeros: `last` is where a torn tail would be.
fn segment_ending_with(last: Vec<u8>) -> (Bytes, usize) {
    let (mut bytes, _) = segment(&[entry(1, 1, "a"), entry(1, 2, "b")]);
    let at = bytes.len();
    bytes.extend(last);
    bytes.extend([0; 512]);
    (Bytes::from(bytes), at)
}

fn assert_corrupt(result: Result<impl std::fmt::Debug, Error>, at: usize, reason: &str) {
    match result {
        Err(Error::Corrupt {
            offset,
            reason: found,
            ..
        }) => {
            assert_eq!(offset as usize, at, "{found}");
            assert!(found.contains(reason), "{found:?} should say {reason:?}");
        }
        other => panic!("expected corruption ({reason}) at {at}, got {other:?}"),
    }
}

#[test]
fn membership_records_round_trip_through_the_scanner_and_the_strict_decoder() {
    let entries = sample();
    let (bytes, offsets) = segment(&entries);
    assert_eq!(
        offsets[4] - offsets[3],
        encoded_len(&entries[3]),
        "encoded_len counts the membership's bytes"
    );
    let data = Bytes::from(bytes);
    let scanned: Vec<Entry> = scan(&data, &file())
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.entry)
        .collect();
    assert_eq!(scanned, entries);
    assert_eq!(
        decode_exact(&data, &file(), 0, LogIndex(1)).unwrap(),
        entries
    );
    let Payload::Membership(back) = &scanned[3].payload else {
        panic!("a membership entry");
    };
    assert!(back.is_joint() && back.is_learner(raft_core::NodeId(5)));
    assert_eq!(back.address(raft_core::NodeId(4)), Some("10.0.0.4:7000"));
}

#[test]
fn a_membership_record_that_does_not_decode_is_corruption_even_at_the_tail() {
    let mut damaged = joint().to_bytes();
    damaged.truncate(damaged.len() - 3);
    for payload in [damaged, vec![9, 9, 9], b"\x01\x00".to_vec()] {
        let (data, at) =
            segment_ending_with(raw_record(KIND_MEMBERSHIP, 0, LogId::new(1, 3), &payload));
        assert_corrupt(
            scan(&data, &file()),
            at,
            "membership record does not decode",
        );
        let exact = data.slice(..data.len() - 512);
        assert_corrupt(
            decode_exact(&exact, &file(), 0, LogIndex(1)),
            at,
            "membership record does not decode",
        );
    }
    let (data, at) = segment_ending_with(raw_record(KIND_MEMBERSHIP, 0, LogId::new(1, 3), &[]));
    assert_corrupt(scan(&data, &file()), at, "empty payload");
}

#[test]
fn an_unknown_record_kind_is_corruption_not_a_blank_entry_nor_a_torn_tail() {
    for payload in [&b""[..], b"some bytes"] {
        let (data, at) = segment_ending_with(raw_record(7, 0, LogId::new(1, 3), payload));
        assert_corrupt(scan(&data, &file()), at, "unknown record kind 7");
        let exact = data.slice(..data.len() - 512);
        assert_corrupt(
            decode_exact(&exact, &file(), 0, LogIndex(1)),
            at,
            "unknown record kind 7",
        );
    }
    // Its payload torn too: still refused (the intact header says what was written).
    let mut torn = raw_record(7, 0, LogId::new(1, 3), b"some bytes");
    torn.truncate(torn.len() - 2);
    let (data, at) = segment_ending_with(torn);
    assert_corrupt(scan(&data, &file()), at, "unknown record kind 7");
}

#[test]
fn checksummed_headers_this_version_never_writes_are_corruption() {
    let id = LogId::new(1, 3);
    let cases = [
        (
            raw_record(KIND_COMMAND, 1, id, b"x"),
            "unknown record flags",
        ),
        (
            raw_record(KIND_BLANK, 0, id, b"x"),
            "a blank entry with a payload",
        ),
    ];
    for (record, reason) in cases {
        let (data, at) = segment_ending_with(record);
        assert_corrupt(scan(&data, &file()), at, reason);
    }
}

#[test]
fn damage_followed_by_a_record_of_an_unknown_kind_is_corruption() {
    // A torn record 3, then a whole record 4 of an unknown kind: synced data was damaged.
    let mut torn = Vec::new();
    encode(&entry(1, 3, "torn payload"), &mut torn).unwrap();
    let len = torn.len();
    torn[len - 1] ^= 0xff;
    torn.extend(raw_record(9, 0, LogId::new(1, 4), b"later"));
    let (data, at) = segment_ending_with(torn);
    assert_corrupt(scan(&data, &file()), at, "a valid record follows");
}

#[test]
fn a_torn_record_whose_payload_holds_a_valid_record_is_a_tail() {
    let mut inner = Vec::new();
    encode(&entry(1, 3, "inner"), &mut inner).unwrap();
    let mut data = Vec::new();
    encode(&entry(1, 1, "a"), &mut data).unwrap();
    let outer = Entry {
        log_id: LogId::new(1, 2),
        payload: Payload::Command(Bytes::from([vec![7u8; 10], inner, vec![9u8; 10]].concat())),
    };
    encode(&outer, &mut data).unwrap();
    // Torn inside the outer payload, after the record it carries.
    let torn = Bytes::from(data[..data.len() - 5].to_vec());
    let scan = scan(&torn, Path::new("seg")).unwrap();
    assert_eq!(scan.records.len(), 1);
    assert!(matches!(scan.tail, Tail::Torn { .. }));
}

#[test]
fn records_round_trip_with_a_zero_filled_tail() {
    let entries = sample();
    let (mut bytes, _) = segment(&entries);
    let len = bytes.len() as u64;
    bytes.extend_from_slice(&[0; 4096]);
    let scan = scan(&Bytes::from(bytes), &file()).unwrap();
    let decoded: Vec<Entry> = scan.records.into_iter().map(|r| r.entry).collect();
    assert_eq!(decoded, entries);
    assert_eq!(scan.valid_len, len);
    assert_eq!(scan.tail, Tail::Clean);
}

/// Cutting the file at any byte of its last records keeps exactly the whole records before
/// the cut: a torn tail, never an error, never a partial record.
#[test]
fn truncation_at_every_offset_keeps_exactly_the_whole_records_before_it() {
    let entries = sample();
    let (bytes, offsets) = segment(&entries);
    let from = offsets.get(3).copied().unwrap();
    for cut in from..=bytes.len() {
        let data = Bytes::copy_from_slice(&bytes[..cut]);
        let scan = scan(&data, &file()).unwrap();
        let ends: Vec<usize> = offsets
            .iter()
            .skip(1)
            .copied()
            .chain([bytes.len()])
            .collect();
        let whole = ends.iter().filter(|&&end| end <= cut).count();
        let expected_len = if whole == 0 { 0 } else { ends[whole - 1] };
        assert_eq!(scan.records.len(), whole, "cut at {cut}");
        assert_eq!(scan.valid_len as usize, expected_len, "cut at {cut}");
        assert_eq!(
            scan.tail == Tail::Clean,
            cut == expected_len,
            "cut at {cut}"
        );
    }
}

/// Every single-bit flip anywhere is either a torn tail that keeps a prefix of the records
/// (damage in the last record) or refused as corruption naming the damaged record; no flip
/// ever yields a different entry.
#[test]
fn every_bit_flip_is_detected_and_never_returns_altered_entries() {
    let entries = sample();
    let (bytes, offsets) = segment(&entries);
    let last = *offsets.last().unwrap();
    for position in 0..bytes.len() {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[position] ^= 1 << bit;
            let record = offsets.iter().rposition(|&o| o <= position).unwrap();
            match scan(&Bytes::from(damaged), &file()) {
                Ok(scan) => {
                    assert!(position >= last, "flip at {position} taken for a torn tail");
                    assert_eq!(
                        scan.tail,
                        Tail::Torn {
                            offset: last as u64
                        }
                    );
                    let decoded: Vec<Entry> = scan.records.into_iter().map(|r| r.entry).collect();
                    assert_eq!(decoded, entries[..record]);
                }
                Err(Error::Corrupt { offset, .. }) => {
                    assert_eq!(offset as usize, offsets[record], "flip at {position}");
                }
                Err(other) => panic!("unexpected {other}"),
            }
        }
    }
}

#[test]
fn garbage_after_the_records_is_a_torn_tail() {
    let (mut bytes, _) = segment(&sample());
    let len = bytes.len() as u64;
    bytes.extend((0..3000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let scan = scan(&Bytes::from(bytes), &file()).unwrap();
    assert_eq!(scan.records.len(), 6);
    assert_eq!(scan.tail, Tail::Torn { offset: len });
}

#[test]
fn out_of_order_indexes_are_refused() {
    let (bytes, offsets) = segment(&[entry(1, 1, "a"), entry(1, 3, "b")]);
    let err = scan(&Bytes::from(bytes), &file()).unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { offset, .. } if offset as usize == offsets[1]),
        "{err}"
    );
    assert!(err.to_string().contains("00000000000000000001.seg"));
}

#[test]
fn oversized_payload_is_refused_at_encode() {
    let big = Entry {
        log_id: LogId::new(1, 1),
        payload: Payload::Command(Bytes::from(vec![0; MAX_PAYLOAD_BYTES + 1])),
    };
    assert!(matches!(
        encode(&big, &mut Vec::new()),
        Err(Error::TooLarge { .. })
    ));
}
