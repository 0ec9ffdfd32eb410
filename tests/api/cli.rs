//! The binary's start-up contract: help text and configuration errors that name the variable.

use std::process::Command;

fn blobproxy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_blobproxy"))
}

#[test]
fn help_documents_every_setting_and_its_variable() {
    for sub in ["serve", "worker", "all"] {
        let out = blobproxy().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        for var in [
            "BLOBPROXY_BIND",
            "BLOBPROXY_REDIS_URL",
            "BLOBPROXY_S3_ENDPOINT",
            "BLOBPROXY_S3_BUCKET",
            "BLOBPROXY_S3_REGION",
            "BLOBPROXY_MAX_BLOB_BYTES",
            "BLOBPROXY_CACHE_TTL_SECS",
        ] {
            assert!(help.contains(var), "`{sub} --help` does not mention {var}");
        }
    }
}

#[test]
fn bad_settings_stop_start_up_with_an_error_naming_the_variable() {
    for (var, value) in [
        ("BLOBPROXY_MAX_BLOB_BYTES", "0"),
        ("BLOBPROXY_MAX_BLOB_BYTES", "lots"),
        ("BLOBPROXY_CACHE_TTL_SECS", "0"),
        ("BLOBPROXY_CACHE_TTL_SECS", "soon"),
        ("BLOBPROXY_WORKER_POLL_MS", "5ms"),
        ("BLOBPROXY_S3_BUCKET", "Bad_Bucket"),
        ("BLOBPROXY_REDIS_URL", "http://nope"),
        ("BLOBPROXY_BIND", "not an address"),
        ("BLOBPROXY_S3_ENDPOINT", "ftp://x"),
        ("BLOBPROXY_WORKER_NICE", "25"),
        ("BLOBPROXY_WORKER_THREADS", "0"),
    ] {
        let out = blobproxy().arg("serve").env(var, value).output().unwrap();
        assert!(!out.status.success(), "{var}={value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let named = stderr.contains(var)
            || stderr.contains(&format!(
                "--{}",
                var.trim_start_matches("BLOBPROXY_")
                    .to_lowercase()
                    .replace('_', "-")
            ));
        assert!(
            named,
            "{var}={value}: error does not name the setting: {stderr}"
        );
    }
}
