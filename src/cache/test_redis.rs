//! A real redis-server for the scripts' unit tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::BlobCache;
use crate::redis_link::connect;

/// A redis-server on a free loopback port, killed on drop.
pub struct TestRedis {
    child: Child,
    _dir: tempfile::TempDir,
    url: String,
}

impl TestRedis {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = loop {
            let port = rand::random_range(20_000..32_000u16);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                break port;
            }
        };
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is not installed; run scripts/test.sh");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        TestRedis {
            child,
            _dir: dir,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    pub async fn cache(&self) -> BlobCache {
        let target = crate::redis_link::RedisTarget::single(self.url.clone());
        BlobCache::new(connect(&target).await.unwrap())
    }

    /// A plain connection, to look at what a script wrote.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
