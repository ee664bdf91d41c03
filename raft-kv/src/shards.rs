//! [`Map`]: the replicated map's storage — a hash map split into shards held behind shared
//! pointers, so a snapshot fixes its view by cloning the pointers and later writes copy only the
//! shards they touch (copy on write), once per shard per snapshot.
//!
//! Why not a persistent tree: every write to a B-tree walks and compares keys at each level and,
//! while a snapshot shares its nodes, copies the whole path; on this map's workload (point reads
//! and writes, three replicas applying every one) that was a third of a follower's CPU. A write
//! here hashes the key once to pick its shard and once in the shard's table: one key comparison.
//! Reads and writes never need key order; a snapshot lists the shards one after the other.

use std::collections::HashMap;
use std::collections::hash_map;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use foldhash::fast::RandomState;

/// Bits of a key's hash that pick its shard.
const SHARD_BITS: u32 = 8;

/// The number of shards. After a snapshot, the first write to a shard copies it: with 256
/// shards a map of ten million keys copies ~40,000 entries (a few milliseconds) at a time, and
/// cloning the map for a snapshot is 256 reference-count increments. Fewer shards keep their
/// headers in cache: 256 measured faster than 1,024 under batches (each write reads its shard's
/// header, then its table).
pub(crate) const SHARDS: usize = 1 << SHARD_BITS;

/// A key's value and version: the log index of the write that last set it (0 when unknown: a
/// key restored from a snapshot of the format without versions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Versioned {
    /// The value.
    pub(crate) value: Bytes,
    /// The log index of the write that set it.
    pub(crate) version: u64,
}

/// One shard: the keys whose hash selects it. Its hasher is seeded at random per process, so
/// clients cannot choose keys that collide.
type Shard = HashMap<Bytes, Versioned, RandomState>;

/// The keys, each with its value and version. Cloning it is cheap (the shards are shared) and
/// fixes a view: writes to either copy go to a private copy of the shard they touch.
#[derive(Clone)]
pub(crate) struct Map {
    /// Picks a key's shard (seeded at random, like the shards' own tables).
    hasher: RandomState,
    shards: Vec<Arc<Shard>>,
    len: usize,
}

impl Default for Map {
    fn default() -> Map {
        Map::new()
    }
}

impl Map {
    /// An empty map (its shards share one empty table until written).
    pub(crate) fn new() -> Map {
        let empty = Arc::new(Shard::default());
        Map {
            hasher: RandomState::default(),
            shards: vec![empty; SHARDS],
            len: 0,
        }
    }

    fn shard_of(&self, key: &[u8]) -> usize {
        // The top bits: the shard tables index their buckets by the low bits of their own
        // (differently seeded) hashes.
        (self.hasher.hash_one(key) >> (u64::BITS - SHARD_BITS)) as usize
    }

    /// The entry at `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Versioned> {
        self.shards[self.shard_of(key)].get(key)
    }

    /// Sets `key`'s entry; the one it replaces.
    pub(crate) fn insert(&mut self, key: Bytes, entry: Versioned) -> Option<Versioned> {
        let shard = self.shard_of(&key);
        let previous = Arc::make_mut(&mut self.shards[shard]).insert(key, entry);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// Sets `key`'s entry, copying the key out of `key` only when it is new (a write over an
    /// existing key allocates nothing for it).
    pub(crate) fn set(&mut self, key: &[u8], entry: Versioned) {
        let index = self.shard_of(key);
        let shard = Arc::make_mut(&mut self.shards[index]);
        match shard.get_mut(key) {
            Some(current) => *current = entry,
            None => {
                shard.insert(Bytes::copy_from_slice(key), entry);
                self.len += 1;
            }
        }
    }

    /// Removes `key`; its entry, if it was there.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Versioned> {
        let shard = self.shard_of(key);
        // Absent keys leave a shared shard shared.
        if !self.shards[shard].contains_key(key) {
            return None;
        }
        let removed = Arc::make_mut(&mut self.shards[shard]).remove(key);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// How many keys it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no key.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries of shard `shard` (`0..SHARDS`), in an order fixed for this view.
    pub(crate) fn shard_entries(&self, shard: usize) -> hash_map::Iter<'_, Bytes, Versioned> {
        self.shards[shard].iter()
    }

    /// Every entry, shard after shard.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Bytes, &Versioned)> {
        self.shards.iter().flat_map(|shard| shard.iter())
    }
}

/// Two maps are equal when they hold the same keys with the same entries (however their shards
/// are seeded).
impl PartialEq for Map {
    fn eq(&self, other: &Map) -> bool {
        self.len == other.len
            && self
                .iter()
                .all(|(key, entry)| other.get(key) == Some(entry))
    }
}

impl Eq for Map {}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: &'static str, version: u64) -> Versioned {
        Versioned {
            value: Bytes::from_static(value.as_bytes()),
            version,
        }
    }

    fn key(n: usize) -> Bytes {
        Bytes::from(format!("key-{n}"))
    }

    #[test]
    fn inserts_replace_and_removes_count() {
        let mut map = Map::new();
        assert!(map.is_empty());
        assert_eq!(map.insert(key(1), entry("a", 1)), None);
        assert_eq!(map.insert(key(1), entry("b", 2)), Some(entry("a", 1)));
        assert_eq!(map.insert(key(2), entry("c", 3)), None);
        assert_eq!(map.len(), 2);
        assert_eq!(map.get(b"key-1"), Some(&entry("b", 2)));
        assert_eq!(map.remove(b"key-3"), None);
        assert_eq!(map.remove(b"key-1"), Some(entry("b", 2)));
        assert_eq!(map.remove(b"key-1"), None);
        assert_eq!(map.len(), 1);
        assert_eq!(map.get(b"key-1"), None);
    }

    #[test]
    fn a_clone_keeps_its_view_while_the_original_changes() {
        let mut map = Map::new();
        for n in 0..5_000 {
            map.insert(key(n), entry("old", n as u64));
        }
        let view = map.clone();
        for n in 0..2_500 {
            map.insert(key(n), entry("new", 9));
            map.remove(&key(n + 2_500));
        }
        map.set(b"added", entry("added", 10));
        map.set(&key(0), entry("set", 11));
        assert_eq!(view.len(), 5_000);
        assert!((0..5_000).all(|n| view.get(&key(n)) == Some(&entry("old", n as u64))));
        assert_eq!(map.len(), 2_501);
        assert!((1..2_500).all(|n| map.get(&key(n)) == Some(&entry("new", 9))));
        assert_eq!(map.get(&key(0)), Some(&entry("set", 11)));
        assert_eq!(view.get(b"added"), None);
        assert_eq!(view.iter().count(), 5_000);
        let listed: usize = (0..SHARDS).map(|s| view.shard_entries(s).count()).sum();
        assert_eq!(listed, 5_000);
    }

    #[test]
    fn maps_with_the_same_entries_are_equal_whatever_their_seeds() {
        let mut a = Map::new();
        let mut b = Map::new();
        for n in 0..1_000 {
            a.insert(key(n), entry("v", n as u64));
            b.insert(key(999 - n), entry("v", (999 - n) as u64));
        }
        assert_eq!(a, b);
        b.insert(key(5), entry("w", 5));
        assert_ne!(a, b);
        b.insert(key(5), entry("v", 5));
        assert_eq!(a, b);
        b.remove(&key(7));
        assert_ne!(a, b);
    }

    #[test]
    fn keys_spread_over_the_shards() {
        let mut map = Map::new();
        for n in 0..(SHARDS * 8) {
            map.insert(key(n), entry("v", 1));
        }
        let used = (0..SHARDS)
            .filter(|&s| map.shard_entries(s).len() > 0)
            .count();
        assert!(used > SHARDS * 9 / 10, "{used} of {SHARDS} shards used");
    }
}
