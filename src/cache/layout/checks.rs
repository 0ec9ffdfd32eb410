//! The layout's checks: every script reads only names its signature or the layout declares,
//! and no script escapes them.

use std::path::Path;

use super::{LUA_NAMES, ShardKeys, scripts};
use crate::redis_link::Keyspace;

#[test]
fn every_script_reads_only_the_names_the_layout_and_its_signature_declare() {
    let reserved: Vec<&str> = LUA_NAMES.iter().map(|(_, value)| *value).collect();
    let wrong: Vec<String> = scripts::all()
        .iter()
        .filter_map(|script| script.check(&reserved).err())
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_lua_file_of_the_cache_is_part_of_a_declared_script() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cache/layout");
    let texts: Vec<&str> = scripts::all().iter().map(|s| s.text.as_str()).collect();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "lua") {
            let lua = std::fs::read_to_string(&path).unwrap();
            assert!(
                texts.iter().any(|text| text.contains(&lua)),
                "{} is in no script of layout/scripts.rs",
                path.display()
            );
        }
    }
}

#[test]
fn a_shards_keys_share_its_prefix_and_its_hash_slot() {
    let single = ShardKeys::single();
    assert_eq!(single.record("a/b"), "bp:blob:a/b");
    assert_eq!(single.dirty, "bp:dirty");
    for keys in ShardKeys::all(Keyspace::Cluster) {
        use redis::cluster_routing::{Route, SlotAddr};
        let route = Route::new(keys.shard.slot().unwrap(), SlotAddr::Master);
        for name in [
            keys.record("k"),
            keys.lease("k"),
            keys.stage("id"),
            keys.version.clone(),
            keys.dirty.clone(),
            keys.dirty_by_key.clone(),
            keys.dead.clone(),
            keys.retry.clone(),
            keys.failing.clone(),
            keys.failures.clone(),
            keys.stats.clone(),
            keys.queue.data.clone(),
            keys.queue.meta.clone(),
            keys.queue.active.clone(),
        ] {
            assert_eq!(Route::with_key(&name, SlotAddr::Master), route, "{name}");
        }
    }
}
