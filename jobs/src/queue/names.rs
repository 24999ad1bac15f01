//! Worker names unique per process and per restart: apalis never recovers the
//! jobs of a dead worker whose name is still heartbeating.

/// `{dyno or host}-{pid}-{random}`.
pub fn unique_worker_name() -> String {
    let host = std::env::var("DYNO")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let random: u32 = rand::random();
    format!("{host}-{}-{random:08x}", std::process::id())
}
