//! Switchboard as Heroku runs it: each Procfile line the way a dyno runs it,
//! PostgreSQL requiring TLS, PgBouncer in transaction mode, the connections
//! one web and one worker hold, and the logs Heroku's log stream gets.

mod budget;
mod logs;
mod pgbouncer;
mod procfile;
mod tls;

use std::path::Path;
use std::process::Stdio;

use tempfile::TempDir;
use tokio::process::{Child, Command};

/// An app directory laid out as the Rust buildpack leaves it: the Procfile at
/// the top, the binary at `./target/release/switchboard`, nothing on `PATH`.
pub struct Slug {
    dir: TempDir,
}

impl Slug {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("slug dir");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(repo.join("Procfile"), dir.path().join("Procfile")).expect("copy the Procfile");
        let release = dir.path().join("target/release");
        std::fs::create_dir_all(&release).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_switchboard"), release.join("switchboard")).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The command of the Procfile's `process` line, verbatim.
    pub fn procfile_command(&self, process: &str) -> String {
        let procfile = std::fs::read_to_string(self.path().join("Procfile")).unwrap();
        procfile
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{process}:")))
            .unwrap_or_else(|| panic!("the Procfile has no {process} line:\n{procfile}"))
            .trim()
            .to_owned()
    }

    /// The `process` line run as a dyno runs it: `bash -c` in the app
    /// directory with a clean environment (Heroku's `PATH`, `HOME`, `DYNO`,
    /// the config vars), `.profile.d/*.sh` sourced first when present.
    pub fn dyno(&self, process: &str, config: &[(&str, String)]) -> Command {
        let script =
            format!("for f in .profile.d/*.sh; do [ -e \"$f\" ] && . \"$f\"; done; {}", self.procfile_command(process));
        let mut command = Command::new("/bin/bash");
        command
            .arg("-c")
            .arg(script)
            .current_dir(self.path())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.path())
            .env("DYNO", format!("{process}.1"))
            .envs(config.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Starts the `process` line in the background, its stderr captured.
    pub fn spawn(&self, process: &str, config: &[(&str, String)]) -> Child {
        self.dyno(process, config).stderr(Stdio::piped()).spawn().expect("bash runs")
    }
}

/// The test database's URL with TLS explicitly off (the shared server has none).
pub fn plaintext_url(pool: &sqlx::PgPool) -> String {
    let mut url = url::Url::parse(&crate::support::binary::database_url(pool)).unwrap();
    url.query_pairs_mut().append_pair("sslmode", "disable");
    url.to_string()
}
