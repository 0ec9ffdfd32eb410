//! The Dockerfile and compose files cannot run here (no Docker engine), so they are checked
//! against the binary: the real docker-compose validator accepts them, every variable they
//! set is one the binary reads, and ports, limits and health checks line up.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_yaml::Value;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `docker-compose config` of a file: validated (exit 0), anchors and merges resolved.
fn compose_config(file: &str) -> Value {
    compose_configs(&[file])
}

/// `docker-compose config` of a file and its overrides, merged.
fn compose_configs(files: &[&str]) -> Value {
    let file = files.join(" + ");
    let mut command = Command::new("docker-compose");
    for f in files {
        command.args(["-f", repo(f).to_str().unwrap()]);
    }
    let out = command
        .arg("config")
        .output()
        .expect("docker-compose is not installed (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "docker-compose rejects {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::from_slice(&out.stdout).unwrap()
}

fn env<'a>(service: &'a Value, name: &str) -> Option<&'a str> {
    service["environment"][name].as_str()
}

/// Every `BLOBPROXY_*` variable the binary documents in `--help`.
fn variables_the_binary_reads() -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    for sub in ["serve", "worker", "healthcheck"] {
        let out = Command::new(env!("CARGO_BIN_EXE_blobproxy"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        for word in help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("BLOBPROXY_") {
                vars.insert(word.to_owned());
            }
        }
    }
    vars
}

fn size_in_bytes(nginx_size: &str) -> usize {
    let (number, unit) = nginx_size.split_at(nginx_size.len() - 1);
    match unit {
        "k" | "K" => number.parse::<usize>().unwrap() * 1024,
        "m" | "M" => number.parse::<usize>().unwrap() * 1024 * 1024,
        "g" | "G" => number.parse::<usize>().unwrap() * 1024 * 1024 * 1024,
        _ => nginx_size.parse().unwrap(),
    }
}

fn port_of(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

/// Checks shared by the Compose and the Swarm file.
fn check_stack(file: &str, upstream_host: &str) -> Value {
    let config = compose_config(file);
    let services = &config["services"];
    for name in ["nginx", "web", "worker", "redis", "minio"] {
        assert!(services[name].is_mapping(), "{file}: no service {name}");
    }
    let (nginx, web, worker, redis) = (
        &services["nginx"],
        &services["web"],
        &services["worker"],
        &services["redis"],
    );

    // The replicas and the worker set only variables the binary reads.
    let known = variables_the_binary_reads();
    for (name, service) in [("web", web), ("worker", worker)] {
        let vars = service["environment"].as_mapping().expect("environment");
        for var in vars.keys().map(|k| k.as_str().unwrap()) {
            if var.starts_with("BLOBPROXY_") {
                assert!(
                    known.contains(var),
                    "{file}: {name} sets {var}, which blobproxy does not read"
                );
            } else {
                assert!(
                    var.starts_with("AWS_") || var == "RUST_LOG",
                    "{file}: {name} sets unexpected {var}"
                );
            }
        }
        assert!(
            env(service, "BLOBPROXY_REDIS_URL")
                .unwrap()
                .contains("redis:6379")
        );
        assert!(
            env(service, "BLOBPROXY_S3_ENDPOINT")
                .unwrap()
                .contains("minio:9000")
        );
    }
    assert_eq!(web["command"][0], "serve");
    assert_eq!(worker["command"][0], "worker");
    let health: Vec<&str> = web["healthcheck"]["test"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        health.contains(&"healthcheck"),
        "{file}: web healthcheck is {health:?}"
    );

    // nginx: published on 8000, proxies to the port the replicas listen on, takes bodies big
    // enough for the largest blob in base64, and every template variable is set.
    let published = nginx["ports"][0].clone();
    assert_eq!(
        published["published"]
            .as_u64()
            .or(published["published"].as_str().and_then(|p| p.parse().ok())),
        Some(8000)
    );
    assert_eq!(
        published["target"].as_u64(),
        env(nginx, "NGINX_PORT").unwrap().parse().ok()
    );
    let upstream = env(nginx, "BLOBPROXY_UPSTREAM").unwrap();
    assert_eq!(
        upstream,
        format!(
            "{upstream_host}:{}",
            port_of(env(web, "BLOBPROXY_BIND").unwrap())
        )
    );
    let max_blob: usize = env(web, "BLOBPROXY_MAX_BLOB_BYTES")
        .unwrap()
        .parse()
        .unwrap();
    let body_limit = size_in_bytes(env(nginx, "NGINX_CLIENT_MAX_BODY_SIZE").unwrap());
    assert!(
        body_limit >= blobproxy::domain::base64_len(max_blob) + 16 * 1024,
        "{file}: nginx body limit {body_limit} is below a {max_blob}-byte blob in base64"
    );
    let template =
        std::fs::read_to_string(repo("nginx/templates/blobproxy.conf.template")).unwrap();
    for var in template
        .split("${")
        .skip(1)
        .map(|rest| rest.split('}').next().unwrap())
    {
        assert!(
            env(nginx, var).is_some(),
            "{file}: nginx does not set {var}"
        );
    }

    // Redis keeps acknowledged writes: append-only file, and no policy that evicts keys
    // without a TTL (dirty blobs).
    let command: Vec<&str> = redis["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let after = |flag: &str| {
        command
            .iter()
            .position(|c| *c == flag)
            .map(|i| command[i + 1])
    };
    assert_eq!(
        after("--appendonly"),
        Some("yes"),
        "{file}: Redis without AOF"
    );
    let policy = after("--maxmemory-policy").unwrap_or("noeviction");
    assert!(
        !policy.starts_with("allkeys"),
        "{file}: {policy} evicts blobs not yet in S3"
    );
    assert!(
        redis["volumes"]
            .as_sequence()
            .is_some_and(|v| !v.is_empty()),
        "{file}: Redis data is not on a volume"
    );
    config
}

#[test]
fn compose_file_is_valid_and_matches_the_binary() {
    let config = check_stack("docker-compose.yml", "web");
    let services = &config["services"];
    assert!(services["web"]["deploy"]["replicas"].as_u64().unwrap() >= 2);
    for name in ["redis", "minio", "web"] {
        assert!(
            services[name]["healthcheck"]["test"].is_sequence(),
            "{name} has no healthcheck"
        );
    }
    assert_eq!(
        services["nginx"]["depends_on"]["web"]["condition"],
        "service_healthy"
    );
    assert_eq!(
        services["web"]["depends_on"]["redis"]["condition"],
        "service_healthy"
    );
    assert_eq!(
        services["web"]["depends_on"]["minio"]["condition"],
        "service_healthy"
    );
}

#[test]
fn swarm_file_is_valid_and_matches_the_binary() {
    let config = check_stack("docker-compose-swarm.yml", "tasks.web");
    let services = &config["services"];
    let web = &services["web"];
    assert!(web["deploy"]["replicas"].as_u64().unwrap() >= 2);
    assert!(
        web["deploy"]["update_config"]["parallelism"]
            .as_u64()
            .is_some()
    );
    assert!(web["deploy"]["restart_policy"]["condition"].is_string());
    assert!(web["deploy"]["resources"]["limits"]["memory"].is_string());
    assert_eq!(config["networks"]["blobproxy"]["driver"], "overlay");
    // Credentials come from secrets through the *_FILE variables.
    assert_eq!(
        env(web, "AWS_ACCESS_KEY_ID_FILE"),
        Some("/run/secrets/s3_access_key")
    );
    assert!(
        env(web, "AWS_SECRET_ACCESS_KEY").is_none(),
        "a plain secret in the swarm file"
    );
    assert!(web["secrets"].as_sequence().is_some_and(|s| s.len() == 2));

    // No IPVS needed (the kernel of the test machine has none): every service clients reach by
    // name resolves to its tasks, and nginx's port is each node's own, one nginx per node.
    for name in ["web", "worker", "redis", "minio"] {
        assert_eq!(
            services[name]["deploy"]["endpoint_mode"], "dnsrr",
            "{name} would need a virtual IP"
        );
    }
    let nginx = &services["nginx"];
    assert_eq!(nginx["ports"][0]["mode"], "host");
    assert_eq!(nginx["deploy"]["mode"], "global");
    // A new nginx task cannot bind the node's port while the old one holds it.
    assert_eq!(nginx["deploy"]["update_config"]["order"], "stop-first");
    // The volumes are a node's own: Redis and MinIO stay on the node labelled for the data.
    for name in ["redis", "minio"] {
        assert_eq!(
            services[name]["deploy"]["placement"]["constraints"][0],
            "node.labels.blobproxy.data == true",
            "{name} could move to a node without its volume"
        );
    }
}

#[test]
fn swarm_mesh_override_restores_virtual_ips_and_the_routing_mesh() {
    let config = compose_configs(&["docker-compose-swarm.yml", "docker-compose-swarm.mesh.yml"]);
    let services = &config["services"];
    for name in ["web", "worker", "redis", "minio", "nginx"] {
        assert_eq!(services[name]["deploy"]["endpoint_mode"], "vip", "{name}");
    }
    let nginx = &services["nginx"];
    let ports = nginx["ports"].as_sequence().unwrap();
    assert_eq!(ports.len(), 1, "the override replaces the port: {ports:?}");
    assert_eq!(ports[0]["mode"], "ingress");
    assert_eq!(ports[0]["published"].as_u64(), Some(8000));
    assert_eq!(nginx["deploy"]["mode"], "replicated");
    assert_eq!(nginx["deploy"]["update_config"]["order"], "start-first");
    // The rest of the stack is the shipped file's.
    assert_eq!(
        services["redis"]["deploy"]["placement"]["constraints"][0],
        "node.labels.blobproxy.data == true"
    );
}

#[test]
fn dockerfile_builds_in_stages_and_runs_unprivileged_with_a_healthcheck() {
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    // Base images are build arguments; what a plain `docker build` uses is their defaults.
    let defaults: Vec<(String, &str)> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ARG ")?.split_once('='))
        .map(|(name, value)| (format!("${{{name}}}"), value))
        .collect();
    let from: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .map(|l| {
            defaults
                .iter()
                .fold(l.to_string(), |l, (name, value)| l.replace(name, value))
        })
        .collect();
    assert_eq!(from.len(), 2, "one build and one runtime stage");
    let cargo_toml = std::fs::read_to_string(repo("Cargo.toml")).unwrap();
    let rust_version = cargo_toml
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        from[0].contains(&format!("rust:{rust_version}")),
        "build stage is not on Rust {rust_version}"
    );
    assert!(
        from[1].contains("distroless") || from[1].contains("slim"),
        "runtime stage is not small"
    );
    // Dependencies are built before the sources are copied, so they stay cached.
    let deps_build = lines
        .iter()
        .position(|l| l.contains("cargo build"))
        .unwrap();
    let copy_src = lines
        .iter()
        .position(|l| l.starts_with("COPY src"))
        .unwrap();
    assert!(deps_build < copy_src);
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("no USER");
    let user = user.split(':').next().unwrap();
    assert!(user != "root" && user != "0", "the image runs as {user}");
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("\"healthcheck\"]"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ENTRYPOINT") && l.contains("blobproxy"))
    );
}

#[test]
fn cluster_override_runs_three_masters_with_replicas_and_points_blobproxy_at_them() {
    let config = compose_configs(&["docker-compose.yml", "docker-compose.cluster.yml"]);
    let services = &config["services"];
    let nodes =
        env(&services["web"], "BLOBPROXY_REDIS_CLUSTER_NODES").expect("web in cluster mode");
    assert_eq!(
        env(&services["worker"], "BLOBPROXY_REDIS_CLUSTER_NODES"),
        Some(nodes)
    );
    let nodes: Vec<&str> = nodes.split(',').collect();
    assert_eq!(nodes.len(), 6, "3 masters and 3 replicas: {nodes:?}");
    let init = services["redis-cluster-init"]["command"][0]
        .as_str()
        .unwrap();
    assert!(init.contains("--cluster-replicas 1"), "{init}");
    for node in nodes {
        let address = node.trim_start_matches("redis://");
        let ip = address.split(':').next().unwrap();
        assert!(
            init.contains(address),
            "{address} is not joined by redis-cluster-init"
        );
        let (name, service) = services
            .as_mapping()
            .unwrap()
            .iter()
            .find(|(_, s)| s["networks"]["redis-cluster"]["ipv4_address"].as_str() == Some(ip))
            .unwrap_or_else(|| panic!("no service has {ip}"));
        let name = name.as_str().unwrap();
        let command: Vec<&str> = service["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let after = |flag: &str| {
            command
                .iter()
                .position(|a| *a == flag)
                .map(|i| command[i + 1])
        };
        assert_eq!(service["image"], "redis:7", "{name}");
        assert_eq!(after("--cluster-enabled"), Some("yes"), "{name}");
        assert_eq!(
            after("--appendonly"),
            Some("yes"),
            "{name}: Redis without AOF"
        );
        assert!(
            !after("--maxmemory-policy").unwrap().starts_with("allkeys"),
            "{name}"
        );
        assert!(
            service["volumes"]
                .as_sequence()
                .is_some_and(|v| !v.is_empty()),
            "{name}: Redis data is not on a volume"
        );
    }
    // web waits for the cluster, not for one node.
    assert!(
        services["redis"]["healthcheck"]["test"][1]
            .as_str()
            .unwrap()
            .contains("cluster_state:ok")
    );
    assert_eq!(
        services["web"]["depends_on"]["redis"]["condition"],
        "service_healthy"
    );
}
