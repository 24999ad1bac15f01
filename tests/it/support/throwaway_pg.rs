//! A PostgreSQL server of the test's own, for tests that restart, crash or
//! block the database: `initdb` into a temp dir, a free port, `pg_ctl`. The
//! shared server is never touched. Dropped, it is stopped and its files go.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

/// A running throwaway server (trust auth, user `postgres`, database `test`).
pub struct ThrowawayPg {
    pub port: u16,
    dir: TempDir,
    bin: PathBuf,
}

/// How `pg_ctl stop` ends the server: `Fast` rolls back sessions and
/// checkpoints; `Immediate` is a crash (recovery from the WAL at next start).
#[derive(Debug, Clone, Copy)]
pub enum StopMode {
    Fast,
    Immediate,
}

impl ThrowawayPg {
    /// Starts a fresh cluster; `extra_conf` lines are appended to its
    /// postgresql.conf (e.g. `ssl = on`).
    pub fn start_with(extra_conf: &str) -> Self {
        let bin = server_bin_dir();
        let dir = tempfile::tempdir().expect("temp dir for the cluster");
        give_to_server_user(dir.path());
        let data = dir.path().join("data");
        let initdb = server_command(&bin, "initdb")
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("initdb runs");
        assert!(initdb.status.success(), "initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));
        let port = free_port();
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\nmax_connections = 60\n{extra_conf}\n",
            dir.path().display()
        );
        append(&data.join("postgresql.conf"), &conf);
        let server = Self { port, dir, bin };
        server.pg_ctl_start();
        server.psql("CREATE DATABASE test");
        server
    }

    pub fn start() -> Self {
        Self::start_with("")
    }

    /// `postgres://postgres@127.0.0.1:{port}/test`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/test", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the server the given way and waits until it is down.
    pub fn stop(&self, mode: StopMode) {
        let mode = match mode {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        let status = server_command(&self.bin, "pg_ctl")
            .args(["stop", "-w", "-m", mode, "-D"])
            .arg(self.data_dir())
            .output()
            .expect("pg_ctl stop runs");
        assert!(status.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&status.stderr));
    }

    /// Starts the server again on the same port and data, waiting until it accepts connections.
    pub fn pg_ctl_start(&self) {
        let log = self.dir.path().join("server.log");
        let status = server_command(&self.bin, "pg_ctl")
            .args(["start", "-w", "-t", "60", "-l"])
            .arg(&log)
            .arg("-D")
            .arg(self.data_dir())
            .output()
            .expect("pg_ctl start runs");
        assert!(
            status.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&status.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Restarts the server the given way.
    pub fn restart(&self, mode: StopMode) {
        self.stop(mode);
        self.pg_ctl_start();
    }

    /// Freezes every process of the server (SIGSTOP): connections stay open
    /// and nothing answers, as when the network drops packets. [`thaw`](Self::thaw) ends it.
    pub fn freeze(&self) {
        assert!(self.signal_every_process("STOP"), "could not freeze the server");
    }

    pub fn thaw(&self) {
        assert!(self.signal_every_process("CONT"), "could not thaw the server");
    }

    /// Sends `signal` to the postmaster and its children; false when it could not.
    fn signal_every_process(&self, signal: &str) -> bool {
        let Ok(pid_file) = std::fs::read_to_string(self.data_dir().join("postmaster.pid")) else { return false };
        let Some(postmaster) = pid_file.lines().next().map(|pid| pid.trim().to_owned()) else { return false };
        let children = Command::new("pgrep").args(["-P", &postmaster]).output().map(|o| o.stdout).unwrap_or_default();
        let mut pids: Vec<String> = String::from_utf8_lossy(&children).split_whitespace().map(str::to_owned).collect();
        pids.push(postmaster);
        Command::new("kill").arg(format!("-{signal}")).args(&pids).status().is_ok_and(|s| s.success())
    }

    /// Runs one SQL command through `psql` (as the superuser, database `postgres`).
    pub fn psql(&self, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-Atc", sql, "-p"])
            .arg(self.port.to_string())
            .output()
            .expect("psql runs");
        assert!(output.status.success(), "psql {sql:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for ThrowawayPg {
    fn drop(&mut self) {
        // A frozen server would never hear pg_ctl's stop.
        self.signal_every_process("CONT");
        let _ =
            server_command(&self.bin, "pg_ctl").args(["stop", "-m", "immediate", "-D"]).arg(self.data_dir()).output();
    }
}

/// PostgreSQL refuses to run as root: as root, run its programs as `postgres`.
pub(crate) fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn server_command(bin: &Path, program: &str) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

pub(crate) fn give_to_server_user(dir: &Path) {
    if running_as_root() {
        let status = Command::new("chown").args(["postgres:postgres"]).arg(dir).status().expect("chown runs");
        assert!(status.success(), "chown of {} to postgres failed", dir.display());
    }
}

/// The newest `/usr/lib/postgresql/*/bin` on this machine.
fn server_bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    versions.pop().expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).expect("open postgresql.conf");
    file.write_all(text.as_bytes()).expect("append to postgresql.conf");
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback").local_addr().expect("local addr").port()
}

/// Waits until a connection to `url` succeeds (the server may still be recovering).
pub async fn wait_until_accepting(url: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match sqlx::PgPool::connect(url).await {
            Ok(pool) => return pool.close().await,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "server at {url} not accepting after {limit:?}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
