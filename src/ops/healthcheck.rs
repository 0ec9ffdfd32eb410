//! `blobproxy healthcheck`: probes a replica's `/healthz` over plain HTTP/1.0, for the Docker
//! `HEALTHCHECK` of an image that has no curl or wget.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(clap::Args, Debug)]
pub struct HealthcheckArgs {
    /// Address the replica listens on; an unspecified IP (0.0.0.0) is probed on loopback.
    #[arg(long, env = "BLOBPROXY_BIND", default_value = "0.0.0.0:8080")]
    pub bind: SocketAddr,

    /// Path to probe.
    #[arg(long, default_value = "/healthz")]
    pub path: String,
}

/// Succeeds when the replica answers 200 within 3 seconds.
pub async fn probe(args: &HealthcheckArgs) -> anyhow::Result<()> {
    let mut target = args.bind;
    if target.ip().is_unspecified() {
        target.set_ip(if target.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let request = format!("GET {} HTTP/1.0\r\nHost: {target}\r\n\r\n", args.path);
    let status_line = tokio::time::timeout(Duration::from_secs(3), async {
        let mut stream = tokio::net::TcpStream::connect(target).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut head = vec![0u8; 64];
        let n = stream.read(&mut head).await?;
        head.truncate(n);
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&head).into_owned())
    })
    .await
    .with_context(|| format!("no answer from {target} within 3 s"))?
    .with_context(|| format!("cannot reach {target}"))?;
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        bail!(
            "{target}{} answered {:?}",
            args.path,
            status_line.lines().next().unwrap_or("")
        );
    }
    Ok(())
}
