//! The console in a real browser: Debian's chromium driven by Playwright
//! (`tests/browser/console.mjs`) against a web and workers over a database a
//! demo run filled. Needs chromium and `npm ci` in tests/browser (tests/run
//! installs both), so it is ignored in a plain `cargo test`:
//! `cargo test --test it console::browser -- --ignored`. Screenshots of each
//! page land in target/console-screenshots/.

use std::path::Path;
use std::sync::Arc;

use sqlx::PgPool;
use switchboard::storage::{LocalDir, RecordingStorage};
use switchboard::web::AppState;
use switchboard_jobs::ports::Ports;

use crate::support::{API_TOKEN, Workers, migrate, serve_state};

/// Two seconds of a 440 Hz tone, 8 kHz 16-bit mono PCM in a WAV container:
/// audio chromium really decodes and plays.
fn tone_wav() -> Vec<u8> {
    let rate = 8000u32;
    let samples: Vec<i16> = (0..rate * 2)
        .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / f64::from(rate)).sin() * 8000.0) as i16)
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        wav.extend_from_slice(&sample.to_le_bytes());
    }
    wav
}

#[sqlx::test(migrations = false)]
#[ignore = "needs chromium and tests/browser/node_modules: tests/run installs them"]
async fn an_operator_works_the_console_in_chromium(pool: PgPool) {
    migrate(&pool).await;
    let dir = tempfile::tempdir().unwrap();
    super::demo_run(&pool, dir.path()).await;

    // The simulated recordings are marked bytes, not audio: give one call a real one.
    let (call_sid, key, text): (String, String, String) = sqlx::query_as(
        "SELECT r.call_sid, r.storage_key, t.text FROM recordings r JOIN transcripts t ON t.recording_id = r.id
         JOIN calls c ON c.call_sid = r.call_sid
         WHERE r.status = 'stored' AND t.status = 'transcribed' ORDER BY r.id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("the demo transcribed a call");
    let wav = tone_wav();
    std::fs::write(dir.path().join(&key), &wav).unwrap();
    sqlx::query("UPDATE recordings SET content_type = 'audio/wav', bytes = $2 WHERE storage_key = $1")
        .bind(&key)
        .bind(wav.len() as i64)
        .execute(&pool)
        .await
        .unwrap();
    let search = text
        .split(|c: char| !c.is_alphabetic())
        .find(|word| word.len() >= 6)
        .expect("the transcript has a long word")
        .to_owned();

    let dead = super::dead_noop(&pool, "simulated outage").await;

    let registry = switchboard_jobs::registry().only(&["noop".to_owned()]).unwrap();
    let workers = Workers::start(&pool, registry, Ports::default());
    let storage = Arc::new(RecordingStorage::Local(LocalDir::new(dir.path())));
    let app = serve_state(&pool, AppState::new(pool.clone(), vec![API_TOKEN.into()]).with_recordings(storage)).await;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new("node")
        .arg("tests/browser/console.mjs")
        .current_dir(root)
        .env("BASE_URL", &app.base_url)
        .env("TOKEN", API_TOKEN)
        .env("DEAD_JOB", &dead)
        .env("CALL_SID", &call_sid)
        .env("SEARCH", &search)
        .env("PAUSE_KIND", "noop")
        .env("SCREENSHOTS", root.join("target/console-screenshots"))
        .output()
        .await
        .expect("node runs");
    workers.stop().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(output.status.success(), "the browser test failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(crate::support::job_state(&pool, &dead).await, "done");
}
