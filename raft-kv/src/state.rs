//! [`KvState`]: the replicated map, as a raft-core state machine (what a command does to the
//! map is in the `map` module, the snapshot format in `snapshot`).

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use bytes::Bytes;
use raft_core::{Entry, Error, Payload, SnapshotReader, SnapshotSource, StateMachine};

use crate::map::{Map, apply_payload};
use crate::snapshot::{CHUNK_BYTES, Decoder, MapSource};

/// The key-value map every replica applies the log to: each key with its value and version
/// (the log index of the write that last set it). Cheap to clone (a shared handle); readers
/// ([`get`](KvState::get)) run concurrently with the apply task.
#[derive(Clone, Debug, Default)]
pub struct KvState {
    map: Arc<RwLock<Map>>,
}

impl KvState {
    /// An empty map.
    #[must_use]
    pub fn new() -> KvState {
        KvState::default()
    }

    /// The value at `key` on this replica (as of its last applied entry).
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.read().get(key).map(|entry| entry.value.clone())
    }

    /// The value at `key` and its version: the log index of the write that last set it (0 for
    /// a key restored from a snapshot written before versions were kept).
    #[must_use]
    pub fn get_versioned(&self, key: &[u8]) -> Option<(Bytes, u64)> {
        self.read()
            .get(key)
            .map(|entry| (entry.value.clone(), entry.version))
    }

    /// How many keys this replica holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the map is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl StateMachine for KvState {
    async fn commit(&self, entries: &[Entry]) -> Result<Vec<Bytes>, Error> {
        let mut map = self.write();
        Ok(entries
            .iter()
            .map(|entry| match &entry.payload {
                Payload::Blank | Payload::Membership(_) => Bytes::new(),
                Payload::Command(payload) => match apply_payload(&mut map, entry.log_id.index.0, payload) {
                    Ok(answer) => answer,
                    // Every replica refuses it the same way; the log stays applicable.
                    Err(reason) => {
                        tracing::warn!(index = %entry.log_id.index, %reason, "malformed command not applied");
                        Bytes::new()
                    }
                },
            })
            .collect())
    }

    async fn snapshot(&self) -> Result<Box<dyn SnapshotSource>, Error> {
        // Fix the view: the map's clone shares its shards (on the apply task, the lock held for
        // a reference-count increment per shard); the snapshot task encodes it later.
        let map = self.read().clone();
        Ok(Box::new(MapSource::new(map)))
    }

    async fn restore(&self, snapshot: Arc<dyn SnapshotReader>) -> Result<(), Error> {
        let meta = snapshot.meta().clone();
        let mut decoder = Decoder::default();
        let mut offset = 0u64;
        let mut crc = 0u32;
        loop {
            let chunk = snapshot.read(offset, CHUNK_BYTES).await?;
            if chunk.is_empty() {
                break;
            }
            offset += chunk.len() as u64;
            crc = crc32c::crc32c_append(crc, &chunk);
            decoder
                .feed(&chunk)
                .map_err(|reason| Error::state_machine(format!("{meta}: {reason}")))?;
        }
        if offset != meta.size || crc != meta.checksum {
            return Err(Error::state_machine(format!(
                "{meta}: read {offset} bytes that do not match it"
            )));
        }
        let map = decoder
            .finish()
            .map_err(|reason| Error::state_machine(format!("{meta}: {reason}")))?;
        *self.write() = map;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};
    use raft_core::LogId;
    use raft_core::testing::snapshots;

    use super::*;
    use crate::answer::OpResult;
    use crate::command::KvCommand;

    fn entry(index: u64, command: &KvCommand) -> Entry {
        Entry {
            log_id: LogId::new(1, index),
            payload: Payload::Command(command.encode()),
        }
    }

    fn incr(key: &str) -> KvCommand {
        KvCommand::Incr {
            key: Bytes::copy_from_slice(key.as_bytes()),
        }
    }

    #[tokio::test]
    async fn incr_counts_from_zero_and_refuses_non_integers() {
        let state = KvState::new();
        let put = KvCommand::Put {
            key: Bytes::from_static(b"name"),
            value: Bytes::from_static(b"ada"),
        };
        let results = state
            .commit(&[
                entry(1, &incr("n")),
                entry(2, &incr("n")),
                entry(3, &put),
                entry(4, &incr("name")),
            ])
            .await
            .unwrap();
        assert_eq!(OpResult::decode(&results[1]), Ok(OpResult::Incremented(2)));
        assert!(matches!(
            OpResult::decode(&results[3]),
            Ok(OpResult::Refused(_))
        ));
        assert_eq!(
            state.get_versioned(b"n"),
            Some((Bytes::from_static(b"2"), 2))
        );
        assert_eq!(
            state.get_versioned(b"name").map(|(_, version)| version),
            Some(3)
        );
        assert_eq!(state.get(b"n").as_deref(), Some(&b"2"[..]));
        assert_eq!(state.get(b"name").as_deref(), Some(&b"ada"[..]));
    }

    async fn snapshot_bytes(state: &KvState) -> Bytes {
        let mut source = state.snapshot().await.unwrap();
        snapshots::drain(source.as_mut()).await.unwrap()
    }

    fn reader(data: Bytes) -> Arc<dyn SnapshotReader> {
        snapshots::reader(LogId::new(1, 9), data)
    }

    #[tokio::test]
    async fn snapshot_restores_the_same_map() {
        let state = KvState::new();
        let entries: Vec<Entry> = (1..=300)
            .map(|i| {
                let command = KvCommand::Put {
                    key: Bytes::from(format!("key-{i}")),
                    value: Bytes::from(vec![b'v'; i]),
                };
                entry(i as u64, &command)
            })
            .collect();
        state.commit(&entries).await.unwrap();
        let restored = KvState::new();
        restored
            .restore(reader(snapshot_bytes(&state).await))
            .await
            .unwrap();
        assert_eq!(*restored.read(), *state.read());
    }

    fn put(index: u64, key: String, value: Vec<u8>) -> Entry {
        entry(
            index,
            &KvCommand::Put {
                key: Bytes::from(key),
                value: Bytes::from(value),
            },
        )
    }

    #[tokio::test]
    async fn snapshot_is_the_map_at_capture_even_when_writes_follow_it() {
        // ~3 MiB of values: the source resumes where it stopped across several chunks.
        let state = KvState::new();
        let entries: Vec<Entry> = (1..=3000u64)
            .map(|i| put(i, format!("key-{i:05}"), vec![b'a'; 1024]))
            .collect();
        state.commit(&entries).await.unwrap();
        let expected = state.read().clone();

        let mut source = state.snapshot().await.unwrap();
        // Writes after the capture: overwrite, delete and add keys.
        let later = [
            put(3001, "key-00001".to_owned(), b"changed".to_vec()),
            entry(
                3002,
                &KvCommand::Delete {
                    key: Bytes::from_static(b"key-01500"),
                },
            ),
            put(3003, "key-99999".to_owned(), b"new".to_vec()),
            put(3004, "a-first".to_owned(), b"new".to_vec()),
        ];
        state.commit(&later).await.unwrap();

        let mut data = BytesMut::new();
        let mut chunks = 0;
        while let Some(chunk) = source.next_chunk().await.unwrap() {
            assert!(chunk.len() <= CHUNK_BYTES + 2 * (4 + 1024) + 8);
            data.put_slice(&chunk);
            chunks += 1;
        }
        assert!(chunks >= 3, "{chunks} chunks");
        let restored = KvState::new();
        restored.restore(reader(data.freeze())).await.unwrap();
        assert_eq!(*restored.read(), expected);
        assert_eq!(restored.len(), 3000);
        assert_eq!(state.get(b"key-00001").as_deref(), Some(&b"changed"[..]));
        assert_eq!(state.len(), 3001);
    }

    #[tokio::test]
    async fn damaged_snapshot_is_refused() {
        let state = KvState::new();
        state.commit(&[entry(1, &incr("n"))]).await.unwrap();
        let good = snapshot_bytes(&state).await;
        let truncated = good.slice(..good.len() - 1);
        assert!(KvState::new().restore(reader(truncated)).await.is_err());
        let foreign = Bytes::from_static(b"something else entirely");
        assert!(KvState::new().restore(reader(foreign)).await.is_err());
    }
}
