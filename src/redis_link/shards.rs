//! Where a blob key's Redis state lives. Every Redis key that one write touches (the record,
//! the dirty sets, the lease, the version counter, the job queue) belongs to the key's shard,
//! so the write's Lua script touches one hash slot, as Redis Cluster requires.
//!
//! Single-node Redis has one shard, named as every release before cluster mode named its keys
//! (`bp:dirty`, `blobproxy:drain`), so an existing deployment keeps its data. A cluster has
//! [`CLUSTER_SHARDS`] shards, each named with a hash tag (`bp:{s07.66}:dirty`) chosen so that
//! the shards sit evenly over the 16384 slots: shard i's slot is in the middle of the i-th
//! sixteenth. A cluster whose masters hold even slot ranges (what `redis-cli --cluster
//! create` and `rebalance` make) thus holds an even share of the shards, and of the keys.
//! The shard count is part of the data layout: changing it would strand what is in Redis.

use std::sync::LazyLock;

/// Shards of a cluster; at most this many masters share the writes.
pub const CLUSTER_SHARDS: usize = 16;

/// Hash tags of the cluster shards and the slot each lands on (found by search, checked by a
/// test against redis-rs's slot function).
const CLUSTER_TAGS: [(&str, u16); CLUSTER_SHARDS] = [
    ("s00.164", 484),
    ("s01.21", 1421),
    ("s02.19", 2570),
    ("s03.12", 3541),
    ("s04.49", 4710),
    ("s05.42", 5561),
    ("s06.147", 6752),
    ("s07.66", 7735),
    ("s08.209", 8594),
    ("s09.16", 9722),
    ("s10.26", 10639),
    ("s11.164", 11797),
    ("s12.6", 12720),
    ("s13.1", 13927),
    ("s14.45", 14779),
    ("s15.59", 15794),
];

/// One shard: the names of its Redis keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// Its place in [`Keyspace::shards`].
    index: usize,
    /// `bp:` (single node) or `bp:{tag}:`.
    prefix: String,
    /// The apalis queue's name (every key of the queue starts with it).
    queue: String,
    /// The hash slot of every key of the shard (cluster only).
    slot: Option<u16>,
}

impl Shard {
    /// The name of the shard's Redis key for `what` (`dirty`, `blob:<key>`, ...).
    pub fn key(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }

    /// The name of the shard's drain queue.
    pub fn queue_name(&self) -> &str {
        &self.queue
    }

    /// Its place in [`Keyspace::shards`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// The hash slot all of the shard's keys are in (cluster mode).
    pub fn slot(&self) -> Option<u16> {
        self.slot
    }
}

static SINGLE: LazyLock<Vec<Shard>> = LazyLock::new(|| {
    vec![Shard {
        index: 0,
        prefix: "bp:".into(),
        queue: "blobproxy:drain".into(),
        slot: None,
    }]
});

static CLUSTER: LazyLock<Vec<Shard>> = LazyLock::new(|| {
    CLUSTER_TAGS
        .iter()
        .enumerate()
        .map(|(index, (tag, slot))| Shard {
            index,
            prefix: format!("bp:{{{tag}}}:"),
            queue: format!("blobproxy:drain:{{{tag}}}"),
            slot: Some(*slot),
        })
        .collect()
});

/// How keys are laid out: one shard, or the cluster's shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyspace {
    Single,
    Cluster,
}

impl Keyspace {
    pub fn shards(self) -> &'static [Shard] {
        match self {
            Keyspace::Single => &SINGLE,
            Keyspace::Cluster => &CLUSTER,
        }
    }

    /// The shard of a blob key. FNV-1a over the key's bytes: stable across releases and
    /// platforms (it decides where data lives), and it ignores `{}` in keys, unlike Redis's
    /// own slot function, so keys that share a brace pair still spread.
    pub fn shard_of(self, key: &str) -> &'static Shard {
        let shards = self.shards();
        if shards.len() == 1 {
            return &shards[0];
        }
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in key.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        &shards[(hash % shards.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cluster_shard_is_in_the_middle_of_its_sixteenth_of_the_slots() {
        for (i, shard) in Keyspace::Cluster.shards().iter().enumerate() {
            use redis::cluster_routing::{Route, SlotAddr};
            let slot = shard.slot().unwrap();
            let route = Route::new(slot, SlotAddr::Master);
            for name in [
                shard.key("blob:{any}"),
                shard.key("dirty"),
                shard.queue_name().into(),
            ] {
                assert_eq!(Route::with_key(&name, SlotAddr::Master), route, "{name}");
            }
            let sixteenth = 16384 / CLUSTER_SHARDS as u16;
            assert_eq!(slot / sixteenth, i as u16, "{shard:?}");
            assert_eq!(shard.index(), i);
        }
    }

    #[test]
    fn single_node_keys_keep_their_names() {
        let shard = Keyspace::Single.shard_of("a/b");
        assert_eq!(shard.key("dirty"), "bp:dirty");
        assert_eq!(shard.queue_name(), "blobproxy:drain");
    }

    #[test]
    fn keys_spread_over_the_cluster_shards() {
        let mut counts = [0u32; CLUSTER_SHARDS];
        for i in 0..16_000 {
            let shard = Keyspace::Cluster.shard_of(&format!("photos/{i}.jpg"));
            counts[shard.index()] += 1;
        }
        // 1000 expected per shard; a fair hash stays well within 15%.
        assert!(
            counts.iter().all(|&c| (850..1150).contains(&c)),
            "{counts:?}"
        );
    }
}
