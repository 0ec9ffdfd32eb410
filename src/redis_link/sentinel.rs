//! Redis Sentinel: the master the sentinels name, followed through failovers. A connection
//! asks the sentinels which server is the master (`SENTINEL GET-MASTER-ADDR-BY-NAME`, one
//! sentinel after another until one answers), checks that server says it is the master
//! (`ROLE`: a sentinel's view can lag), and keeps a `ConnectionManager` to it. It asks again
//! when a command finds the connection broken or the server read-only (a master demoted to a
//! replica), and every second in the background, so an idle connection does not write to an
//! old master that came back before the sentinels demoted it.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisError, RedisResult, Value};

use super::Sentinels;

/// How often an idle connection asks the sentinels whether the master moved.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Failing commands ask the sentinels at most this often (they all fail the same way while
/// the sentinels elect a new master).
const ASK_AT_MOST_EVERY: Duration = Duration::from_millis(200);
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection to the master the sentinels name.
#[derive(Clone)]
pub(super) struct SentinelConn {
    current: Arc<Current>,
}

struct Current {
    sentinels: Sentinels,
    certificates: Option<redis::TlsCertificates>,
    master: Mutex<(String, ConnectionManager)>,
    asked: Mutex<Instant>,
    /// One search for the master at a time.
    searching: tokio::sync::Mutex<()>,
}

impl SentinelConn {
    pub async fn connect(
        sentinels: &Sentinels,
        certificates: Option<redis::TlsCertificates>,
    ) -> anyhow::Result<Self> {
        let address = master_address(sentinels, &certificates, None).await?;
        let manager = manager_for(sentinels, &certificates, &address)
            .await
            .with_context(|| {
                format!("cannot connect to the master the sentinels name, {address}")
            })?;
        let current = Arc::new(Current {
            sentinels: sentinels.clone(),
            certificates,
            master: Mutex::new((address, manager)),
            asked: Mutex::new(Instant::now()),
            searching: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(check_now_and_then(Arc::downgrade(&current)));
        Ok(Self { current })
    }

    pub fn db(&self) -> i64 {
        self.manager().get_db()
    }

    fn manager(&self) -> ConnectionManager {
        self.current.master.lock().unwrap().1.clone()
    }

    pub async fn send(&self, cmd: &Cmd) -> RedisResult<Value> {
        match self.manager().req_packed_command(cmd).await {
            Err(e) if master_may_have_moved(&e) && self.current.follow(false).await => {
                self.manager().req_packed_command(cmd).await
            }
            result => result,
        }
    }

    pub async fn send_all(
        &self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self
            .manager()
            .req_packed_commands(pipeline, offset, count)
            .await
        {
            Err(e) if master_may_have_moved(&e) && self.current.follow(false).await => {
                self.manager()
                    .req_packed_commands(pipeline, offset, count)
                    .await
            }
            result => result,
        }
    }
}

impl Current {
    /// Asks the sentinels for the master and moves to it if it changed; whether it moved.
    /// Unless `always`, at most every [`ASK_AT_MOST_EVERY`].
    async fn follow(&self, always: bool) -> bool {
        let _one = self.searching.lock().await;
        {
            let mut asked = self.asked.lock().unwrap();
            if !always && asked.elapsed() < ASK_AT_MOST_EVERY {
                return false;
            }
            *asked = Instant::now();
        }
        let in_use = self.master.lock().unwrap().0.clone();
        let named = master_address(&self.sentinels, &self.certificates, Some(&in_use)).await;
        let Ok(address) = named else {
            return false;
        };
        if address == in_use {
            return false;
        }
        match manager_for(&self.sentinels, &self.certificates, &address).await {
            Ok(manager) => {
                tracing::warn!(master = %address, name = %self.sentinels.master, "the sentinels name a new Redis master; following it");
                *self.master.lock().unwrap() = (address, manager);
                true
            }
            Err(e) => {
                tracing::warn!(master = %address, error = %e, "cannot connect to the new Redis master yet");
                false
            }
        }
    }
}

/// Checks every [`CHECK_EVERY`] whether the master moved, while the connection lives.
async fn check_now_and_then(current: Weak<Current>) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(current) = current.upgrade() else {
            return;
        };
        current.follow(true).await;
    }
}

/// The connection broke, or the server is a replica now (its master failed over).
fn master_may_have_moved(e: &RedisError) -> bool {
    e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || e.kind() == redis::ErrorKind::Io
        || e.code() == Some("READONLY")
        || e.to_string().contains("READONLY")
}

/// `host:port` of the master the first sentinel that answers names, checked with `ROLE`.
/// `in_use`: the master the connection uses, which needs no new check when named again.
async fn master_address(
    sentinels: &Sentinels,
    certificates: &Option<redis::TlsCertificates>,
    in_use: Option<&str>,
) -> anyhow::Result<String> {
    let mut last_error = None;
    for sentinel in &sentinels.addresses {
        let asked = tokio::time::timeout(SENTINEL_TIMEOUT, async {
            let address = ask(sentinel, &sentinels.master).await?;
            if in_use == Some(address.as_str()) {
                return Ok(address);
            }
            // A sentinel's view can lag a failover: the server itself must say it is master.
            let mut master = client_for(sentinels, certificates, &address)?
                .get_multiplexed_async_connection()
                .await?;
            let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut master).await?;
            let is_master = matches!(role.first(), Some(Value::BulkString(r)) if r == b"master");
            anyhow::ensure!(
                is_master,
                "{address}, which it names, is not a master (yet)"
            );
            Ok(address)
        })
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within 1 s")));
        match asked {
            Ok(address) => return Ok(address),
            Err(e) => last_error = Some(format!("{sentinel}: {e:#}")),
        }
    }
    anyhow::bail!(
        "no sentinel of BLOBPROXY_REDIS_SENTINELS names a master called {} (BLOBPROXY_REDIS_SENTINEL_MASTER); the last said {}",
        sentinels.master,
        last_error.unwrap_or_default()
    )
}

/// The master's address as `sentinel` names it.
async fn ask(sentinel: &str, name: &str) -> anyhow::Result<String> {
    let url = if sentinel.contains("://") {
        sentinel.to_owned()
    } else {
        format!("redis://{sentinel}")
    };
    let mut conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let named: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(name)
        .query_async(&mut conn)
        .await?;
    let (host, port) = named.context("it monitors no master by that name")?;
    Ok(format!("{host}:{port}"))
}

/// A client of the master at `address`, reached as the template URL says.
fn client_for(
    sentinels: &Sentinels,
    certificates: &Option<redis::TlsCertificates>,
    address: &str,
) -> RedisResult<redis::Client> {
    let (scheme, _, rest) = url_parts(&sentinels.template);
    let url = format!("{scheme}{address}{rest}");
    super::tls::client(&url, certificates.as_ref())
}

/// A connection manager to the master at `address`.
async fn manager_for(
    sentinels: &Sentinels,
    certificates: &Option<redis::TlsCertificates>,
    address: &str,
) -> anyhow::Result<ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(30)))
        .set_number_of_retries(1);
    let client = client_for(sentinels, certificates, address)?;
    Ok(client.get_connection_manager_with_config(config).await?)
}

/// `scheme://[user:password@]`, `host:port`, `[/db][?...]` of a Redis URL.
fn url_parts(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (format!("{auth}@"), rest),
        None => (String::new(), rest),
    };
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    (
        format!("{scheme}://{auth}"),
        rest[..cut].to_owned(),
        rest[cut..].to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::url_parts;

    #[test]
    fn the_masters_url_keeps_the_templates_scheme_password_and_database() {
        let parts = url_parts("rediss://:secret@ignored:6379/2");
        assert_eq!(
            parts,
            (
                "rediss://:secret@".into(),
                "ignored:6379".into(),
                "/2".into()
            )
        );
        let parts = url_parts("redis://127.0.0.1:6379");
        assert_eq!(
            parts,
            ("redis://".into(), "127.0.0.1:6379".into(), String::new())
        );
    }
}
