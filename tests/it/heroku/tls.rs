//! On a dyno TLS to the database is required: against a throwaway server that
//! accepts only TLS (self-signed certificate, as Heroku Postgres) the web
//! connects; against one without TLS web and worker refuse to start, unless
//! the URL says otherwise.

use std::process::Command;
use std::time::Duration;

use super::Slug;
use crate::support::throwaway_pg::{StopMode, ThrowawayPg, free_port};
use crate::support::wait_until;

/// A throwaway server with a fresh self-signed certificate whose `pg_hba.conf`
/// lets TCP clients in only over TLS.
fn server_requiring_tls() -> ThrowawayPg {
    let server = ThrowawayPg::start();
    let data = server.data_dir();
    let openssl = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(data.join("server.key"))
        .arg("-out")
        .arg(data.join("server.crt"))
        .output()
        .expect("openssl runs");
    assert!(openssl.status.success(), "openssl: {}", String::from_utf8_lossy(&openssl.stderr));
    for file in ["server.key", "server.crt"] {
        let path = data.join(file);
        assert!(Command::new("chmod").arg("600").arg(&path).status().unwrap().success());
        let _ = Command::new("chown").arg("postgres:postgres").arg(&path).status();
    }
    let hba = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
    let hba: String =
        hba.lines().map(|line| line.replacen("host ", "hostssl ", 1)).map(|line| line + "\n").collect::<String>();
    std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
    let conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
    std::fs::write(data.join("postgresql.conf"), conf + "ssl = on\n").unwrap();
    server.restart(StopMode::Fast);
    server
}

fn web_config(url: String, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", url),
        ("PORT", port.to_string()),
        ("RECORDING_STORAGE", "s3".to_owned()),
        ("S3_BUCKET", "recordings".to_owned()),
        ("S3_REGION", "ap-south-1".to_owned()),
        ("S3_ENDPOINT", "http://127.0.0.1:9".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
}

#[tokio::test]
async fn on_a_dyno_release_and_web_connect_to_a_database_that_accepts_only_tls() {
    let server = server_requiring_tls();
    let plaintext = sqlx::PgPool::connect(&format!("{}?sslmode=disable", server.url())).await;
    assert!(plaintext.is_err(), "the server must refuse plaintext for this test to mean anything");

    let slug = Slug::new();
    let port = free_port();
    let config = web_config(server.url(), port);
    let release = slug.dyno("release", &config).output().await.unwrap();
    assert!(release.status.success(), "release over TLS: {}", String::from_utf8_lossy(&release.stderr));

    let _web = slug.spawn("web", &config);
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let client = reqwest::Client::new();
    wait_until(Duration::from_secs(30), "the web dyno to be ready over TLS", || async {
        client.get(&readyz).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let plaintext_clients = server.psql(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
         WHERE client_addr IS NOT NULL AND NOT ssl",
    );
    assert_eq!(plaintext_clients, "0");
}

#[tokio::test]
async fn on_a_dyno_web_and_worker_refuse_to_start_when_the_database_has_no_tls_unless_the_url_says_so() {
    let server = ThrowawayPg::start();
    let slug = Slug::new();

    for process in ["web", "worker"] {
        let refused = tokio::time::timeout(
            Duration::from_secs(30),
            slug.dyno(process, &web_config(server.url(), free_port())).output(),
        )
        .await
        .unwrap_or_else(|_| panic!("the {process} exits instead of running"))
        .unwrap();
        assert!(!refused.status.success(), "{process}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("refused TLS") && stderr.contains("sslmode"), "{process}: {stderr}");
    }

    let port = free_port();
    let _web = slug.spawn("web", &web_config(format!("{}?sslmode=disable", server.url()), port));
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    let client = reqwest::Client::new();
    wait_until(Duration::from_secs(30), "the web to start with TLS explicitly off", || async {
        client.get(&healthz).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
}
