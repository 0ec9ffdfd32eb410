//! Each of the cache's Lua scripts: its KEYS and ARGV by name, in the order Redis gets them,
//! and the parts its text is made of. A caller fills the struct and sends
//! [`invocation`](Put::invocation); the script reads the same names (see
//! [`crate::redis_link::LuaScript`]). The `.lua` files beside this one hold the bodies; each
//! one's header says what it does and returns.

use super::LAYOUT_LUA;
use crate::queue::QUEUE_JOB_LUA;
use crate::redis_link::lua_script;

/// Scripts with this first line may run when Redis is full: draining is what frees memory.
const ALLOW_OOM: &str = "#!lua flags=allow-oom\n";
/// The Lua fragments several scripts share, prepended to them.
const UPLOAD_LEASE_LUA: &str = include_str!("upload_lease.lua");
const MARK_DIRTY_LUA: &str = include_str!("mark_dirty.lua");
const NEXT_VERSION_LUA: &str = include_str!("next_version.lua");
const FAILURES_LUA: &str = include_str!("failures.lua");
const REQUESTS_LUA: &str = include_str!("requests.lua");
const TRACE_LUA: &str = include_str!("trace.lua");
const MIRRORS_LUA: &str = include_str!("mirrors.lua");

lua_script! {
    /// A new version of a key, dirty, with its drain job if nobody drains the key yet.
    pub(in crate::cache) struct Put<'a> = LAYOUT_LUA,
        [NEXT_VERSION_LUA, QUEUE_JOB_LUA, REQUESTS_LUA, TRACE_LUA, include_str!("put.lua")] {
        keys { record, version_counter, dirty, dead, queue_data, queue_meta, queue_active,
               dirty_by_key, stage, retry, request }
        args { data: &'a [u8], extension: &'a str, key: &'a str, kind: &'a str,
               content_type: &'a str, job_id: &'a str, staged: bool, fingerprint: &'a str,
               window_secs: u64, trace: &'a str }
    }
}

lua_script! {
    /// Several new versions at once (group commit), and one drain job for those that need
    /// one. Then per write: its record and its request's key in KEYS, and seven ARGV (data,
    /// extension, key, kind, content type, the request's fingerprint, its trace).
    pub(in crate::cache) struct PutBatch<'a> = LAYOUT_LUA,
        [NEXT_VERSION_LUA, QUEUE_JOB_LUA, REQUESTS_LUA, TRACE_LUA,
         include_str!("put_batch.lua")] {
        keys { version_counter, dirty, dead, queue_data, queue_meta, queue_active, dirty_by_key,
               retry }
        args { job_id: &'a str, window_secs: u64 }
    }
}

lua_script! {
    /// A blob read from S3, cached as clean unless the key has a record already.
    pub(in crate::cache) struct Recache<'a> = LAYOUT_LUA, [include_str!("recache.lua")] {
        keys { record }
        args { data: &'a [u8], extension: &'a str, version: u64, ttl_secs: u64,
               content_type: &'a str }
    }
}

lua_script! {
    /// Claims, renews or releases a key's upload lease.
    pub(in crate::cache) struct Lease<'a> = LAYOUT_LUA,
        [ALLOW_OOM, UPLOAD_LEASE_LUA, include_str!("lease.lua")] {
        keys { lease, record }
        args { token: &'a str, op: &'a str, ttl_ms: u64 }
    }
}

lua_script! {
    /// Marks a version clean once S3 has it, if it is still the newest.
    pub(in crate::cache) struct FinishUpload<'a> = LAYOUT_LUA,
        [ALLOW_OOM, UPLOAD_LEASE_LUA, MARK_DIRTY_LUA, FAILURES_LUA, MIRRORS_LUA,
         include_str!("finish_upload.lua")] {
        keys { record, lease, dirty, stats, dirty_by_key, retry, failing, failures }
        args { token: &'a str, version: u64, ttl_secs: u64, key: &'a str }
    }
}

lua_script! {
    /// Of some dirty keys, those nobody holds a lease on and that are neither dead letters nor
    /// waiting for a retry. Then per key: its lease in KEYS, the key in ARGV.
    pub(in crate::cache) struct Orphans<'a> = LAYOUT_LUA,
        [UPLOAD_LEASE_LUA, include_str!("orphans.lua")] {
        keys { dead, retry }
        args { }
    }
}

lua_script! {
    /// Parks a key the worker gave up on, and releases its lease.
    pub(in crate::cache) struct DeadLetter<'a> = LAYOUT_LUA,
        [ALLOW_OOM, UPLOAD_LEASE_LUA, FAILURES_LUA, include_str!("dead_letter.lua")] {
        keys { dead, lease, retry, failing, failures }
        args { key: &'a str, reason: &'a str, token: &'a str }
    }
}

lua_script! {
    /// Drops a dead-lettered key's record and every trace of it, if still at `version`.
    pub(in crate::cache) struct DropDeadLetter<'a> = LAYOUT_LUA,
        [ALLOW_OOM, FAILURES_LUA, include_str!("drop_dead_letter.lua")] {
        keys { record, dirty, dirty_by_key, dead, retry, failing, failures }
        args { key: &'a str, version: u64 }
    }
}

lua_script! {
    /// Schedules the next attempt of a key S3 failed for, and releases its lease.
    pub(in crate::cache) struct RetryLater<'a> = LAYOUT_LUA,
        [ALLOW_OOM, UPLOAD_LEASE_LUA, include_str!("retry_later.lua")] {
        keys { retry, failing, failures, lease }
        args { key: &'a str, error: &'a str, token: &'a str, first_ms: u64, cap_ms: u64,
               jitter: u32, asked_ms: u64 }
    }
}

lua_script! {
    /// A write-through's first step: the key's lease and a version.
    pub(in crate::cache) struct WriteThroughBegin<'a> = LAYOUT_LUA,
        [ALLOW_OOM, NEXT_VERSION_LUA, UPLOAD_LEASE_LUA, include_str!("write_through_begin.lua")] {
        keys { lease, version_counter }
        args { token: &'a str, ttl_ms: u64 }
    }
}

lua_script! {
    /// A write-through's last step: settles the cache once S3 holds the version.
    pub(in crate::cache) struct WriteThroughFinish<'a> = LAYOUT_LUA,
        [ALLOW_OOM, QUEUE_JOB_LUA, UPLOAD_LEASE_LUA, MARK_DIRTY_LUA, FAILURES_LUA, MIRRORS_LUA,
         include_str!("write_through_finish.lua")] {
        keys { record, lease, dirty, dirty_by_key, dead, queue_data, queue_meta, queue_active,
               retry, failing, failures }
        args { token: &'a str, version: u64, key: &'a str, job_id: &'a str }
    }
}

lua_script! {
    /// A copier claims a key one mirror is owed (its lease, and the version owed).
    pub(in crate::cache) struct MirrorClaim<'a> = LAYOUT_LUA,
        [ALLOW_OOM, UPLOAD_LEASE_LUA, include_str!("mirror_claim.lua")] {
        keys { lease, want, due, behind }
        args { token: &'a str, ttl_ms: u64, key: &'a str }
    }
}

lua_script! {
    /// A key copied to one mirror: caught up there, unless it is owed something newer.
    pub(in crate::cache) struct MirrorDone<'a> = LAYOUT_LUA,
        [ALLOW_OOM, UPLOAD_LEASE_LUA, include_str!("mirror_done.lua")] {
        keys { lease, behind, due, want, errors }
        args { token: &'a str, key: &'a str, version: &'a str }
    }
}

lua_script! {
    /// A copy to one mirror failed: try again later.
    pub(in crate::cache) struct MirrorRetry<'a> = LAYOUT_LUA,
        [ALLOW_OOM, UPLOAD_LEASE_LUA, include_str!("mirror_retry.lua")] {
        keys { lease, due, errors, dead }
        args {
            token: &'a str, key: &'a str, message: &'a str, first_ms: u64, cap_ms: u64,
            permanent: u8
        }
    }
}

lua_script! {
    /// Every key one mirror refused for good: due again.
    pub(in crate::cache) struct MirrorReplay<'a> = LAYOUT_LUA,
        [ALLOW_OOM, include_str!("mirror_replay.lua")] {
        keys { dead, due }
        args {}
    }
}

lua_script! {
    /// A back-fill holds a key's copier lease for one mirror.
    pub(in crate::cache) struct MirrorHold<'a> = LAYOUT_LUA,
        [ALLOW_OOM, UPLOAD_LEASE_LUA, include_str!("mirror_hold.lua")] {
        keys { lease }
        args { token: &'a str, ttl_ms: u64 }
    }
}

lua_script! {
    /// A back-fill releases a key's copier lease.
    pub(in crate::cache) struct MirrorRelease<'a> = LAYOUT_LUA,
        [ALLOW_OOM, UPLOAD_LEASE_LUA, include_str!("mirror_release.lua")] {
        keys { lease, want, due }
        args { token: &'a str, key: &'a str }
    }
}

/// Every script above, for the layout's checks.
#[cfg(test)]
pub(super) fn all() -> Vec<&'static crate::redis_link::LuaScript> {
    vec![
        Put::lua(),
        PutBatch::lua(),
        Recache::lua(),
        Lease::lua(),
        FinishUpload::lua(),
        Orphans::lua(),
        DeadLetter::lua(),
        RetryLater::lua(),
        DropDeadLetter::lua(),
        WriteThroughBegin::lua(),
        WriteThroughFinish::lua(),
        MirrorClaim::lua(),
        MirrorDone::lua(),
        MirrorRetry::lua(),
        MirrorReplay::lua(),
        MirrorHold::lua(),
        MirrorRelease::lua(),
    ]
}
