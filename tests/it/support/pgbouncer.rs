//! A PgBouncer of the test's own, in transaction mode as Heroku runs it: a
//! config in a temp dir, a free loopback port, in front of one database of the
//! shared server. Nothing is relaxed for sqlx's sake (no
//! `ignore_startup_parameters`); prepared statements are tracked or not as the
//! test asks. Two binaries: Debian's on `PATH` (1.18 on Debian 12, which cannot
//! track them) and `PGBOUNCER_BIN`, 1.21 or later (`tests/install-pgbouncer`
//! builds one; `tests/run` sets it). Dropped, it is killed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::{Connection, PgPool, Row};
use tempfile::TempDir;

use super::binary::database_url;
use super::throwaway_pg::{free_port, give_to_server_user, running_as_root};
use super::wait_until;

/// Whether PgBouncer keeps each client's named prepared statements apart
/// (`max_prepared_statements`, PgBouncer 1.21 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreparedStatements {
    Tracked,
    Untracked,
}

/// A PgBouncer binary and the (major, minor) version it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub path: PathBuf,
    pub version: (u32, u32),
}

impl Program {
    fn at(path: PathBuf) -> Self {
        let out = Command::new(&path).arg("--version").output().unwrap_or_else(|e| {
            panic!("{} --version runs (tests/run installs Debian's pgbouncer): {e}", path.display())
        });
        let text = String::from_utf8_lossy(&out.stdout);
        let number = text.split_whitespace().nth(1).unwrap_or_else(|| panic!("pgbouncer --version said {text:?}"));
        let mut parts = number.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
        let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        Self { path, version }
    }

    /// `pgbouncer` on `PATH`, else where Debian installs it.
    pub fn debian() -> Self {
        let path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join("pgbouncer"))
            .find(|path| path.exists())
            .unwrap_or_else(|| PathBuf::from("/usr/sbin/pgbouncer"));
        Self::at(path)
    }

    /// `PGBOUNCER_BIN`, else the one on `PATH`; fails, saying how to get one,
    /// when it is older than 1.21.
    pub fn tracking() -> Self {
        let program = std::env::var_os("PGBOUNCER_BIN").map_or_else(Self::debian, |path| Self::at(path.into()));
        assert!(
            program.tracks_prepared_statements(),
            "this test needs PgBouncer 1.21 or later (max_prepared_statements); {} is {}.{} and PGBOUNCER_BIN is {}. \
             tests/run builds one and sets it; by hand: PGBOUNCER_BIN=$(tests/install-pgbouncer) cargo test ...",
            program.path.display(),
            program.version.0,
            program.version.1,
            std::env::var("PGBOUNCER_BIN").map_or("unset".to_owned(), |path| format!("{path:?}")),
        );
        program
    }

    /// Every PgBouncer at hand: Debian's and, when set, `PGBOUNCER_BIN`.
    pub fn installed() -> Vec<Self> {
        let mut programs = vec![Self::debian()];
        if let Some(path) = std::env::var_os("PGBOUNCER_BIN") {
            programs.push(Self::at(path.into()));
        }
        programs.dedup();
        programs
    }

    pub fn tracks_prepared_statements(&self) -> bool {
        self.version >= (1, 21)
    }
}

pub struct PgBouncer {
    pub port: u16,
    database: String,
    dir: TempDir,
    child: Child,
}

impl PgBouncer {
    /// Starts `program` in front of the database `pool` connects to, with
    /// `pool_size` server connections, and waits until it accepts clients.
    pub async fn start(program: &Program, pool: &PgPool, pool_size: u32, prepared: PreparedStatements) -> Self {
        let tracking = match (prepared, program.tracks_prepared_statements()) {
            (PreparedStatements::Tracked, true) => "max_prepared_statements = 100\n",
            (PreparedStatements::Tracked, false) => {
                panic!("tracking prepared statements needs PgBouncer 1.21 or later")
            }
            (PreparedStatements::Untracked, true) => "max_prepared_statements = 0\n",
            (PreparedStatements::Untracked, false) => "",
        };
        let target = url::Url::parse(&database_url(pool)).unwrap();
        let database = target.path().trim_start_matches('/').to_owned();
        let dir = tempfile::tempdir().expect("temp dir for pgbouncer");
        give_to_server_user(dir.path());
        let port = free_port();
        let path = |file: &str| dir.path().join(file).display().to_string();
        let ini = format!(
            "[databases]\n\
             {database} = host={host} port={server_port} dbname={database}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             admin_users = postgres\n\
             auth_file = {users}\n\
             pool_mode = transaction\n\
             default_pool_size = {pool_size}\n\
             max_client_conn = 500\n\
             logfile = {log}\n\
             pidfile = {pid}\n\
             {tracking}",
            host = target.host_str().unwrap(),
            server_port = target.port().unwrap_or(5432),
            users = path("userlist.txt"),
            log = path("pgbouncer.log"),
            pid = path("pgbouncer.pid"),
        );
        std::fs::write(dir.path().join("pgbouncer.ini"), ini).unwrap();
        std::fs::write(dir.path().join("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
        let mut command = Command::new(&program.path);
        if running_as_root() {
            // PgBouncer refuses to run as root; `-u` drops to the server's user.
            command.args(["-u", "postgres"]);
        }
        let child = command
            .arg(dir.path().join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} runs: {e}", program.path.display()));
        let bouncer = Self { port, database, dir, child };
        wait_until(Duration::from_secs(20), "pgbouncer to listen", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await;
        bouncer
    }

    /// The pooled URL, as Heroku's `DATABASE_CONNECTION_POOL_URL`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, self.database)
    }

    /// The `application_name` of every client connected now (the admin
    /// console's `SHOW CLIENTS`).
    pub async fn client_applications(&self) -> Vec<String> {
        let admin = format!("postgres://postgres@127.0.0.1:{}/pgbouncer", self.port);
        let options = admin.parse::<sqlx::postgres::PgConnectOptions>().unwrap().extra_float_digits(None);
        let mut console = sqlx::PgConnection::connect_with(&options).await.expect("pgbouncer's admin console");
        let clients = sqlx::raw_sql("SHOW CLIENTS").fetch_all(&mut console).await.expect("SHOW CLIENTS");
        clients.iter().map(|client| client.get("application_name")).collect()
    }

    /// PgBouncer's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
