//! Each Procfile line, verbatim, the way a dyno runs it, on a fresh database:
//! release migrates, web answers `/readyz`, worker runs jobs.

use std::time::Duration;

use sqlx::PgPool;
use switchboard_jobs::noop::Noop;
use switchboard_jobs::queue;

use super::{Slug, plaintext_url};
use crate::support::moto::Moto;
use crate::support::{job_state, wait_until};

#[sqlx::test(migrations = false)]
async fn each_procfile_line_runs_on_a_dyno_release_migrates_web_answers_worker_works(pool: PgPool) {
    let slug = Slug::new();
    let moto = Moto::start().await;
    moto.store("recordings").await;
    let port = crate::support::throwaway_pg::free_port();
    let config = [
        ("DATABASE_URL", plaintext_url(&pool)),
        ("PORT", port.to_string()),
        ("RECORDING_STORAGE", "s3".to_owned()),
        ("S3_BUCKET", "recordings".to_owned()),
        ("S3_REGION", "ap-south-1".to_owned()),
        ("S3_ENDPOINT", moto.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("WORKER_POLL_INTERVAL", "100ms".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];

    let release = slug.dyno("release", &config).output().await.unwrap();
    assert!(release.status.success(), "release failed: {}", String::from_utf8_lossy(&release.stderr));
    assert!(switchboard::db::is_migrated(&pool).await.unwrap(), "release migrated everything");

    let _web = slug.spawn("web", &config);
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let client = reqwest::Client::new();
    wait_until(Duration::from_secs(30), "the web dyno to answer /readyz with 200", || async {
        client.get(&readyz).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;

    let _worker = slug.spawn("worker", &config);
    let mut conn = pool.acquire().await.unwrap();
    let id = queue::enqueue(&mut conn, &Noop::default()).await.unwrap().expect("a new job");
    wait_until(Duration::from_secs(30), "the worker dyno to finish the job", || async {
        job_state(&pool, &id).await == "done"
    })
    .await;
}
