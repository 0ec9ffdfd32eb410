//! Parsing and validating the settings: defaults, units, errors that name the variable.

use std::time::Duration;

use super::Settings;

/// Settings from flags alone (the environment ignored), as `blobproxy serve` reads them.
fn parse(flags: &[&str]) -> Result<Settings, String> {
    Settings::from_flags(flags)
}

#[test]
fn the_defaults_are_valid_and_durations_and_sizes_take_units_or_bare_integers() {
    Settings::defaults().validate().unwrap();
    let settings = parse(&[
        "--cache-ttl-secs",
        "2h",
        "--max-blob-bytes",
        "32MiB",
        "--redis-replica-ack-timeout-ms",
        "1500",
        "--worker-poll-ms",
        "1s",
        "--wc-timeout-secs",
        "30",
    ])
    .unwrap();
    settings.validate().unwrap();
    assert_eq!(settings.redis.cache_ttl, Duration::from_secs(7200));
    assert_eq!(settings.server.max_blob_bytes, 32 * 1024 * 1024);
    assert_eq!(
        settings.redis.replica_ack_timeout,
        Duration::from_millis(1500)
    );
    assert_eq!(settings.worker.poll, Duration::from_secs(1));
    assert_eq!(settings.server.wc_timeout, Duration::from_secs(30));
}

#[test]
fn bad_values_name_their_variable() {
    assert!(parse(&["--cache-ttl-secs", "soon"]).is_err());
    for (flags, variable) in [
        (
            &["--cache-ttl-secs", "1500ms"][..],
            "BLOBPROXY_CACHE_TTL_SECS",
        ),
        (&["--worker-poll-ms", "5ms"][..], "BLOBPROXY_WORKER_POLL_MS"),
        (&["--body-idle-secs", "10m"][..], "BLOBPROXY_BODY_IDLE_SECS"),
        (
            &["--max-blob-bytes", "1GiB"][..],
            "BLOBPROXY_MAX_BLOB_BYTES",
        ),
    ] {
        let error = parse(flags).unwrap().validate().unwrap_err().to_string();
        assert!(error.contains(variable), "{flags:?}: {error}");
    }
}

#[test]
fn redis_modes_and_tls_files_that_cannot_go_together_are_refused() {
    for (flags, says) in [
        (
            &[
                "--redis-sentinels",
                "127.0.0.1:26379",
                "--redis-cluster-nodes",
                "redis://a:1",
            ][..],
            "BLOBPROXY_REDIS_SENTINELS and BLOBPROXY_REDIS_CLUSTER_NODES exclude each other",
        ),
        (
            &["--redis-ca-file", "/ca.pem"][..],
            "BLOBPROXY_REDIS_CA_FILE and BLOBPROXY_REDIS_CLIENT_*_FILE take effect only with TLS",
        ),
        (
            &[
                "--redis-url",
                "rediss://r:6380",
                "--redis-client-key-file",
                "/k.pem",
            ][..],
            "BLOBPROXY_REDIS_CLIENT_CERT_FILE and BLOBPROXY_REDIS_CLIENT_KEY_FILE go together",
        ),
    ] {
        let error = parse(flags).unwrap().validate().unwrap_err().to_string();
        assert!(error.contains(says), "{flags:?}: {error}");
    }
    let sentinels = parse(&["--redis-sentinels", "10.0.0.1:26379,10.0.0.2:26379"]).unwrap();
    let target = sentinels.redis_target();
    let super::RedisServers::Sentinel(watched) = target.servers else {
        panic!("{target:?}");
    };
    assert_eq!(watched.addresses, ["10.0.0.1:26379", "10.0.0.2:26379"]);
    assert_eq!(watched.master, "mymaster");
}
