//! The replicated map's contents — each key's value and version — and how a command changes
//! them. Everything here is deterministic: every replica applying the same entry at the same
//! index reaches the same map and the same answer.

use bytes::Bytes;

use crate::answer::{BatchAnswer, OpResult};
use crate::command::{BatchOps, Condition, KvCommand, KvOp, OpKind};
pub(crate) use crate::shards::{Map, Versioned};

/// The messages of an incr that is not applied.
const NOT_AN_INTEGER: &str = "the value is not a decimal integer";
const OVERFLOW: &str = "the value would overflow";

/// Applies the command payload of the entry at `index`; the answer for its proposer, or what
/// is malformed in it (then nothing was applied). A batch is applied from the payload in place.
pub(crate) fn apply_payload(map: &mut Map, index: u64, payload: &Bytes) -> Result<Bytes, String> {
    let Some(ops) = BatchOps::of(payload) else {
        return KvCommand::decode(payload).map(|command| apply(map, index, &command));
    };
    let ops = ops?;
    // Checked whole first: a malformed batch applies nothing.
    let count = ops
        .clone()
        .try_fold(0usize, |count, op| op.map(|_| count + 1))?;
    let mut answer = BatchAnswer::with_capacity(count);
    for op in ops.flatten() {
        answer.push(&apply_op(
            map,
            index,
            op.kind,
            op.key,
            op.value,
            op.condition,
        ));
    }
    Ok(answer.finish())
}

/// Applies the command of the entry at `index`; the answer for its proposer.
pub(crate) fn apply(map: &mut Map, index: u64, command: &KvCommand) -> Bytes {
    match command {
        KvCommand::Put { key, value } => {
            put(map, key, value, index);
            Bytes::new()
        }
        KvCommand::Delete { key } => {
            apply_op(map, index, OpKind::Delete, key, &[], Condition::Always).encode()
        }
        KvCommand::Incr { key } => {
            apply_op(map, index, OpKind::Incr, key, &[], Condition::Always).encode()
        }
        KvCommand::Conditional(op) => apply_kv_op(map, index, op).encode(),
        KvCommand::Batch(ops) => {
            let mut answer = BatchAnswer::with_capacity(ops.len());
            for op in ops {
                answer.push(&apply_kv_op(map, index, op));
            }
            answer.finish()
        }
    }
}

fn apply_kv_op(map: &mut Map, index: u64, op: &KvOp) -> OpResult {
    apply_op(map, index, op.kind, &op.key, &op.value, op.condition)
}

/// Applies one operation if its condition holds.
fn apply_op(
    map: &mut Map,
    index: u64,
    kind: OpKind,
    key: &[u8],
    value: &[u8],
    condition: Condition,
) -> OpResult {
    let current = match condition {
        // An unconditional put never needs the current entry: one walk of the tree, not two.
        Condition::Always if kind == OpKind::Put => None,
        _ => map.get(key),
    };
    let holds = match condition {
        Condition::Always => true,
        Condition::IfVersion(version) => current.is_some_and(|c| c.version == version),
        Condition::IfAbsent => current.is_none(),
    };
    if !holds {
        return OpResult::PreconditionFailed(current.map(|c| c.version));
    }
    match kind {
        OpKind::Put => {
            put(map, key, value, index);
            OpResult::Applied
        }
        OpKind::Delete => match map.remove(key) {
            Some(_) => OpResult::Applied,
            None => OpResult::Absent,
        },
        OpKind::Incr => {
            let counted = match current {
                None => Ok(0),
                Some(entry) => std::str::from_utf8(&entry.value)
                    .ok()
                    .and_then(|text| text.trim().parse::<i64>().ok())
                    .ok_or(NOT_AN_INTEGER),
            };
            match counted.and_then(|n| n.checked_add(1).ok_or(OVERFLOW)) {
                Ok(next) => {
                    put(map, key, next.to_string().as_bytes(), index);
                    OpResult::Incremented(next)
                }
                Err(reason) => OpResult::Refused(reason.to_owned()),
            }
        }
    }
}

fn put(map: &mut Map, key: &[u8], value: &[u8], index: u64) {
    // Keys and values are copied out of the entry: a slice would keep the whole received batch
    // (or log segment) it came in alive as long as the key lives.
    map.set(
        key,
        Versioned {
            value: Bytes::copy_from_slice(value),
            version: index,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(map: &Map, key: &str) -> Option<u64> {
        map.get(key.as_bytes()).map(|entry| entry.version)
    }

    fn single(map: &mut Map, index: u64, op: KvOp) -> OpResult {
        OpResult::decode(&apply(map, index, &KvCommand::Conditional(op))).unwrap()
    }

    #[test]
    fn writes_record_their_index_as_the_version() {
        let mut map = Map::new();
        let put = KvCommand::Put {
            key: Bytes::from_static(b"a"),
            value: Bytes::from_static(b"1"),
        };
        apply(&mut map, 3, &put);
        assert_eq!(version(&map, "a"), Some(3));
        apply(
            &mut map,
            5,
            &KvCommand::Incr {
                key: Bytes::from_static(b"n"),
            },
        );
        assert_eq!(version(&map, "n"), Some(5));
        apply(&mut map, 6, &put);
        assert_eq!(version(&map, "a"), Some(6));
        let delete = KvCommand::Delete {
            key: Bytes::from_static(b"a"),
        };
        assert_eq!(
            OpResult::decode(&apply(&mut map, 7, &delete)),
            Ok(OpResult::Applied)
        );
        assert_eq!(
            OpResult::decode(&apply(&mut map, 8, &delete)),
            Ok(OpResult::Absent)
        );
    }

    #[test]
    fn if_match_applies_only_at_that_version() {
        let mut map = Map::new();
        let cas = |version| KvOp::new(OpKind::Put, "k", "new", Condition::IfVersion(version));
        assert_eq!(
            single(&mut map, 1, cas(1)),
            OpResult::PreconditionFailed(None)
        );
        assert_eq!(
            single(
                &mut map,
                2,
                KvOp::new(OpKind::Put, "k", "v", Condition::Always)
            ),
            OpResult::Applied
        );
        assert_eq!(
            single(&mut map, 3, cas(1)),
            OpResult::PreconditionFailed(Some(2))
        );
        assert_eq!(
            map.get(&b"k"[..]).map(|e| e.value.clone()),
            Some(Bytes::from_static(b"v"))
        );
        assert_eq!(single(&mut map, 4, cas(2)), OpResult::Applied);
        assert_eq!(version(&map, "k"), Some(4));
        let delete = KvOp::new(OpKind::Delete, "k", "", Condition::IfVersion(2));
        assert_eq!(
            single(&mut map, 5, delete),
            OpResult::PreconditionFailed(Some(4))
        );
        let incr = KvOp::new(OpKind::Incr, "k", "", Condition::IfVersion(4));
        assert!(matches!(single(&mut map, 6, incr), OpResult::Refused(_)));
        let delete = KvOp::new(OpKind::Delete, "k", "", Condition::IfVersion(4));
        assert_eq!(single(&mut map, 7, delete), OpResult::Applied);
        assert!(map.is_empty());
    }

    #[test]
    fn if_none_match_creates_only() {
        let mut map = Map::new();
        let create = || KvOp::new(OpKind::Put, "k", "v", Condition::IfAbsent);
        assert_eq!(single(&mut map, 1, create()), OpResult::Applied);
        assert_eq!(
            single(&mut map, 2, create()),
            OpResult::PreconditionFailed(Some(1))
        );
        assert_eq!(version(&map, "k"), Some(1));
    }

    #[test]
    fn batch_ops_apply_in_order_each_on_its_own() {
        let mut map = Map::new();
        let batch = KvCommand::Batch(vec![
            KvOp::new(OpKind::Put, "a", "text", Condition::Always),
            KvOp::new(OpKind::Delete, "b", "", Condition::IfVersion(12)),
            KvOp::new(OpKind::Put, "a", "again", Condition::IfAbsent),
            KvOp::new(OpKind::Incr, "n", "", Condition::Always),
            KvOp::new(OpKind::Incr, "a", "", Condition::Always),
            KvOp::new(OpKind::Delete, "missing", "", Condition::Always),
            KvOp::new(OpKind::Put, "c", "x", Condition::IfVersion(9)),
        ]);
        let results = BatchAnswer::decode(&apply(&mut map, 9, &batch)).unwrap();
        assert_eq!(
            results,
            vec![
                OpResult::Applied,
                OpResult::PreconditionFailed(None),
                OpResult::PreconditionFailed(Some(9)),
                OpResult::Incremented(1),
                OpResult::Refused(NOT_AN_INTEGER.to_owned()),
                OpResult::Absent,
                OpResult::PreconditionFailed(None),
            ]
        );
        assert_eq!(
            map.get(&b"a"[..]).map(|e| e.value.clone()),
            Some(Bytes::from_static(b"text"))
        );
        assert_eq!(version(&map, "n"), Some(9));
    }

    fn mixed_batch() -> KvCommand {
        KvCommand::Batch(vec![
            KvOp::new(OpKind::Put, "a", "text", Condition::Always),
            KvOp::new(OpKind::Incr, "n", "", Condition::Always),
            KvOp::new(OpKind::Put, "a", "again", Condition::IfAbsent),
            KvOp::new(OpKind::Delete, "b", "", Condition::Always),
            KvOp::new(OpKind::Incr, "a", "", Condition::Always),
        ])
    }

    #[test]
    fn a_batch_payload_applies_in_place_as_its_decoded_command_does() {
        let batch = mixed_batch();
        let mut in_place = Map::new();
        let mut decoded = Map::new();
        in_place.set(
            b"b",
            Versioned {
                value: Bytes::new(),
                version: 1,
            },
        );
        decoded.set(
            b"b",
            Versioned {
                value: Bytes::new(),
                version: 1,
            },
        );
        assert_eq!(
            apply_payload(&mut in_place, 4, &batch.encode()),
            Ok(apply(&mut decoded, 4, &batch))
        );
        assert_eq!(in_place, decoded);
        assert_eq!(version(&in_place, "n"), Some(4));
        let single = KvCommand::Incr {
            key: Bytes::from_static(b"n"),
        };
        assert_eq!(
            apply_payload(&mut in_place, 5, &single.encode()),
            Ok(apply(&mut decoded, 5, &single))
        );
        assert_eq!(in_place, decoded);
    }

    #[test]
    fn a_malformed_batch_applies_nothing() {
        let encoded = mixed_batch().encode();
        // One operation more announced than held; then one cut in its last field.
        let mut announced = encoded.to_vec();
        announced[4] += 1;
        let cut = encoded.slice(..encoded.len() - 1);
        for payload in [Bytes::from(announced), cut, Bytes::from_static(&[0x05, 0])] {
            let mut map = Map::new();
            assert!(apply_payload(&mut map, 3, &payload).is_err(), "{payload:?}");
            assert!(map.is_empty());
        }
    }
}
