//! A TCP proxy that can cut one process off from Redis: while cut, every connection through
//! it is dropped and new ones are closed at once, as a partition looks to the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpCut {
    pub port: u16,
    cut: Arc<AtomicBool>,
    /// Bumped at each cut: every live connection ends when it changes.
    generation: watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpCut {
    /// Listens on a free loopback port and forwards to `upstream_port`.
    pub async fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let accept = tokio::spawn({
            let (cut, generation) = (cut.clone(), generation.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        continue; // dropped: the connection closes at once
                    }
                    let mut ended = generation.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut upstream) =
                            TcpStream::connect(("127.0.0.1", upstream_port)).await
                        else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                            _ = ended.changed() => {}
                        }
                    });
                }
            }
        });
        TcpCut {
            port,
            cut,
            generation,
            accept,
        }
    }

    /// Drops every connection and refuses new ones until [`TcpCut::heal`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpCut {
    fn drop(&mut self) {
        self.accept.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}

/// The fault the nemesis uses does cut a process off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_cut_off_from_redis_answers_503_until_healed() {
    use crate::helpers::*;
    use std::time::Duration;
    let backends = Backends::start().await;
    let cut = TcpCut::start(backends.redis.port).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _replica = BlobproxyProcess::spawn_from(
        blobproxy_command_for(
            &format!("redis://127.0.0.1:{}", cut.port),
            &backends.s3.endpoint(),
        ),
        &["serve"],
        &[("BLOBPROXY_BIND", format!("127.0.0.1:{port}"))],
        &dir.path().join("serve.log"),
    );
    wait_for_addr(&format!("127.0.0.1:{port}"), "replica").await;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/blobs/cut/a");
    assert_eq!(http.put(&url).body("x").send().await.unwrap().status(), 201);
    cut.cut();
    // Cut off, the replica answers 503 (after its 2 s wait for a new connection).
    assert_eq!(http.get(&url).send().await.unwrap().status(), 503);
    assert_eq!(http.put(&url).body("y").send().await.unwrap().status(), 503);
    cut.heal();
    eventually(Duration::from_secs(10), "answers again", || async {
        (http.get(&url).send().await.ok()?.status() == 200).then_some(())
    })
    .await;
}
