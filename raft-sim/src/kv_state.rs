//! The simulated state machine: a small key-value map, its snapshot encoding and a digest.
//!
//! Nodes apply committed entries to it, the checker keeps a reference copy built from the
//! committed entries in index order, and snapshots carry it as bytes. The encoding is
//! deterministic (keys in order), so equal states give equal snapshot data and checksums:
//!
//! ```text
//! "SKV1" | count: u32 | count × (key_len: u32 | key | value_len: u32 | value)   (big-endian)
//! ```

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use bytes::{BufMut, Bytes, BytesMut};
use raft_core::Payload;

use crate::client::decode_put;

const MAGIC: &[u8; 4] = b"SKV1";

/// The key-value state of one replica (or of the checker's reference).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct KvState {
    map: BTreeMap<String, String>,
}

impl KvState {
    /// Applies one committed entry: a put changes its key, anything else changes nothing.
    pub(crate) fn apply(&mut self, payload: &Payload) {
        if let Payload::Command(bytes) = payload
            && let Some((key, value)) = decode_put(bytes)
        {
            self.map.insert(key, value);
        }
    }

    /// The value of `key`, empty when never written.
    pub(crate) fn get(&self, key: &str) -> String {
        self.map.get(key).cloned().unwrap_or_default()
    }

    /// The snapshot data of this state.
    pub(crate) fn encode(&self) -> Bytes {
        let mut data = BytesMut::new();
        data.put_slice(MAGIC);
        data.put_u32(len_u32(self.map.len()));
        for (key, value) in &self.map {
            data.put_u32(len_u32(key.len()));
            data.put_slice(key.as_bytes());
            data.put_u32(len_u32(value.len()));
            data.put_slice(value.as_bytes());
        }
        data.freeze()
    }

    /// Rebuilds a state from snapshot data; `None` if the data is not a valid encoding.
    pub(crate) fn decode(data: &[u8]) -> Option<KvState> {
        let mut reader = Reader { data };
        if reader.take(MAGIC.len())? != MAGIC {
            return None;
        }
        let count = reader.u32()?;
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let key = reader.string()?;
            let value = reader.string()?;
            map.insert(key, value);
        }
        reader.data.is_empty().then_some(KvState { map })
    }

    /// A deterministic digest of the state (std's SipHash with fixed keys).
    pub(crate) fn digest(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.hash(&mut hasher);
        hasher.finish()
    }
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Reads the encoding front to back, refusing anything short.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.data.len() < len {
            return None;
        }
        let (head, rest) = self.data.split_at(len);
        self.data = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        let bytes: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.u32()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::encode_put;

    fn state(puts: &[(&str, &str)]) -> KvState {
        let mut state = KvState::default();
        for (key, value) in puts {
            state.apply(&Payload::Command(encode_put(key, value)));
        }
        state
    }

    #[test]
    fn encoding_round_trips_and_is_deterministic() {
        let state = state(&[("b", "v2"), ("a", "v1"), ("b", "v3")]);
        let data = state.encode();
        assert_eq!(KvState::decode(&data), Some(state.clone()));
        let same = self::state(&[("a", "v1"), ("b", "v3")]);
        assert_eq!(same.encode(), data);
        assert_eq!(same.digest(), state.digest());
        assert_eq!(
            KvState::decode(&KvState::default().encode()),
            Some(KvState::default())
        );
    }

    #[test]
    fn damaged_data_is_refused() {
        let data = state(&[("a", "v1")]).encode();
        for len in 0..data.len() {
            assert_eq!(KvState::decode(&data[..len]), None, "cut at {len}");
        }
        let mut longer = data.to_vec();
        longer.push(0);
        assert_eq!(KvState::decode(&longer), None);
    }

    #[test]
    fn blank_entries_change_nothing() {
        let mut state = state(&[("a", "v1")]);
        let before = state.digest();
        state.apply(&Payload::Blank);
        assert_eq!(state.digest(), before);
    }
}
