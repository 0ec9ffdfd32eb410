//! The Redis servers themselves: whether every master answers, whether its eviction policy
//! keeps blobs not yet in S3, and how near its memory limit the fullest one is.

use super::{BlobCache, CacheError};

/// One Redis master's memory use and its limit (`maxmemory`; 0: none set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryUse {
    pub used_bytes: u64,
    pub max_bytes: u64,
}

impl MemoryUse {
    /// From an `INFO memory` reply; `None` when it lacks `used_memory`.
    fn parse(info: &str) -> Option<Self> {
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Some(MemoryUse {
            used_bytes: field("used_memory")?,
            max_bytes: field("maxmemory").unwrap_or(0),
        })
    }

    /// How full it is, 0 to 1 (0 with no limit: Redis then grows until the host runs out).
    fn fullness(&self) -> f64 {
        if self.max_bytes == 0 {
            0.0
        } else {
            self.used_bytes as f64 / self.max_bytes as f64
        }
    }
}

impl BlobCache {
    /// Every master answers PING; used by readiness checks.
    pub async fn ping(&self) -> Result<(), CacheError> {
        let _: Vec<String> = self.conn().on_every_master(&redis::cmd("PING")).await?;
        Ok(())
    }

    /// Refuses a Redis whose eviction policy could drop records not yet in S3 (they have no
    /// TTL, so only `allkeys-*` policies can evict them). When CONFIG is not available (managed
    /// Redis), the operator is trusted, with a warning.
    pub async fn check_eviction_policy(&self) -> anyhow::Result<()> {
        let mut config_get = redis::cmd("CONFIG");
        config_get.arg("GET").arg("maxmemory-policy");
        let reply: redis::RedisResult<Vec<Vec<String>>> =
            self.conn().on_every_master(&config_get).await;
        // The first master whose policy could evict unsaved blobs, else any (all alike).
        let policies: Vec<String> = reply
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.get(1).cloned())
            .collect();
        let policy = policies
            .iter()
            .find(|p| p.starts_with("allkeys"))
            .or(policies.first())
            .cloned();
        let Some(policy) = policy else {
            tracing::warn!(
                "cannot read Redis maxmemory-policy (CONFIG disabled); make sure it is noeviction or volatile-*"
            );
            return Ok(());
        };
        if policy.starts_with("allkeys") {
            anyhow::bail!(
                "Redis maxmemory-policy is {policy}, which can evict blobs not yet stored in S3; \
                 set it to volatile-lru (evicts only blobs already in S3) or noeviction"
            );
        }
        tracing::info!(%policy, "Redis eviction policy keeps unsaved blobs");
        Ok(())
    }

    /// The master nearest its `maxmemory` (of several without one, the largest); `None` when
    /// `INFO` is not allowed (some managed Redis) or says nothing of memory.
    pub async fn fullest_master(&self) -> Option<MemoryUse> {
        let mut info = redis::cmd("INFO");
        info.arg("memory");
        let replies: Vec<String> = self.conn().on_every_master(&info).await.ok()?;
        replies
            .iter()
            .filter_map(|reply| MemoryUse::parse(reply))
            .max_by(|a, b| {
                a.fullness()
                    .total_cmp(&b.fullness())
                    .then(a.used_bytes.cmp(&b.used_bytes))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryUse;

    #[test]
    fn reads_used_memory_and_maxmemory_from_info() {
        let info =
            "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:4194304\r\n";
        let memory = MemoryUse::parse(info).unwrap();
        assert_eq!(
            (memory.used_bytes, memory.max_bytes),
            (1_048_576, 4_194_304)
        );
        assert_eq!(memory.fullness(), 0.25);
        assert_eq!(MemoryUse::parse("# Memory\r\n"), None);
    }
}
