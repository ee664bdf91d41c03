//! In-memory plugins for tests, examples and benchmarks: a log store with a simulated disk
//! ([`MemLogStore`]), a key-value state machine that records its calls ([`MemKv`]) and an
//! in-process network with faults ([`MemNetwork`]). They are real implementations of the plugin
//! contracts (the runtime's tests run on them), not mocks.

mod mem_kv;
mod mem_log;
mod mem_network;

pub use self::mem_kv::{KvCommand, MALFORMED, MemKv};
pub use self::mem_log::MemLogStore;
pub use self::mem_network::MemNetwork;
