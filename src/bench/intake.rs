//! `switchboard bench intake`: signed Twilio status webhooks driven at a
//! running web process at rising concurrency (requests/s, p50/p99 latency, the
//! web's peak RSS under load), beside pgbench running the same inserts in one
//! transaction per webhook: the database's own ceiling at the same
//! concurrency; then at a fixed rate of half the best level's (open loop: a
//! request every 1/rate s whatever the answers do), for latency below
//! saturation; then, with `--overload`, at several times the best level's
//! rate: how many requests the web shed (503), the p99 of those it accepted
//! and its peak memory. Every level also reports the connection attempts the
//! machine's listen queues dropped (each costs its client a 1 s SYN
//! retransmit) and the load generator's own CPU: near a whole core, its own
//! queueing is in the latencies.
//!
//! The open-loop levels send each webhook on a connection of its own (as
//! webhooks from many senders arrive), written and read by hand: at ten times
//! the web's best rate, a general HTTP client opening a connection per
//! request cost the load generator more CPU than the web spent answering, and
//! its own queueing showed up as the web's latency. Run it with
//! the web's environment (`DATABASE_URL`, `TWILIO_*`, `PUBLIC_BASE_URL`)
//! against a database meant for benchmarks: every request stores a new call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use secrecy::ExposeSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{DatabaseConfig, TwilioConfig};
use crate::providers::twilio::RequestValidator;

#[derive(Debug, Args)]
pub struct IntakeArgs {
    /// The running web process.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent clients, one level after another.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,32")]
    concurrency: Vec<usize>,
    /// How long each level runs.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The web process's pid, to report its peak resident memory under load.
    #[arg(long)]
    web_pid: Option<u32>,
    /// Share of the best level's rate for the fixed-rate run (0 skips it).
    #[arg(long, default_value_t = 0.5)]
    fixed_rate_share: f64,
    /// Skip the pgbench comparison.
    #[arg(long)]
    no_pgbench: bool,
    /// Multiples of the best level's rate to offer open loop, far beyond what
    /// the web can take (e.g. `--overload 10`).
    #[arg(long, value_delimiter = ',')]
    overload: Vec<f64>,
}

/// A client gives up on a request after this (Twilio: 15 s).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What became of one request.
enum Answer {
    Accepted(Duration),
    /// 503: the web refused it to stay responsive.
    Shed,
    /// Anything else: an error status, a reset, a client timeout.
    Failed,
}

/// One level's outcome.
struct Level {
    /// `clients N`, or `rate R/s` for the fixed-rate run.
    load: String,
    ok: usize,
    shed: usize,
    failed: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    rss_kib: Option<u64>,
    /// Connection attempts dropped by a full listen queue, whole machine.
    listen_overflows: Option<u64>,
    /// The generator's CPU time over the level's wall time (1.0: one core).
    generator_cpu: Option<f64>,
    pgbench_tps: Option<f64>,
}

pub async fn run(args: IntakeArgs) -> anyhow::Result<()> {
    let twilio = TwilioConfig::from_env()?.context("set TWILIO_AUTH_TOKEN (and the web's other TWILIO_* settings)")?;
    let database_url = DatabaseConfig::from_env()?.url.expose_secret().to_owned();
    let sender = Arc::new(Sender::new(&args.url, &twilio, args.concurrency.iter().copied().max().unwrap_or(1)).await?);
    let mut levels = Vec::new();
    for &concurrency in &args.concurrency {
        let mut level = measured(args.web_pid, closed_loop(&sender, concurrency, args.duration)).await;
        if !args.no_pgbench {
            level.pgbench_tps = Some(pgbench(&database_url, concurrency, args.duration).await?);
        }
        levels.push(level);
    }
    let best = levels.iter().map(|l| l.per_second).fold(0.0, f64::max);
    let shares = (args.fixed_rate_share > 0.0).then_some(args.fixed_rate_share).into_iter().chain(args.overload);
    for share in shares.filter(|_| best > 0.0) {
        let mut level = measured(args.web_pid, open_loop(&sender, best * share, args.duration)).await;
        level.load = format!("{share}x best: {}", level.load);
        levels.push(level);
    }
    println!("{}", report(&levels));
    Ok(())
}

/// Runs `load` while sampling the web's resident memory every 100 ms (the
/// peak), and counts the listen-queue drops and the generator's CPU over it.
async fn measured<F: std::future::Future<Output = Level>>(pid: Option<u32>, load: F) -> Level {
    let (overflows_before, cpu_before, started) = (listen_overflows(), own_cpu_time(), Instant::now());
    let mut load = std::pin::pin!(load);
    let mut peak = pid.and_then(resident_kib);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut level = loop {
        tokio::select! {
            level = &mut load => break level,
            _ = tick.tick() => peak = peak.max(pid.and_then(resident_kib)),
        }
    };
    level.rss_kib = peak.max(pid.and_then(resident_kib));
    level.listen_overflows =
        listen_overflows().zip(overflows_before).map(|(after, before)| after.saturating_sub(before));
    level.generator_cpu = own_cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before).as_secs_f64() / started.elapsed().as_secs_f64());
    level
}

/// Posts signed status webhooks, each for a call never seen before.
struct Sender {
    client: reqwest::Client,
    target: String,
    /// The web's address, for requests sent on connections of their own.
    address: SocketAddr,
    signed_url: String,
    validator: RequestValidator,
    next_call: AtomicU64,
}

impl Sender {
    async fn new(url: &str, twilio: &TwilioConfig, connections: usize) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url).with_context(|| format!("--url {url}"))?;
        let host = parsed.host_str().context("--url has no host")?;
        let port = parsed.port_or_known_default().context("--url has no port")?;
        let address = tokio::net::lookup_host((host, port)).await?.next().context("--url does not resolve")?;
        Ok(Self {
            client: reqwest::Client::builder().pool_max_idle_per_host(connections).timeout(CLIENT_TIMEOUT).build()?,
            target: format!("{}/webhooks/twilio/status", url.trim_end_matches('/')),
            address,
            signed_url: format!("{}/webhooks/twilio/status", twilio.public_base_url),
            validator: RequestValidator::new(twilio.auth_token.expose_secret()),
            next_call: AtomicU64::new(rand::random::<u32>() as u64 * 1_000_000),
        })
    }

    /// The next webhook: a call never seen before, signed.
    fn next_webhook(&self) -> (String, String) {
        let sid = format!("CA{:032x}", self.next_call.fetch_add(1, Ordering::Relaxed));
        let params: Vec<(String, String)> =
            [("CallSid", sid.as_str()), ("CallStatus", "completed"), ("SequenceNumber", "0")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let signature = self.validator.signature(&self.signed_url, &params);
        let body = params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        (signature, body)
    }

    /// One webhook through the pooled client, and what became of it.
    async fn send(&self) -> Answer {
        let (signature, body) = self.next_webhook();
        let sent = Instant::now();
        let response = self
            .client
            .post(&self.target)
            .header("X-Twilio-Signature", signature)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        match response.map(|r| r.status()) {
            Ok(status) if status.is_success() => Answer::Accepted(sent.elapsed()),
            Ok(reqwest::StatusCode::SERVICE_UNAVAILABLE) => Answer::Shed,
            _ => Answer::Failed,
        }
    }

    /// One webhook on a connection of its own (`Connection: close`), timed
    /// from before the connect to the end of the answer.
    async fn send_alone(&self) -> Answer {
        let (signature, body) = self.next_webhook();
        let request = format!(
            "POST /webhooks/twilio/status HTTP/1.1\r\nHost: {}\r\nX-Twilio-Signature: {signature}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        );
        let sent = Instant::now();
        let exchange = async {
            let mut stream = TcpStream::connect(self.address).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut answer = Vec::with_capacity(512);
            stream.read_to_end(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        match tokio::time::timeout(CLIENT_TIMEOUT, exchange).await {
            Ok(Ok(answer)) if answer.starts_with(b"HTTP/1.1 2") => Answer::Accepted(sent.elapsed()),
            Ok(Ok(answer)) if answer.starts_with(b"HTTP/1.1 503") => Answer::Shed,
            _ => Answer::Failed,
        }
    }
}

/// `concurrency` clients, each sending its next webhook as soon as the last is answered.
async fn closed_loop(sender: &Arc<Sender>, concurrency: usize, duration: Duration) -> Level {
    let started = Instant::now();
    let clients = (0..concurrency).map(|_| {
        let sender = sender.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while started.elapsed() < duration {
                answers.push(sender.send().await);
            }
            answers
        })
    });
    let answers = futures::future::join_all(clients).await.into_iter().flatten().flatten().collect();
    Level::of(format!("clients {concurrency}"), answers, started.elapsed())
}

/// A webhook every `1 / rate` seconds for `duration`, however slowly they are answered.
async fn open_loop(sender: &Arc<Sender>, rate: f64, duration: Duration) -> Level {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut requests = tokio::task::JoinSet::new();
    while started.elapsed() < duration {
        tick.tick().await;
        let sender = sender.clone();
        requests.spawn(async move { sender.send_alone().await });
    }
    let answers = requests.join_all().await;
    Level::of(format!("rate {rate:.0}/s"), answers, started.elapsed())
}

impl Level {
    fn of(load: String, answers: Vec<Answer>, elapsed: Duration) -> Self {
        let count = |wanted: fn(&Answer) -> bool| answers.iter().filter(|a| wanted(a)).count();
        let (shed, failed) = (count(|a| matches!(a, Answer::Shed)), count(|a| matches!(a, Answer::Failed)));
        let mut latencies: Vec<Duration> =
            answers.into_iter().filter_map(|a| if let Answer::Accepted(at) = a { Some(at) } else { None }).collect();
        latencies.sort_unstable();
        let percentile = |p: f64| {
            latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1))).copied()
        };
        Self {
            load,
            ok: latencies.len(),
            shed,
            failed,
            per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: percentile(0.50).unwrap_or_default(),
            p99: percentile(0.99).unwrap_or_default(),
            rss_kib: None,
            listen_overflows: None,
            generator_cpu: None,
            pgbench_tps: None,
        }
    }
}

/// What the status webhook writes, as one pgbench transaction.
const PGBENCH_SCRIPT: &str = r#"\set n random(1, 2000000000)
BEGIN;
INSERT INTO webhook_events (provider, endpoint, dedupe_key, call_sid, headers, query, body)
  VALUES ('twilio', 'status', 'pgbench:' || :client_id || ':' || :n || ':0', 'PB' || :client_id || 'x' || :n,
          '{"content-type": "application/x-www-form-urlencoded"}', '', 'CallSid=PB&CallStatus=completed&SequenceNumber=0')
  ON CONFLICT (provider, dedupe_key) DO NOTHING;
INSERT INTO calls (provider, call_sid, direction, status) VALUES ('twilio', 'PB' || :client_id || 'x' || :n, 'inbound', 'completed')
  ON CONFLICT (provider, call_sid) DO UPDATE SET from_number = COALESCE(calls.from_number, EXCLUDED.from_number);
UPDATE calls SET status = 'completed', last_sequence = 0, ended_at = now(), updated_at = now()
  WHERE provider = 'twilio' AND call_sid = 'PB' || :client_id || 'x' || :n AND 0 > last_sequence;
WITH released AS (UPDATE calls SET agent_released_at = now()
    WHERE provider = 'twilio' AND call_sid = 'PB' || :client_id || 'x' || :n AND agent_id IS NOT NULL AND agent_released_at IS NULL
    RETURNING agent_id)
  UPDATE agents SET current_calls = current_calls - 1 FROM released WHERE agents.id = released.agent_id;
COMMIT;
"#;

/// pgbench's transactions per second for the script at `clients` clients.
async fn pgbench(database_url: &str, clients: usize, duration: Duration) -> anyhow::Result<f64> {
    let script = tempfile_path()?;
    tokio::fs::write(&script, PGBENCH_SCRIPT).await?;
    let output = tokio::process::Command::new("pgbench")
        .args(["-n", "-f"])
        .arg(&script)
        .args(["-c", &clients.to_string(), "-j", &clients.min(8).to_string()])
        .args(["-T", &duration.as_secs().max(1).to_string()])
        .arg(database_url)
        .output()
        .await
        .context("pgbench could not be started (is it installed?)")?;
    let _ = tokio::fs::remove_file(&script).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("pgbench failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("tps = ").and_then(|rest| rest.split_whitespace().next()?.parse().ok()))
        .with_context(|| format!("no tps in pgbench's output:\n{stdout}"))
}

fn tempfile_path() -> anyhow::Result<std::path::PathBuf> {
    Ok(std::env::temp_dir().join(format!("switchboard-intake-{}.sql", std::process::id())))
}

/// Connection attempts the whole machine dropped so far because a listen
/// queue was full (`ListenOverflows` in /proc/net/netstat, Linux).
fn listen_overflows() -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut tcp_ext = netstat.lines().filter(|line| line.starts_with("TcpExt:"));
    let (names, values) = (tcp_ext.next()?, tcp_ext.next()?);
    let at = names.split_whitespace().position(|name| name == "ListenOverflows")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// CPU time used so far by this process's live threads (Linux schedstat, ns).
fn own_cpu_time() -> Option<Duration> {
    let mut nanos = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let schedstat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        nanos += schedstat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(nanos))
}

/// `VmRSS` of `pid`, in KiB (Linux).
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn report(levels: &[Level]) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header([
        "load",
        "ok",
        "shed (503)",
        "failed",
        "requests/s",
        "p50 ms (accepted)",
        "p99 ms (accepted)",
        "pgbench tps",
        "web/pgbench",
        "web peak RSS MiB",
        "listen overflows (machine)",
        "generator CPU %",
    ]);
    for level in levels {
        let ratio = level.pgbench_tps.map(|tps| format!("{:.0}%", 100.0 * level.per_second / tps));
        table.add_row([
            level.load.clone(),
            level.ok.to_string(),
            level.shed.to_string(),
            level.failed.to_string(),
            format!("{:.0}", level.per_second),
            format!("{:.2}", level.p50.as_secs_f64() * 1000.0),
            format!("{:.2}", level.p99.as_secs_f64() * 1000.0),
            level.pgbench_tps.map_or_else(|| "-".into(), |tps| format!("{tps:.0}")),
            ratio.unwrap_or_else(|| "-".into()),
            level.rss_kib.map_or_else(|| "-".into(), |kib| format!("{:.1}", kib as f64 / 1024.0)),
            level.listen_overflows.map_or_else(|| "-".into(), |dropped| dropped.to_string()),
            level.generator_cpu.map_or_else(|| "-".into(), |share| format!("{:.0}", share * 100.0)),
        ]);
    }
    table
}
