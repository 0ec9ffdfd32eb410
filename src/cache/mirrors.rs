//! What each mirror store has yet to copy from the primary store (see `layout/mirrors.lua`):
//! every version the primary gets is owed to every mirror, by key, until a copier copied the
//! primary's object there. Key names and versions only, so a mirror that is down for hours
//! costs Redis no blob bytes; the copier reads the bytes back from the primary store.

use std::time::Duration;

use redis::AsyncCommands as _;

use super::layout::MirrorKeys;
use super::layout::scripts::{MirrorClaim, MirrorDone, MirrorReplay, MirrorRetry};
use super::retries::Backoff;
use super::{BlobCache, CacheError, ShardKeys, now_ms};

/// A key a copier holds for one mirror: the version the mirror is owed, and the lease's token.
#[derive(Debug, Clone)]
pub struct MirrorCopy {
    pub key: String,
    pub owed: String,
    token: String,
}

/// How far one mirror is behind the primary store.
#[derive(Debug, Clone, Copy, Default)]
pub struct MirrorLag {
    /// Keys whose newest version in the primary store the mirror lacks.
    pub behind: u64,
    /// How long the oldest of them has waited (seconds), if any.
    pub oldest_behind_secs: Option<f64>,
    /// Keys whose last copy failed (each retried on a backoff).
    pub failing: u64,
    /// Keys the mirror refused for good, parked until `replay-dead-letters` or a new version.
    pub dead_letters: u64,
}

/// Lets a script that ends an upload to the primary store owe it to every mirror.
pub(super) trait OwingMirrors {
    fn owing_mirrors(self, mirrors: Vec<MirrorKeys>) -> Self;
}

impl OwingMirrors for redis::ScriptInvocation<'_> {
    fn owing_mirrors(mut self, mirrors: Vec<MirrorKeys>) -> Self {
        for mirror in mirrors {
            self.key(mirror.behind)
                .key(mirror.due)
                .key(mirror.want)
                .key(mirror.dead);
        }
        self
    }
}

impl BlobCache {
    /// The keys of every mirror in the shard of `keys` (none without mirrors).
    pub(super) fn mirror_keys(&self, keys: &ShardKeys) -> Vec<MirrorKeys> {
        self.mirrors.iter().map(|name| keys.mirror(name)).collect()
    }

    /// Keys whose copy to `mirror` is due now, up to `limit` per shard.
    pub async fn mirror_due(&self, mirror: &str, limit: usize) -> Result<Vec<String>, CacheError> {
        let now = now_ms();
        // Futures that own what they use (not `ask_every_shard`'s borrowing closure), so a
        // copier's round can run on any runtime thread.
        let asked = self.every_shard().iter().map(|shard| {
            let (due, mut conn) = (shard.mirror(mirror).due, self.conn());
            async move {
                conn.zrangebyscore_limit::<_, _, _, Vec<String>>(
                    due,
                    "-inf",
                    now,
                    0,
                    limit as isize,
                )
                .await
            }
        });
        let due = futures::future::try_join_all(asked).await?;
        Ok(due.into_iter().flatten().collect())
    }

    /// Claims `key`'s copy to `mirror` for `ttl`; `None` while another copier holds it, or
    /// when the mirror is owed nothing for it.
    pub async fn claim_mirror_copy(
        &self,
        mirror: &str,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<MirrorCopy>, CacheError> {
        let keys = self.keys_of(key).mirror(mirror);
        let token = super::UploadLease::new_token();
        let owed: Option<String> = MirrorClaim {
            lease: &keys.lease(key),
            want: &keys.want,
            due: &keys.due,
            behind: &keys.behind,
            token: &token,
            ttl_ms: ttl.as_millis() as u64,
            key,
        }
        .invocation()
        .invoke_async(&mut self.conn())
        .await?;
        Ok(owed.map(|owed| MirrorCopy {
            key: key.to_owned(),
            owed,
            token,
        }))
    }

    /// The primary store's object of `copy.key` is now in `mirror`; whether the key is caught
    /// up there (false: it was owed something newer meanwhile, and is due again).
    pub async fn mirror_copied(&self, mirror: &str, copy: &MirrorCopy) -> Result<bool, CacheError> {
        let keys = self.keys_of(&copy.key).mirror(mirror);
        let caught_up: i64 = MirrorDone {
            lease: &keys.lease(&copy.key),
            behind: &keys.behind,
            due: &keys.due,
            want: &keys.want,
            errors: &keys.errors,
            token: &copy.token,
            key: &copy.key,
            version: &copy.owed,
        }
        .invocation()
        .invoke_async(&mut self.conn())
        .await?;
        Ok(caught_up == 1)
    }

    /// The copy of `copy.key` to `mirror` failed with `error`: it is due again after a
    /// backoff, or, when the mirror refused it for good (`permanent`), parked as a dead letter.
    /// Returns the attempts so far.
    pub async fn mirror_copy_failed(
        &self,
        mirror: &str,
        copy: &MirrorCopy,
        error: &str,
        backoff: Backoff,
        permanent: bool,
    ) -> Result<u64, CacheError> {
        let keys = self.keys_of(&copy.key).mirror(mirror);
        Ok(MirrorRetry {
            lease: &keys.lease(&copy.key),
            due: &keys.due,
            errors: &keys.errors,
            dead: &keys.dead,
            token: &copy.token,
            key: &copy.key,
            message: error,
            first_ms: backoff.first.as_millis() as u64,
            cap_ms: backoff.cap.as_millis() as u64,
            permanent: u8::from(permanent),
        }
        .invocation()
        .invoke_async(&mut self.conn())
        .await?)
    }

    /// How far `mirror` is behind, over every shard.
    pub async fn mirror_lag(&self, mirror: &str) -> Result<MirrorLag, CacheError> {
        let per_shard = self
            .ask_every_shard(async |mut conn, shard| {
                let keys = shard.mirror(mirror);
                let (behind, oldest, failing, dead): (u64, Vec<(String, f64)>, u64, u64) =
                    redis::pipe()
                        .zcard(&keys.behind)
                        .zrange_withscores(&keys.behind, 0, 0)
                        .hlen(&keys.errors)
                        .hlen(&keys.dead)
                        .query_async(&mut conn)
                        .await?;
                let oldest = oldest.first().map(|(_, since)| *since);
                Ok((behind, oldest, failing, dead))
            })
            .await?;
        let now = now_ms() as f64;
        let mut lag = MirrorLag::default();
        for (behind, oldest, failing, dead) in per_shard {
            lag.behind += behind;
            lag.failing += failing;
            lag.dead_letters += dead;
            if let Some(since) = oldest {
                let age = ((now - since) / 1000.0).max(0.0);
                lag.oldest_behind_secs =
                    Some(lag.oldest_behind_secs.map_or(age, |a: f64| a.max(age)));
            }
        }
        Ok(lag)
    }

    /// The mirrors still owed a version of `key` (empty: every mirror has what the primary
    /// store has). One round trip: the key's mirror keys are all in its shard.
    pub async fn mirrors_owing(&self, key: &str) -> Result<Vec<String>, CacheError> {
        if self.mirrors.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.keys_of(key);
        let mut pipe = redis::pipe();
        for name in self.mirrors.iter() {
            pipe.hexists(keys.mirror(name).want, key);
        }
        let owed: Vec<bool> = pipe.query_async(&mut self.conn()).await?;
        Ok(self
            .mirrors
            .iter()
            .zip(owed)
            .filter(|(_, owed)| *owed)
            .map(|(name, _)| name.clone())
            .collect())
    }

    /// Makes every key `mirror` refused for good due again; returns how many.
    pub async fn replay_mirror_dead_letters(&self, mirror: &str) -> Result<u64, CacheError> {
        let per_shard = self
            .ask_every_shard(async |mut conn, shard| {
                let keys = shard.mirror(mirror);
                let replayed: u64 = MirrorReplay {
                    dead: &keys.dead,
                    due: &keys.due,
                }
                .invocation()
                .invoke_async(&mut conn)
                .await?;
                Ok(replayed)
            })
            .await?;
        Ok(per_shard.into_iter().sum())
    }

    /// The mirrors this cache owes versions to.
    pub fn mirrors(&self) -> &[String] {
        &self.mirrors
    }
}
