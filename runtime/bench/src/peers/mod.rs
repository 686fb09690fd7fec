//! The peer systems: installed from Debian's packages when missing, each started on a
//! loopback port with a temporary data directory, stopped (killed) when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;

pub mod nats;
pub mod redis;

/// A peer server process with its data directory; both go when this is dropped.
#[derive(Debug)]
pub struct Server {
    pub port: u16,
    child: tokio::process::Child,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts `program` with the arguments `args(port, data_dir)` gives for a free
    /// loopback port and a new temporary directory. Another process can take the port
    /// between our probe and the server's bind; then it is tried on another port.
    pub async fn start_on_free_port(
        program: &Path,
        args: impl Fn(u16, &Path) -> Vec<String>,
    ) -> anyhow::Result<Server> {
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            let dir = tempfile::tempdir()?;
            let args = args(port, dir.path());
            match Server::start(program, &args, port, dir).await {
                Ok(server) => return Ok(server),
                Err(e) if attempt >= 3 => return Err(e),
                Err(_) => attempt += 1,
            }
        }
    }

    /// Starts `program args..` (its output goes to `server.log` in `dir`) and waits
    /// until it accepts connections on `port`.
    async fn start(
        program: &Path,
        args: &[String],
        port: u16,
        dir: tempfile::TempDir,
    ) -> anyhow::Result<Server> {
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let child = tokio::process::Command::new(program)
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let mut server = Server { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                // Something listens; make sure it is this server and not another
                // process that took the port first (ours would exit on the bind).
                tokio::time::sleep(Duration::from_millis(100)).await;
                if server.child.try_wait()?.is_none() {
                    return Ok(server);
                }
            }
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!(
                    "{} exited with {status} before listening:\n{}",
                    program.display(),
                    server.log_tail()
                );
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "{} did not listen on port {port} within 15 s:\n{}",
                    program.display(),
                    server.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops the server and removes its data.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A free loopback port (bound and released; the peer binds it right after).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The path of `program`, installing Debian `package` with apt-get if it is missing.
pub fn ensure_installed(program: &str, package: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = find(program) {
        return Ok(path);
    }
    eprintln!("{program} not found: installing Debian's {package} with apt-get");
    let install = || {
        std::process::Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
    };
    let ok = install().is_ok_and(|s| s.success())
        || (std::process::Command::new("apt-get")
            .args(["update", "-qq"])
            .status()
            .is_ok_and(|s| s.success())
            && install().is_ok_and(|s| s.success()));
    match find(program) {
        Some(path) if ok => Ok(path),
        _ => anyhow::bail!(
            "{program} is not installed and `apt-get install {package}` failed \
             (it needs root and Debian's package index); install it, or leave it out \
             with --peers"
        ),
    }
}

fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
