//! The production topology as processes: redis-server, s3s-fs, three `blobproxy serve`
//! replicas on their own loopback addresses, one `blobproxy worker`, a DNS server (dnsmasq)
//! standing in for Docker's, and the real nginx running the project's own config.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::*;

/// dnsmasq answering `web` with one A record per replica, like Docker's DNS for a service.
pub struct Dns {
    child: Child,
    hosts: PathBuf,
    pub port: u16,
}

impl Dns {
    pub fn start(dir: &Path, replicas: &[&str]) -> Self {
        let hosts = dir.join("hosts");
        // Written before the start: a SIGHUP that arrives before dnsmasq installs its handler
        // would kill it.
        std::fs::write(&hosts, hosts_file(replicas)).unwrap();
        let port = free_port();
        Dns {
            child: Command::new("dnsmasq")
                .args([
                    "--keep-in-foreground",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                ])
                .args([
                    "--no-resolv",
                    "--no-hosts",
                    "--user=root",
                    &format!("--port={port}"),
                ])
                .arg(format!("--addn-hosts={}", hosts.display()))
                .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
                .stderr(std::fs::File::create(dir.join("dnsmasq.err")).unwrap())
                .spawn()
                .expect("cannot start dnsmasq (scripts/install-deps.sh installs it)"),
            hosts,
            port,
        }
    }

    /// Replaces the replica list and makes dnsmasq re-read it.
    pub fn set(&self, replicas: &[&str]) {
        let lines = hosts_file(replicas);
        // Atomically, so dnsmasq never reads a half-written file.
        let tmp = self.hosts.with_extension("tmp");
        std::fs::write(&tmp, lines).unwrap();
        std::fs::rename(&tmp, &self.hosts).unwrap();
        let _ = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status();
    }
}

/// Open TCP connections whose server side is one of `ips` on `port` (from /proc/net/tcp, where
/// addresses are hex, the IPv4 address in host byte order).
fn established_connections_to(ips: &[&str], port: u16) -> usize {
    let servers: HashSet<String> = ips
        .iter()
        .map(|ip| {
            let ip: std::net::Ipv4Addr = ip.parse().unwrap();
            format!("{:08X}:{port:04X}", u32::from(ip).swap_bytes())
        })
        .collect();
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            const ESTABLISHED: &str = "01";
            fields[3] == ESTABLISHED && servers.contains(fields[1])
        })
        .count()
}

fn hosts_file(replicas: &[&str]) -> String {
    replicas.iter().map(|ip| format!("{ip} web\n")).collect()
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Renders the project's nginx config like the nginx image does (envsubst of the variables
/// given), pointing its include at our directory instead of /etc/nginx/conf.d.
pub fn render_nginx(dir: &Path, vars: &HashMap<&str, String>) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("nginx");
    let conf_d = dir.join("conf.d");
    std::fs::create_dir_all(&conf_d).unwrap();
    let mut template =
        std::fs::read_to_string(root.join("templates/blobproxy.conf.template")).unwrap();
    for (name, value) in vars {
        template = template.replace(&format!("${{{name}}}"), value);
    }
    assert!(
        !template.contains("${"),
        "an nginx template variable was left unset"
    );
    std::fs::write(conf_d.join("blobproxy.conf"), template).unwrap();
    let main = std::fs::read_to_string(root.join("nginx.conf"))
        .unwrap()
        .replace("/etc/nginx/conf.d/", &format!("{}/", conf_d.display()));
    let path = dir.join("nginx.conf");
    std::fs::write(&path, main).unwrap();
    path
}

/// nginx 1.28, as `scripts/install-deps.sh` builds it (Debian's 1.22 cannot run the config:
/// `server ... resolve` needs 1.27.3).
fn nginx_binary() -> PathBuf {
    let dir = std::env::var_os("BLOBPROXY_NGINX_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/blobproxy/nginx-1.28.3")
        });
    let binary = dir.join("sbin/nginx");
    assert!(
        binary.exists(),
        "no nginx 1.28 at {} (scripts/install-deps.sh builds it)",
        binary.display()
    );
    binary
}

pub struct Nginx(Child);

/// nginx running the project's config on a free port, in front of the replicas that `dns`
/// names `web` on `web_port` (trusting a DNS answer for 1 s); and its base URL.
pub async fn nginx_in_front(dir: &Path, dns: &Dns, web_port: u16) -> (Nginx, String) {
    let nginx_port = free_port();
    let vars = HashMap::from([
        ("NGINX_PORT", nginx_port.to_string()),
        ("NGINX_RESOLVER", format!("127.0.0.1:{}", dns.port)),
        ("NGINX_RESOLVER_VALID", "1s".to_owned()),
        ("BLOBPROXY_UPSTREAM", format!("web:{web_port}")),
        ("NGINX_CLIENT_MAX_BODY_SIZE", "22m".to_owned()),
    ]);
    let config = render_nginx(dir, &vars);
    let nginx = Nginx::start(dir, &config, nginx_port).await;
    (nginx, format!("http://127.0.0.1:{nginx_port}"))
}

impl Nginx {
    pub async fn start(dir: &Path, config: &Path, port: u16) -> Self {
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(format!("{}/", dir.display()))
            .arg("-c")
            .arg(config)
            .arg("-g")
            .arg(format!("pid {}/nginx.pid; daemon off;", dir.display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("nginx.err")).unwrap())
            .spawn()
            .unwrap();
        wait_for_addr(&format!("127.0.0.1:{port}"), "nginx").await;
        Nginx(child)
    }
}

impl Drop for Nginx {
    /// SIGTERM, not SIGKILL: the master then stops its worker processes, which a SIGKILL would
    /// leave running (and listening) as orphans.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn replica(backends: &Backends, dir: &Path, ip: &str, port: u16, name: &str) -> BlobproxyProcess {
    BlobproxyProcess::spawn(
        &["serve"],
        backends,
        &[
            ("BLOBPROXY_BIND", format!("{ip}:{port}")),
            ("BLOBPROXY_REPLICA_NAME", name.to_owned()),
            // Longer than nginx trusts a DNS answer here (NGINX_RESOLVER_VALID=1s), as the
            // default (6 s) is longer than the compose files' 5 s.
            ("BLOBPROXY_SHUTDOWN_DELAY_SECS", "3".to_owned()),
        ],
        &dir.join(format!("{name}.log")),
    )
}

/// Two replicas on one port, at 127.0.0.2 (`doomed`) and 127.0.0.3 (`survivor`), and a worker,
/// all storing through `proxy`, the replicas with `env` besides; and the replicas' port.
pub async fn doomed_and_survivor(
    backends: &Backends,
    proxy: &crate::s3_proxy::S3Proxy,
    dir: &Path,
    env: &[(&str, String)],
) -> (BlobproxyProcess, BlobproxyProcess, BlobproxyProcess, u16) {
    let web_port = free_port();
    let spawn = |ip: &str, name: &str| {
        let mut all = vec![
            ("BLOBPROXY_BIND", format!("{ip}:{web_port}")),
            ("BLOBPROXY_REPLICA_NAME", name.to_owned()),
            ("BLOBPROXY_S3_ENDPOINT", proxy.endpoint()),
        ];
        all.extend(env.iter().cloned());
        BlobproxyProcess::spawn(&["serve"], backends, &all, &dir.join(format!("{name}.log")))
    };
    let (doomed, survivor) = (spawn("127.0.0.2", "doomed"), spawn("127.0.0.3", "survivor"));
    for ip in ["127.0.0.2", "127.0.0.3"] {
        wait_for_addr(&format!("{ip}:{web_port}"), "replica").await;
    }
    let worker = BlobproxyProcess::spawn(
        &["worker"],
        backends,
        &[("BLOBPROXY_S3_ENDPOINT", proxy.endpoint())],
        &dir.join("worker.log"),
    );
    (doomed, survivor, worker, web_port)
}

/// Clients writing through nginx without pause, each on a new connection per request, until
/// stopped; then the number of writes answered 201 and a line for each one that was not.
struct WriteLoad {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(usize, Vec<String>)>>,
}

impl WriteLoad {
    fn start(base: &str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|client| {
                let (stop, base) = (stop.clone(), base.to_owned());
                tokio::spawn(async move {
                    let http = reqwest::Client::builder()
                        .pool_max_idle_per_host(0)
                        .build()
                        .unwrap();
                    let (mut stored, mut failed) = (0, Vec::new());
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let body = serde_json::json!({"key": format!("load/{client}/{i}"),
                            "data": blobproxy::domain::encode_base64(&random_bytes(512))});
                        match http.post(format!("{base}/put/")).json(&body).send().await {
                            Ok(r) if r.status() == 201 => stored += 1,
                            Ok(r) => failed.push(format!(
                                "{}: {}",
                                r.status(),
                                r.text().await.unwrap_or_default()
                            )),
                            Err(e) => failed.push(e.to_string()),
                        }
                    }
                    (stored, failed)
                })
            })
            .collect();
        WriteLoad { stop, tasks }
    }

    async fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut stored, mut failed) = (0, Vec::new());
        for task in self.tasks {
            let (s, f) = task.await.unwrap();
            stored += s;
            failed.extend(f);
        }
        (stored, failed)
    }
}

async fn put_via(http: &reqwest::Client, base: &str, key: &str, data: &[u8]) -> (u16, String) {
    let response = http
        .post(format!("{base}/put/"))
        .json(&serde_json::json!({"key": key, "extension": "bin",
            "data": blobproxy::domain::encode_base64(data)}))
        .send()
        .await
        .unwrap();
    let Some(served_by) = response.headers().get("x-served-by") else {
        panic!(
            "PUT {key}: no X-Served-By: {}",
            response.text().await.unwrap()
        );
    };
    let served_by = served_by.to_str().unwrap().to_owned();
    (response.status().as_u16(), served_by)
}

async fn get_via(http: &reqwest::Client, base: &str, key: &str) -> (Vec<u8>, String) {
    let response = http.get(format!("{base}/get/{key}")).send().await.unwrap();
    let status = response.status();
    assert_eq!(
        status,
        200,
        "GET {key} through nginx: {}",
        response.text().await.unwrap()
    );
    let served_by = response.headers()["x-served-by"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    let data = blobproxy::domain::decode_base64(body["data"].as_str().unwrap()).unwrap();
    (data, served_by)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_round_robins_over_replicas_and_follows_them_as_they_come_and_go() {
    let backends = Backends::start().await;
    let dir = tempfile::tempdir().unwrap();
    let web_port = free_port();
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let mut replicas: Vec<BlobproxyProcess> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            replica(
                &backends,
                dir.path(),
                ip,
                web_port,
                &format!("web-{}", i + 1),
            )
        })
        .collect();
    let _worker =
        BlobproxyProcess::spawn(&["worker"], &backends, &[], &dir.path().join("worker.log"));
    for ip in ips {
        wait_for_addr(&format!("{ip}:{web_port}"), "replica").await;
    }
    let dns = Dns::start(dir.path(), &ips);
    wait_for_addr(&format!("127.0.0.1:{}", dns.port), "dnsmasq").await;
    let (_nginx, base) = nginx_in_front(dir.path(), &dns, web_port).await;
    // No connection reuse on our side, like many independent clients.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // nginx resolves `web` after it starts (the system resolver does not know the name here,
    // only dnsmasq does; Docker's DNS answers at start-up): until then it has no replica.
    let deadline = Instant::now() + Duration::from_secs(20);
    while http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map_or(true, |r| !r.headers().contains_key("x-served-by"))
    {
        assert!(Instant::now() < deadline, "nginx never reached a replica");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Round-robin, and read-after-write across replicas.
    let mut served = HashMap::<String, usize>::new();
    let mut cross_replica_reads = 0;
    let mut written = Vec::new();
    for i in 0..30 {
        let key = format!("rr/{i}");
        let data = random_bytes(2000 + i);
        let (status, put_by) = put_via(&http, &base, &key, &data).await;
        assert_eq!(status, 201);
        let (read, get_by) = get_via(&http, &base, &key).await;
        assert!(read == data, "{key}: read differs from write");
        cross_replica_reads += usize::from(put_by != get_by);
        *served.entry(put_by).or_default() += 1;
        *served.entry(get_by).or_default() += 1;
        written.push((key, data));
    }
    let names: HashSet<&str> = served.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        HashSet::from(["web-1", "web-2", "web-3"]),
        "served: {served:?}"
    );
    assert!(
        cross_replica_reads > 0,
        "no read went to another replica than its write"
    );
    // nginx keeps its connections to the replicas open between requests (our client opens a
    // new one per request, so every open connection to a replica is nginx's), and reuses
    // them: far fewer than one per request.
    let kept = established_connections_to(&ips, web_port);
    assert!(
        (1..30).contains(&kept),
        "{kept} open connections from nginx to the replicas after 60 requests"
    );

    // The worker behind the replicas drains everything into S3.
    backends.wait_until_drained(Duration::from_secs(30)).await;
    for (key, data) in &written {
        assert!(backends.s3.object(key).await.expect("in S3").data == *data);
    }

    // A replica dies (still in DNS, as for a moment in Swarm): no request fails.
    replicas[1].signal("KILL");
    let _ = replicas[1].wait_exit(Duration::from_secs(5)).await;
    for i in 0..30 {
        let key = format!("after-kill/{i}");
        let data = random_bytes(100);
        let (status, put_by) = put_via(&http, &base, &key, &data).await;
        assert_eq!(status, 201, "PUT failed after a replica died");
        assert_ne!(put_by, "web-2");
        assert_eq!(get_via(&http, &base, &key).await.0, data);
    }

    // Scale up: a new replica appears in DNS and gets traffic without touching nginx.
    replicas.push(replica(
        &backends,
        dir.path(),
        "127.0.0.5",
        web_port,
        "web-4",
    ));
    wait_for_addr(&format!("127.0.0.5:{web_port}"), "new replica").await;
    dns.set(&["127.0.0.2", "127.0.0.4", "127.0.0.5"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut new_replica_requests = 0;
    while new_replica_requests < 3 {
        assert!(
            Instant::now() < deadline,
            "the new replica never got traffic"
        );
        let (_, by) = get_via(&http, &base, "rr/0").await;
        new_replica_requests += usize::from(by == "web-4");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Scale down, as Docker does it: a replica leaves DNS and gets SIGTERM at the same moment,
    // while writes keep flowing. It goes on serving for its shutdown delay, by when nginx has
    // re-resolved, then exits: no write fails.
    let load = WriteLoad::start(&base, 8);
    tokio::time::sleep(Duration::from_millis(500)).await;
    dns.set(&["127.0.0.2", "127.0.0.5"]);
    replicas[2].signal("TERM");
    let exited = replicas[2].wait_exit(Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (stored, failed) = load.stop().await;
    assert_eq!(exited, Some(0), "the replica did not exit cleanly");
    assert!(stored > 100, "the load did not run: {stored} writes");
    assert!(
        failed.is_empty(),
        "{} of {} writes failed while a replica left: {:?}",
        failed.len(),
        stored + failed.len(),
        &failed[..failed.len().min(5)]
    );

    // nginx's own errors are JSON like the API's. A body over NGINX_CLIENT_MAX_BODY_SIZE is
    // refused from its Content-Length alone (so the test sends no body):
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /put/ HTTP/1.1\r\nHost: blobproxy\r\nContent-Type: application/json\r\n\
              Content-Length: 99999999\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    let body: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(body["code"], "payload_too_large", "{answer}");
    // A replica's own errors pass through nginx untouched: a raw blob over
    // BLOBPROXY_MAX_BLOB_BYTES (16 MiB) but under nginx's 22m is the replica's 413.
    let too_large = http
        .put(format!("{base}/blobs/too-large"))
        .body(vec![0u8; 16 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    assert!(too_large.headers().contains_key("x-served-by"));
    let body: serde_json::Value = too_large.json().await.unwrap();
    assert_eq!(body["code"], "blob_too_large", "{body}");
    // No replica reachable (DNS names only the killed one): 503 naming the replicas.
    dns.set(&["127.0.0.3"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let unavailable = loop {
        let response = http.get(format!("{base}/get/rr/0")).send().await.unwrap();
        if response.status() == 503 {
            break response;
        }
        assert!(Instant::now() < deadline, "nginx kept finding a replica");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(unavailable.headers()["retry-after"], "1");
    let body: serde_json::Value = unavailable.json().await.unwrap();
    assert_eq!(body["code"], "replicas_unavailable", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_and_worker_exit_cleanly_and_promptly_on_sigterm() {
    let backends = Backends::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut web = BlobproxyProcess::spawn(
        &["serve"],
        &backends,
        &[
            ("BLOBPROXY_BIND", format!("127.0.0.1:{port}")),
            ("BLOBPROXY_SHUTDOWN_DELAY_SECS", "2".to_owned()),
        ],
        &dir.path().join("web.log"),
    );
    let mut worker =
        BlobproxyProcess::spawn(&["worker"], &backends, &[], &dir.path().join("worker.log"));
    wait_for_addr(&format!("127.0.0.1:{port}"), "replica").await;
    // The healthcheck subcommand (the image's HEALTHCHECK) sees it healthy.
    let health = Command::new(env!("CARGO_BIN_EXE_blobproxy"))
        .args(["healthcheck", "--bind", &format!("0.0.0.0:{port}")])
        .status()
        .unwrap();
    assert!(health.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Timed from before the first signal: sending each one starts a `kill` process, which on
    // a loaded machine takes long enough to eat into the delay being measured.
    let signalled = Instant::now();
    web.signal("TERM");
    worker.signal("TERM");
    // The worker stops at once.
    assert_eq!(worker.wait_exit(Duration::from_secs(9)).await, Some(0));
    // The replica serves through its shutdown delay, no longer ready, then exits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .expect("the replica still serves during its shutdown delay");
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["code"], "shutting_down");
    let stored = http
        .post(format!("http://127.0.0.1:{port}/put/"))
        .json(&serde_json::json!({"key": "late", "data": "bGF0ZQ=="}))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 201, "a write during the delay is served");
    assert_eq!(web.wait_exit(Duration::from_secs(9)).await, Some(0));
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "exited before its shutdown delay"
    );
    let health = Command::new(env!("CARGO_BIN_EXE_blobproxy"))
        .args(["healthcheck", "--bind", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        !health.success(),
        "healthcheck passed with the replica gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_in_flight_on_a_replica_that_dies_gets_503_replicas_unavailable_and_its_retry_is_safe()
 {
    let backends = Backends::start().await;
    // S3 answers after 3 s, so a `?wc=1` write is still in flight at its replica a second in.
    let proxy = crate::s3_proxy::S3Proxy::start(backends.s3.port).await;
    proxy.set_delay(Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let (doomed, _survivor, _worker, web_port) =
        doomed_and_survivor(&backends, &proxy, dir.path(), &[]).await;
    // Only the doomed replica in DNS: the write goes there.
    let dns = Dns::start(dir.path(), &["127.0.0.2"]);
    wait_for_addr(&format!("127.0.0.1:{}", dns.port), "dnsmasq").await;
    let (_nginx, base) = nginx_in_front(dir.path(), &dns, web_port).await;
    let http = reqwest::Client::new();
    eventually(
        Duration::from_secs(20),
        "nginx finding the replica",
        || async {
            let response = http.get(format!("{base}/healthz")).send().await.ok()?;
            (response.status() == 200).then_some(())
        },
    )
    .await;

    let data = random_bytes(4000);
    let write = || {
        http.put(format!("{base}/blobs/in-flight?wc=1"))
            .body(data.clone())
            .send()
    };
    let in_flight = tokio::spawn(write());
    tokio::time::sleep(Duration::from_secs(1)).await;
    dns.set(&["127.0.0.3"]);
    doomed.signal("KILL");
    // What the client sees: nginx cannot resend a request it already sent.
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "1");
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["code"], "replicas_unavailable", "{body}");
    // The retry, after Retry-After, lands on the survivor: a write by key is safe to repeat.
    let retried = eventually(
        Duration::from_secs(20),
        "the retry acknowledged",
        || async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let response = write().await.ok()?;
            (response.status() == 201).then_some(response)
        },
    )
    .await;
    assert_eq!(retried.headers()["x-served-by"], "survivor");
    let stored = backends.s3.object("in-flight").await.expect("in S3 (wc=1)");
    assert_eq!(stored.data, data);
    let read = http
        .get(format!("{base}/blobs/in-flight"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.bytes().await.unwrap(), data);
}
