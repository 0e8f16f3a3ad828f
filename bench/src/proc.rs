//! Service processes under measurement: start, wait for health, CPU time and
//! resident memory from /proc.

use std::{
    net::SocketAddr,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use service_kit::probe::ServingStatus;
use tokio::process::{Child, Command};

/// A free 127.0.0.1 port.
pub(crate) fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port")
}

/// A running process of ours.
#[derive(Debug)]
pub(crate) struct Proc {
    /// What it is.
    pub(crate) name: &'static str,
    child: Child,
}

impl Proc {
    /// Starts `program` with `env`, logging to `log`, and waits until its
    /// gRPC health says SERVING.
    pub(crate) async fn start(
        name: &'static str,
        program: &Path,
        args: &[&str],
        env: &[(&str, String)],
        addr: SocketAddr,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let log_file = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", program.display()))?;
        let started = Instant::now();
        loop {
            let status = service_kit::probe::check(addr, Duration::from_secs(1)).await;
            if status == Ok(ServingStatus::Serving) {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "{name} did not become healthy; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self { name, child })
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix(field)?.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Resident memory now, in MiB.
    pub(crate) fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS:") as f64 / 1024.0
    }

    /// Peak resident memory since the last [`Proc::reset_peak`], in MiB.
    pub(crate) fn peak_mib(&self) -> f64 {
        self.status_kib("VmHWM:") as f64 / 1024.0
    }

    /// Resets the peak resident memory counter.
    pub(crate) fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// CPU seconds (user + system) used so far.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.pid())
    }

    /// Its process id.
    pub(crate) fn id(&self) -> u32 {
        self.pid()
    }
}

/// CPU seconds used by process `pid` (all threads).
pub(crate) fn cpu_seconds_of(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name (which may contain spaces) start at ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line (11 and 12 after ')').
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Resident memory and peak of this process, in MiB.
pub(crate) fn own_memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets this process's peak resident memory counter.
pub(crate) fn reset_own_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU seconds used so far by `pid`, its exited children (PostgreSQL
/// backends of finished sessions) and its live children.
pub(crate) fn cpu_seconds_of_tree(pid: u32) -> f64 {
    let reaped = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let fields: Vec<f64> =
                stat.rsplit_once(')')?.1.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
            // cutime and cstime: fields 16 and 17 of the line (13 and 14 after ')').
            Some((fields.get(13)? + fields.get(14)?) / clock_ticks())
        })
        .unwrap_or(0.0);
    let mut total = cpu_seconds_of(pid) + reaped;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
            let parent =
                stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if parent == Some(pid) {
                total += cpu_seconds_of(child);
            }
        }
    }
    total
}

/// The postmaster's pid of a cluster's data directory.
pub(crate) fn postmaster_pid(data_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()
}
