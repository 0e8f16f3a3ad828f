//! A private PostgreSQL cluster the test owns, so it can stop and restart the
//! server without touching the machine's shared one. Built from the machine's
//! binaries (`initdb`, `pg_ctl`), as the `postgres` user when running as root;
//! data under the target directory; removed on drop.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A running (or stopped) private cluster.
#[derive(Debug)]
pub struct PrivateCluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn bin_dir() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    if let Some(dir) = on_path {
        return dir;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").is_file())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().expect("PostgreSQL binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|out| out.stdout.starts_with(b"0\n")).unwrap_or(false)
}

impl PrivateCluster {
    /// Creates and starts a cluster on a free port (trust auth, fsync off).
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let data = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/tmp")
            .join(format!("pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).expect("data dir");
        let cluster = Self { bin: bin_dir(), data, port, as_postgres: is_root() };
        if cluster.as_postgres {
            let status = Command::new("chown").args(["postgres"]).arg(&cluster.data).status().expect("chown");
            assert!(status.success(), "chown postgres {}", cluster.data.display());
        }
        cluster.run("initdb", &["-D", cluster.data_str(), "-U", "postgres", "--auth=trust", "--no-sync"]);
        cluster.start_server();
        cluster
    }

    fn data_str(&self) -> &str {
        self.data.to_str().expect("utf-8 path")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let output = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&program).args(args).output()
        } else {
            Command::new(&program).args(args).output()
        }
        .unwrap_or_else(|error| panic!("run {}: {error}", program.display()));
        assert!(
            output.status.success(),
            "{tool} {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the server (waits until it accepts connections).
    pub fn start_server(&self) {
        let log = self.data.join("postgres.log");
        let options = format!("-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off", self.port, self.data_str());
        self.run("pg_ctl", &["-D", self.data_str(), "-w", "-l", log.to_str().expect("utf-8"), "-o", &options, "start"]);
    }

    /// Stops the server (`fast`: open sessions are terminated, as in a failover).
    pub fn stop_server(&self) {
        self.run("pg_ctl", &["-D", self.data_str(), "-w", "-m", "fast", "stop"]);
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let args = ["-D", self.data_str(), "-m", "immediate", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&pg_ctl).args(args).output()
        } else {
            Command::new(&pg_ctl).args(args).output()
        };
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
