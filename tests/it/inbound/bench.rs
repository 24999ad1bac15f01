//! `switchboard bench intake` runs end to end (its numbers are not asserted).

use sqlx::PgPool;

use super::world::*;
use crate::support::{binary, migrate, spawn_app_with};

#[sqlx::test(migrations = false)]
async fn bench_intake_drives_signed_webhooks_and_pgbench_and_reports_a_row_per_level(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;

    let output = binary::command(
        &pool,
        &[
            "bench",
            "intake",
            "--url",
            &app.base_url,
            "--concurrency",
            "1,2",
            "--duration",
            "1s",
            "--web-pid",
            &std::process::id().to_string(),
        ],
    )
    .env("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    .env("TWILIO_ACCOUNT_SID", "ACtest")
    .env("PUBLIC_BASE_URL", PUBLIC_BASE)
    .output()
    .await
    .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("requests/s") && stdout.contains("pgbench tps"), "{stdout}");
    assert!(
        stdout.contains("clients 2") && stdout.contains("rate "),
        "a row per level and the fixed-rate run: {stdout}"
    );
    let web_events = count(&pool, "SELECT count(*) FROM webhook_events WHERE dedupe_key LIKE 'status:CA%'").await;
    let web_calls = count(&pool, "SELECT count(*) FROM calls WHERE call_sid LIKE 'CA%' AND status = 'completed'").await;
    assert!(web_events > 0);
    assert_eq!(web_events, web_calls);
    assert!(count(&pool, "SELECT count(*) FROM webhook_events WHERE dedupe_key LIKE 'pgbench:%'").await > 0);
}
