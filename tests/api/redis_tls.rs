//! TLS to Redis (`rediss://`): a private CA and client certificates (mutual TLS), to one
//! server and to a cluster, against Debian's redis-server with certificates each test makes;
//! and a connection TLS refuses, told at start-up in one sentence that says what to fix.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::helpers::*;

/// A CA, a server certificate it signed for `names`, and a client certificate it signed; as
/// PEM files in a directory of their own.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn make(server_names: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "blobproxy test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.crt", ca_cert.pem());
        let names: Vec<String> = server_names.iter().map(|n| n.to_string()).collect();
        for (who, names) in [("server", names), ("client", vec!["blobproxy".to_owned()])] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            write(&format!("{who}.crt"), cert.pem());
            write(&format!("{who}.key"), key.serialize_pem());
        }
        Pki { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// redis-server's TLS arguments: serve `tls_port` with the server certificate, and ask
    /// clients for a certificate the CA signed.
    fn server_args(&self, tls_port: u16) -> Vec<String> {
        let path = |name: &str| self.file(name).to_str().unwrap().to_owned();
        [
            ("--tls-port", tls_port.to_string()),
            ("--tls-cert-file", path("server.crt")),
            ("--tls-key-file", path("server.key")),
            ("--tls-ca-cert-file", path("ca.crt")),
            ("--tls-auth-clients", "yes".to_owned()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect()
    }

    /// The settings' TLS files: the CA, and the client certificate and key.
    fn use_in(&self, settings: &mut blobproxy::config::Settings) {
        settings.redis.ca_file = Some(self.file("ca.crt"));
        settings.redis.client_cert_file = Some(self.file("client.crt"));
        settings.redis.client_key_file = Some(self.file("client.key"));
    }
}

/// A redis-server on a plain port (for the test's own look) and a TLS port.
async fn tls_redis(pki: &Pki) -> (RedisServer, u16) {
    let tls_port = free_port();
    let args = pki.server_args(tls_port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let redis = RedisServer::start_with(&args).await;
    wait_for_addr(&format!("127.0.0.1:{tls_port}"), "redis-server's TLS port").await;
    (redis, tls_port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_and_a_worker_use_redis_over_mutual_tls_with_a_private_ca() {
    let pki = Pki::make(&["localhost", "127.0.0.1"]);
    let (redis, tls_port) = tls_redis(&pki).await;
    let s3 = S3Server::start_kind(S3Kind::S3sFs).await;
    let mut settings = Backends::settings_for(&redis, &s3.endpoint());
    settings.redis.url = format!("rediss://127.0.0.1:{tls_port}");
    pki.use_in(&mut settings);
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;

    let data = random_bytes(3000);
    assert_eq!(app.put("tls/a", "bin", &data).await.status(), 201);
    assert_eq!(app.get_bytes("tls/a").await.0, data);
    // What the service wrote is in this Redis (read over its plain port): it went over TLS.
    let mut plain = redis.client().await;
    let version: Option<String> = redis::cmd("HGET")
        .arg(redis_layout().record("tls/a"))
        .arg(blobproxy::cache::layout::record::VERSION)
        .query_async(&mut plain)
        .await
        .unwrap();
    let version = version.unwrap().parse::<u64>().unwrap();
    // At that version (s3s-fs can show an object's bytes a moment before its metadata).
    let stored = eventually(Duration::from_secs(20), "tls/a in S3", || {
        s3.object_at("tls/a", version)
    })
    .await;
    assert_eq!(stored.data, data);
}

/// A variable naming a file, and the file.
type FileVar<'a> = (&'a str, &'a Path);

/// `blobproxy serve` against `url` with `env`: it must stop at start-up; its error output.
fn start_up_error(url: &str, env: &[FileVar], s3: &S3Server) -> String {
    let mut command = blobproxy_command_for(url, &s3.endpoint());
    // As a user runs it: no backtrace under the error.
    command
        .arg("serve")
        .env("BLOBPROXY_BIND", "127.0.0.1:0")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    for (var, path) in env {
        command.env(var, path);
    }
    let out = command.output().unwrap();
    assert!(!out.status.success(), "{url} {env:?}: started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_tls_refuses_stops_start_up_with_one_sentence_saying_what_to_fix() {
    // The server's certificate names another host than the one in the URL.
    let pki = Pki::make(&["redis.internal"]);
    let (redis, tls_port) = tls_redis(&pki).await;
    let s3 = S3Server::start_kind(S3Kind::S3sFs).await;
    let tls_url = format!("rediss://127.0.0.1:{tls_port}");
    let ca = pki.file("ca.crt");
    let (cert, key) = (pki.file("client.crt"), pki.file("client.key"));
    let all = [
        ("BLOBPROXY_REDIS_CA_FILE", ca.as_path()),
        ("BLOBPROXY_REDIS_CLIENT_CERT_FILE", cert.as_path()),
        ("BLOBPROXY_REDIS_CLIENT_KEY_FILE", key.as_path()),
    ];
    let cases: [(&str, &str, &[FileVar]); 4] = [
        (&tls_url, "is not for the host name in the URL", &all),
        (
            &tls_url.replace("127.0.0.1", "localhost"),
            "signed by a CA blobproxy does not trust (set BLOBPROXY_REDIS_CA_FILE",
            &[],
        ),
        (
            &redis.url(),
            "take effect only with TLS: use rediss://",
            &all[..1],
        ),
        (&tls_url, "go together: set both or neither", &all[1..2]),
    ];
    for (url, says, env) in cases {
        // One line: `Error: ` and the sentence, no chain of causes under it.
        let error = start_up_error(url, env, &s3);
        let lines: Vec<&str> = error.lines().filter(|l| !l.trim().is_empty()).collect();
        let last = lines.last().copied().unwrap_or_default();
        assert!(
            last.starts_with("Error: ") && last.contains(says),
            "{url}: {error}"
        );
        assert!(!error.contains("Caused by"), "{url}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_wants_a_client_certificate_refuses_one_without_it() {
    let pki = Pki::make(&["localhost", "127.0.0.1"]);
    let (_redis, tls_port) = tls_redis(&pki).await;
    let s3 = S3Server::start_kind(S3Kind::S3sFs).await;
    let ca = pki.file("ca.crt");
    let error = start_up_error(
        &format!("rediss://127.0.0.1:{tls_port}"),
        &[("BLOBPROXY_REDIS_CA_FILE", &ca)],
        &s3,
    );
    assert!(
        error.contains("set BLOBPROXY_REDIS_CLIENT_CERT_FILE and BLOBPROXY_REDIS_CLIENT_KEY_FILE"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_over_mutual_tls_serves_every_shard_and_drains_to_s3() {
    let pki = Pki::make(&["localhost", "127.0.0.1"]);
    let tls_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let nodes = futures::future::join_all(tls_ports.iter().map(|port| {
        let mut args = pki.server_args(*port);
        args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from));
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            RedisServer::start_cluster_node_with(&args).await
        }
    }))
    .await;
    let s3 = S3Server::start_kind(S3Kind::S3sFs).await;
    // The cluster is made over the plain ports; its bus and its clients use TLS.
    let created = Command::new(program("redis-cli"))
        .args(["--cluster", "create"])
        .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    eventually(
        Duration::from_secs(30),
        "cluster_state:ok on every node",
        || async {
            for node in &nodes {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut node.client().await)
                    .await
                    .ok()?;
                info.contains("cluster_state:ok").then_some(())?;
            }
            Some(())
        },
    )
    .await;

    let mut settings = Backends::settings_for(&nodes[0], &s3.endpoint());
    settings.redis.cluster_nodes = tls_ports
        .iter()
        .map(|port| format!("rediss://127.0.0.1:{port}"))
        .collect();
    pki.use_in(&mut settings);
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    let blobs: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("tls/cluster/{i}"), random_bytes(100 + i)))
        .collect();
    for (key, data) in &blobs {
        assert_eq!(app.put(key, "bin", data).await.status(), 201, "{key}");
    }
    for (key, data) in &blobs {
        assert_eq!(&app.get_bytes(key).await.0, data, "{key}");
    }
    eventually(Duration::from_secs(30), "every blob in S3", || async {
        let keys = s3.keys().await;
        (keys.len() == blobs.len()).then_some(())
    })
    .await;
    // Every master holds some of them: the shards spread over the cluster, all over TLS.
    for node in &nodes {
        let keys: u64 = redis::cmd("DBSIZE")
            .query_async(&mut node.client().await)
            .await
            .unwrap();
        assert!(keys > 0, "master on {} holds nothing", node.port);
    }
}
