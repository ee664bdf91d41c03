//! [`MemKv`]: a small key-value state machine that also records what it was asked to do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::Error;
use crate::snapshot::{SnapshotReader, SnapshotSource, read_to_vec};
use crate::state_machine::StateMachine;
use crate::types::{Entry, LogIndex, Payload};

/// Snapshot data is produced in chunks of about this size.
const SNAPSHOT_CHUNK_BYTES: usize = 64 * 1024;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;

/// The result of a command that could not be decoded.
pub const MALFORMED: &[u8] = b"ERR malformed command";

/// A key-value [`StateMachine`] in memory. Commands are built with [`MemKv::put`] and
/// [`MemKv::delete`]; a put returns the previous value (empty if none), a delete the removed one.
///
/// For tests it records every call: the commands applied with their index
/// ([`applied`](MemKv::applied)), and the indexes pre-committed and rolled back, in call order.
/// Clones share the same state.
#[derive(Clone, Debug, Default)]
pub struct MemKv {
    inner: Arc<Mutex<KvState>>,
}

#[derive(Debug, Default)]
struct KvState {
    data: BTreeMap<Bytes, Bytes>,
    applied: Vec<(LogIndex, Bytes)>,
    last_applied: LogIndex,
    pre_committed: Vec<LogIndex>,
    rolled_back: Vec<LogIndex>,
    /// Commits whose index was not the next one: a runtime bug.
    out_of_order: Vec<LogIndex>,
    /// The index of every snapshot captured.
    snapshots_taken: Vec<LogIndex>,
    /// The index of every snapshot restored.
    restored_from: Vec<LogIndex>,
}

/// A decoded command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvCommand {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Bytes,
    },
}

impl KvCommand {
    /// Encodes the command: an op byte, a big-endian u32 key length, the key, then the value.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let (op, key, value) = match self {
            KvCommand::Put { key, value } => (OP_PUT, key, value.as_ref()),
            KvCommand::Delete { key } => (OP_DELETE, key, &[][..]),
        };
        let mut buf = BytesMut::with_capacity(5 + key.len() + value.len());
        buf.put_u8(op);
        buf.put_u32(u32::try_from(key.len()).unwrap_or(u32::MAX));
        buf.put_slice(key);
        buf.put_slice(value);
        buf.freeze()
    }

    /// Decodes a command; `None` if the bytes are not one.
    #[must_use]
    pub fn decode(mut bytes: Bytes) -> Option<KvCommand> {
        if bytes.remaining() < 5 {
            return None;
        }
        let op = bytes.get_u8();
        let key_len = usize::try_from(bytes.get_u32()).ok()?;
        if bytes.remaining() < key_len {
            return None;
        }
        let key = bytes.split_to(key_len);
        match op {
            OP_PUT => Some(KvCommand::Put { key, value: bytes }),
            OP_DELETE if bytes.is_empty() => Some(KvCommand::Delete { key }),
            _ => None,
        }
    }
}

impl MemKv {
    /// An empty store.
    #[must_use]
    pub fn new() -> MemKv {
        MemKv::default()
    }

    /// As a trait object for [`Node::start`](crate::runtime::Node::start).
    #[must_use]
    pub fn into_arc(self) -> Arc<dyn StateMachine> {
        Arc::new(self)
    }

    /// The command setting `key` to `value`.
    #[must_use]
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Bytes {
        let (key, value) = (key.into(), value.into());
        KvCommand::Put { key, value }.encode()
    }

    /// The command removing `key`.
    #[must_use]
    pub fn delete(key: impl Into<Bytes>) -> Bytes {
        KvCommand::Delete { key: key.into() }.encode()
    }

    /// The value of `key`.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.state().data.get(key).cloned()
    }

    /// Every command applied, with its index, in order.
    #[must_use]
    pub fn applied(&self) -> Vec<(LogIndex, Bytes)> {
        self.state().applied.clone()
    }

    /// The last index applied.
    #[must_use]
    pub fn last_applied(&self) -> LogIndex {
        self.state().last_applied
    }

    /// Every index pre-committed, in call order.
    #[must_use]
    pub fn pre_committed(&self) -> Vec<LogIndex> {
        self.state().pre_committed.clone()
    }

    /// Every index rolled back, in call order (highest first within a rollback).
    #[must_use]
    pub fn rolled_back(&self) -> Vec<LogIndex> {
        self.state().rolled_back.clone()
    }

    /// Commits that did not follow the previous one by exactly one index (must stay empty).
    #[must_use]
    pub fn out_of_order_commits(&self) -> Vec<LogIndex> {
        self.state().out_of_order.clone()
    }

    /// The index of each snapshot this state machine captured, in order.
    #[must_use]
    pub fn snapshots_taken(&self) -> Vec<LogIndex> {
        self.state().snapshots_taken.clone()
    }

    /// The index of each snapshot this state machine was restored from, in order.
    #[must_use]
    pub fn restored_from(&self) -> Vec<LogIndex> {
        self.state().restored_from.clone()
    }

    /// Every key and value, in key order.
    #[must_use]
    pub fn dump(&self) -> Vec<(Bytes, Bytes)> {
        let state = self.state();
        state
            .data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn state(&self) -> MutexGuard<'_, KvState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl KvState {
    fn apply(&mut self, entry: &Entry) -> Bytes {
        let index = entry.log_id.index;
        if index != self.last_applied.next() {
            self.out_of_order.push(index);
        }
        self.last_applied = index;
        let Payload::Command(command) = &entry.payload else {
            return Bytes::new();
        };
        self.applied.push((index, command.clone()));
        match KvCommand::decode(command.clone()) {
            Some(KvCommand::Put { key, value }) => self.data.insert(key, value).unwrap_or_default(),
            Some(KvCommand::Delete { key }) => self.data.remove(&key).unwrap_or_default(),
            None => Bytes::from_static(MALFORMED),
        }
    }
}

#[async_trait]
impl StateMachine for MemKv {
    async fn pre_commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, Error> {
        let mut state = self.state();
        state
            .pre_committed
            .extend(entries.iter().map(|e| e.log_id.index));
        // The speculative answer: the command's own bytes, known without touching the state.
        Ok(entries
            .iter()
            .map(|entry| match &entry.payload {
                Payload::Command(command) => command.clone(),
                Payload::Blank | Payload::Membership(_) => Bytes::new(),
            })
            .collect())
    }

    async fn commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, Error> {
        let mut state = self.state();
        Ok(entries.iter().map(|entry| state.apply(entry)).collect())
    }

    async fn rollback(&self, entries: &[Entry]) -> Result<(), Error> {
        let mut state = self.state();
        state
            .rolled_back
            .extend(entries.iter().map(|e| e.log_id.index));
        Ok(())
    }

    async fn snapshot(&self) -> Result<Box<dyn SnapshotSource>, Error> {
        let mut state = self.state();
        let applied = state.last_applied;
        state.snapshots_taken.push(applied);
        // Fixing the view: a clone of the map (its keys and values are shared `Bytes`). The
        // encoding happens in the source, on the runtime's snapshot task.
        let data: Vec<(Bytes, Bytes)> = state
            .data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Box::new(KvSnapshotSource {
            applied,
            header_sent: false,
            entries: data.into_iter(),
        }))
    }

    async fn restore(&self, snapshot: Arc<dyn SnapshotReader>) -> Result<(), Error> {
        let data = read_to_vec(snapshot.as_ref(), SNAPSHOT_CHUNK_BYTES).await?;
        let (applied, map) = decode_snapshot(Bytes::from(data))
            .ok_or_else(|| Error::state_machine("malformed MemKv snapshot"))?;
        let index = snapshot.meta().last_log_id.index;
        if applied != index {
            return Err(Error::state_machine(format!(
                "MemKv snapshot holds the state at {applied}, its meta says {index}"
            )));
        }
        let mut state = self.state();
        state.data = map;
        state.last_applied = index;
        state.restored_from.push(index);
        Ok(())
    }
}

/// Encodes a [`MemKv`] snapshot lazily: the applied index, then length-prefixed keys and values.
struct KvSnapshotSource {
    applied: LogIndex,
    header_sent: bool,
    entries: std::vec::IntoIter<(Bytes, Bytes)>,
}

#[async_trait]
impl SnapshotSource for KvSnapshotSource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        let mut chunk = BytesMut::new();
        if !self.header_sent {
            self.header_sent = true;
            chunk.put_u64(self.applied.0);
        }
        while chunk.len() < SNAPSHOT_CHUNK_BYTES {
            let Some((key, value)) = self.entries.next() else {
                break;
            };
            chunk.put_u32(u32::try_from(key.len()).unwrap_or(u32::MAX));
            chunk.put_slice(&key);
            chunk.put_u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
            chunk.put_slice(&value);
        }
        Ok((!chunk.is_empty()).then(|| chunk.freeze()))
    }
}

fn decode_snapshot(mut data: Bytes) -> Option<(LogIndex, BTreeMap<Bytes, Bytes>)> {
    if data.remaining() < 8 {
        return None;
    }
    let applied = LogIndex(data.get_u64());
    let mut map = BTreeMap::new();
    while data.has_remaining() {
        let mut field = || {
            if data.remaining() < 4 {
                return None;
            }
            let len = usize::try_from(data.get_u32()).ok()?;
            (data.remaining() >= len).then(|| data.split_to(len))
        };
        let key = field()?;
        let value = field()?;
        map.insert(key, value);
    }
    Some((applied, map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_and_garbage_is_refused() {
        let put = KvCommand::Put {
            key: Bytes::from("k"),
            value: Bytes::from("v"),
        };
        assert_eq!(KvCommand::decode(put.encode()), Some(put));
        let delete = KvCommand::Delete {
            key: Bytes::from("k"),
        };
        assert_eq!(KvCommand::decode(delete.encode()), Some(delete));
        assert_eq!(
            KvCommand::decode(Bytes::from_static(b"\x01\xff\xff\xff\xffk")),
            None
        );
        assert_eq!(KvCommand::decode(Bytes::from_static(b"\x09")), None);
    }

    #[tokio::test]
    async fn a_snapshot_restores_the_same_state_into_a_fresh_machine() {
        use crate::testing::snapshots;
        use crate::types::LogId;

        let kv = MemKv::new();
        let entries: Vec<Entry> = (1..=3)
            .map(|i| Entry {
                log_id: LogId::new(1, i),
                payload: Payload::Command(MemKv::put(format!("k{i}"), format!("v{i}"))),
            })
            .collect();
        kv.commit(&entries).await.unwrap();
        let mut source = kv.snapshot().await.unwrap();
        // Later commits do not leak into a snapshot already taken.
        kv.commit(&[Entry {
            log_id: LogId::new(1, 4),
            payload: Payload::Command(MemKv::delete("k1")),
        }])
        .await
        .unwrap();
        let data = snapshots::drain(source.as_mut()).await.unwrap();
        let fresh = MemKv::new();
        let reader = snapshots::reader(LogId::new(1, 3), data);
        fresh.restore(reader).await.unwrap();
        assert_eq!(fresh.get(b"k1").as_deref(), Some(&b"v1"[..]));
        assert_eq!(fresh.dump().len(), 3);
        assert_eq!(fresh.last_applied(), LogIndex(3));
        assert_eq!(fresh.restored_from(), [LogIndex(3)]);
    }
}
