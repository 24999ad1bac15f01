//! Every environment variable the processes read, documented where it is read.
//! Missing or malformed values fail at start with a message naming the variable.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `postgres://postgres@127.0.0.1:5432/switchboard` | PostgreSQL itself: migrations, LISTEN, the queue's own pool |
//! | `DATABASE_CONNECTION_POOL_URL` | (none: everything on `DATABASE_URL`) | PgBouncer in transaction mode (Heroku's name for it), for the web's, the job handlers' and `jobs`' queries; it must track prepared statements (PgBouncer 1.21+), checked at start |
//! | `DATABASE_MAX_CONNECTIONS` | per process: web 5, worker 6 (its job handlers), `jobs` 2, `migrate` 1 | the process's application pool (see docs/deploy-heroku.md for the whole budget) |
//! | `PGSSLMODE` | `require` on a dyno, else `prefer` | TLS to the database; the URL's own `sslmode=` wins over both |
//! | `DYNO` | (set by Heroku) | on a dyno: TLS to the database is required and `RECORDING_STORAGE=local` is refused |
//! | `PORT` | 8080 | web listen port |
//! | `API_TOKENS` | (none: API closed) | comma-separated bearer tokens for `/api/*`, each at least 32 characters |
//! | `BODY_LIMIT_BYTES` | 1048576 | largest request body the web accepts (413 above) |
//! | `LOG_FORMAT` | `text` | `json` for one JSON object per line, `logfmt` for `key=value` pairs; text has colour only on a terminal |
//! | `RUST_LOG` | `info` | tracing filter |
//! | `WORKER_CONCURRENCY` | 10 | jobs running at once, per queue |
//! | `WORKER_BATCH_SIZE` | 200 | most jobs claimed at once, per queue; beyond its free slots only for jobs that run within a claim's round trip (docs/queue.md) |
//! | `QUEUE_<KIND>_CONCURRENCY`, `QUEUE_<KIND>_BATCH_SIZE` | - | per-queue overrides (`QUEUE_FETCH_RECORDING_CONCURRENCY`) |
//! | `WORKER_POLL_INTERVAL` | `500ms` | how often idle workers look for scheduled and retried jobs |
//! | `WORKER_HEARTBEAT` | `5s` | heartbeat; a worker silent for 3 beats is dead and its jobs run elsewhere |
//! | `WORKER_POLL_ONLY` | `false` | `true` (or `1`): no LISTEN connection; jobs are found by polling alone |
//! | `SHUTDOWN_GRACE` | `20s` | on SIGTERM, how long running jobs may take to finish |
//! | `JOB_RETENTION` | `7d` | finished jobs older than this are pruned |
//! | `JOB_PRUNE_EVERY` | `10m` | how often pruning runs |
//! | `OUTBOUND_PROVIDER` | (none: scheduled calls cannot be placed) | `twilio` or `exotel`: who places scheduled outbound calls |
//! | `OUTBOUND_CALLER_ID` | required with `OUTBOUND_PROVIDER` | the number both sides see (Twilio number or ExoPhone) |
//! | `OUTBOUND_STATUS_CALLBACK` | required with `OUTBOUND_PROVIDER` | absolute URL of the provider status webhook for outbound calls |
//! | `PUBLIC_BASE_URL` | (none) | scheme and host the providers call us at, e.g. `https://switchboard.example.com`: what Twilio signs, and the base of callback URLs we hand out |
//! | `TWILIO_ACCOUNT_SID` | (none) | account for the REST API (required with `TWILIO_AUTH_TOKEN`) |
//! | `TWILIO_AUTH_TOKEN` | (none: Twilio webhooks refused, no Twilio calls) | primary auth token: checks `X-Twilio-Signature`, authenticates REST calls |
//! | `TWILIO_WEBHOOK_SHARED_KEY` | (none) | the secret of the Twilio Webhooks SharedKey that signs webhooks (`X-Twilio-Webhooks-Signature-Settings`, HMAC-SHA256); comma-separated while a key is being rotated |
//! | `RECONCILE_AFTER` | `3m` | a call holding an agent's slot (or an outbound attempt awaiting its outcome) unheard of this long is looked up in its provider's REST API, and what it says applied as its webhook would have been |
//! | `TWILIO_MACHINE_DETECTION` | `true` | outbound follow-ups ask Twilio for answering-machine detection (asynchronous, billed per call): a machine answering the customer settles the attempt as `voicemail` |
//! | `TWILIO_API_BASE` | `https://api.twilio.com` | Twilio's REST API (tests point it at a local fake) |
//! | `EXOTEL_WEBHOOK_SECRET` | (none: Exotel webhooks refused) | the secret path segment of `/webhooks/exotel/{secret}/...`, at least 32 characters |
//! | `EXOTEL_ALLOWED_IPS` | (none: any address) | comma-separated addresses or CIDR blocks Exotel webhooks may come from |
//! | `EXOTEL_CONNECT_DEADLINE` | `3s` | how long the Connect applet's request waits for an agent before answering "nobody" |
//! | `EXOTEL_ACCOUNT_SID` | (none: no Exotel calls) | account for Exotel's REST API (requires `EXOTEL_API_KEY` and `EXOTEL_API_TOKEN`) |
//! | `EXOTEL_API_KEY`, `EXOTEL_API_TOKEN` | (none) | Basic auth for Exotel's REST API (and its recordings) |
//! | `EXOTEL_API_BASE` | `https://api.exotel.com` | Exotel's REST API (`https://api.in.exotel.com` for Mumbai; tests point it at a local fake) |
//! | `TRUST_FORWARDED_FOR` | `false` | take the client address from the rightmost entry of the last `X-Forwarded-For` line (behind Heroku's router) |
//! | `CALLBACK_ALLOWED_PREFIXES` | `+91` | comma-separated E.164 prefixes overflow callbacks may go to (`+` alone: anywhere) |
//!
//! The after-call chain's variables are documented where they are read:
//! `after_call` (switches), `storage`, `recording_fetch`, `ai` and `crm`.
//! [`refuse_unsafe_settings`] checks every secret and endpoint among them at
//! start (`secrets`): no whitespace around a secret, URLs that parse as http(s).

use std::env;
use std::str::FromStr;
use std::time::Duration;

mod secrets;

use crate::ip_block::IpBlock;
use anyhow::{Context, anyhow};
use secrecy::SecretString;
use switchboard_jobs::phone::NumberPrefixes;
use switchboard_jobs::ports::{OutboundLine, Provider};
use switchboard_jobs::queue::{QueueLimits, QueueSettings, SupervisorConfig, prune::PruneSchedule};

pub use secrets::{MIN_GUARD_CHARS, refuse_unsafe_settings};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/switchboard";

/// The variable's value, or `None` when unset or empty.
pub fn var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The variable parsed, or `default` when unset; a malformed value is an error naming it.
pub fn parsed<T: FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e| anyhow!("{name}={raw:?} is not valid: {e}")),
    }
}

/// A switch: `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`; `default` when unset.
pub fn flag(name: &str, default: bool) -> anyhow::Result<bool> {
    match var(name).map(|raw| raw.trim().to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(raw) => anyhow::bail!("{name}={raw:?} is not valid: use true or false"),
    }
}

/// A duration such as `500ms`, `25s`, `7d`; `default` when unset.
pub fn duration(name: &str, default: &str) -> anyhow::Result<Duration> {
    let raw = var(name).unwrap_or_else(|| default.to_owned());
    humantime::parse_duration(raw.trim())
        .with_context(|| format!("{name}={raw:?} is not a duration (try 500ms, 25s, 2h, 7d)"))
}

/// Like [`duration`], refusing zero: intervals that drive timers.
pub fn positive_duration(name: &str, default: &str) -> anyhow::Result<Duration> {
    let value = duration(name, default)?;
    anyhow::ensure!(!value.is_zero(), "{name} must be longer than zero");
    Ok(value)
}

/// True on a Heroku dyno (`DYNO` is set, e.g. `web.1`).
pub fn on_dyno() -> bool {
    var("DYNO").is_some()
}

/// Where the database is and how to reach it; `crate::db` builds the pools.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`: the server itself (its password included).
    pub url: SecretString,
    /// `DATABASE_CONNECTION_POOL_URL`: PgBouncer in transaction mode, when attached.
    pub pooled_url: Option<SecretString>,
    /// `DATABASE_MAX_CONNECTIONS`, when set: overrides each process kind's default.
    pub max_connections: Option<u32>,
    /// TLS is required unless the URL or `PGSSLMODE` says otherwise (on a dyno).
    pub require_tls: bool,
    /// What `pg_stat_activity` and `heroku pg:ps` show for this process's
    /// connections: `switchboard-web`, `switchboard-worker`, ...
    pub application_name: String,
}

impl DatabaseConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let max_connections =
            var("DATABASE_MAX_CONNECTIONS").map(|_| parsed("DATABASE_MAX_CONNECTIONS", 0)).transpose()?;
        anyhow::ensure!(max_connections != Some(0), "DATABASE_MAX_CONNECTIONS must be at least 1");
        Ok(Self {
            url: var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()).into(),
            pooled_url: var("DATABASE_CONNECTION_POOL_URL").map(Into::into),
            max_connections,
            require_tls: on_dyno() && var("PGSSLMODE").is_none(),
            application_name: "switchboard".to_owned(),
        })
    }

    /// The same, with connections named after the `process` kind (`web`, `worker`, ...).
    pub fn for_process(self, process: &str) -> Self {
        Self { application_name: format!("switchboard-{process}"), ..self }
    }

    /// `DATABASE_MAX_CONNECTIONS` when set, else `default` (the process kind's).
    pub fn pool_size(&self, default: u32) -> u32 {
        self.max_connections.unwrap_or(default)
    }
}

#[derive(Debug, Clone)]
pub struct WebConfig {
    pub port: u16,
    pub body_limit_bytes: usize,
    /// `API_TOKENS`, each at least [`MIN_GUARD_CHARS`] long.
    pub api_tokens: Vec<SecretString>,
}

impl WebConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            port: parsed("PORT", 8080)?,
            body_limit_bytes: parsed("BODY_LIMIT_BYTES", 1024 * 1024)?,
            api_tokens: secrets::secret_list("API_TOKENS", MIN_GUARD_CHARS)?,
        })
    }
}

/// The worker process's settings for `kinds` (per-queue overrides included).
pub fn supervisor_from_env<'a>(kinds: impl Iterator<Item = &'a str>) -> anyhow::Result<SupervisorConfig> {
    let built_in = QueueSettings::default().defaults;
    let defaults = QueueLimits {
        concurrency: parsed("WORKER_CONCURRENCY", built_in.concurrency)?,
        batch_size: parsed("WORKER_BATCH_SIZE", built_in.batch_size)?,
    };
    let mut queues = QueueSettings {
        poll_interval: positive_duration("WORKER_POLL_INTERVAL", "500ms")?,
        heartbeat_interval: positive_duration("WORKER_HEARTBEAT", "5s")?,
        defaults,
        ..QueueSettings::default()
    };
    for kind in kinds {
        let prefix = format!("QUEUE_{}", kind.to_uppercase().replace('-', "_"));
        let limits = QueueLimits {
            concurrency: parsed(&format!("{prefix}_CONCURRENCY"), defaults.concurrency)?,
            batch_size: parsed(&format!("{prefix}_BATCH_SIZE"), defaults.batch_size)?,
        };
        if limits.concurrency == 0 || limits.batch_size == 0 {
            anyhow::bail!("{prefix}_CONCURRENCY and {prefix}_BATCH_SIZE must be at least 1");
        }
        queues.per_kind.insert(kind.to_owned(), limits);
    }
    Ok(SupervisorConfig {
        queues,
        shutdown_grace: duration("SHUTDOWN_GRACE", "20s")?,
        pruning: PruneSchedule {
            retention: duration("JOB_RETENTION", "7d")?,
            every: positive_duration("JOB_PRUNE_EVERY", "10m")?,
        },
    })
}

/// The line scheduled outbound calls go out on, or `None` when `OUTBOUND_PROVIDER` is unset.
pub fn outbound_line_from_env() -> anyhow::Result<Option<OutboundLine>> {
    let Some(provider) = var("OUTBOUND_PROVIDER") else { return Ok(None) };
    let provider = match provider.trim().to_ascii_lowercase().as_str() {
        "twilio" => Provider::Twilio,
        "exotel" => Provider::Exotel,
        _ => anyhow::bail!("OUTBOUND_PROVIDER={provider:?} is not valid: use twilio or exotel"),
    };
    let caller_id =
        var("OUTBOUND_CALLER_ID").context("OUTBOUND_CALLER_ID is required when OUTBOUND_PROVIDER is set")?;
    let status_callback = secrets::endpoint("OUTBOUND_STATUS_CALLBACK")?
        .context("OUTBOUND_STATUS_CALLBACK is required when OUTBOUND_PROVIDER is set")?;
    Ok(Some(OutboundLine { provider, caller_id: caller_id.trim().to_owned(), status_callback: status_callback.into() }))
}

/// `CALLBACK_ALLOWED_PREFIXES`, else India (`+91`).
pub fn callback_prefixes_from_env() -> anyhow::Result<NumberPrefixes> {
    var("CALLBACK_ALLOWED_PREFIXES")
        .map_or_else(|| Ok(NumberPrefixes::default()), |raw| NumberPrefixes::parse(&raw))
        .map_err(|e| anyhow!("CALLBACK_ALLOWED_PREFIXES: {e}"))
}

/// Twilio's account, for signature checks (web) and REST calls (worker).
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: SecretString,
    pub api_base: String,
    /// No trailing slash.
    pub public_base_url: String,
}

impl TwilioConfig {
    /// `None` when `TWILIO_AUTH_TOKEN` is unset; an error naming what is missing otherwise.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let Some(auth_token) = secrets::secret("TWILIO_AUTH_TOKEN")? else { return Ok(None) };
        let required = |name: &str| var(name).ok_or_else(|| anyhow!("{name} must be set when TWILIO_AUTH_TOKEN is"));
        Ok(Some(Self {
            account_sid: required("TWILIO_ACCOUNT_SID")?,
            auth_token,
            api_base: api_base("TWILIO_API_BASE", "https://api.twilio.com")?,
            public_base_url: public_base_url()?
                .ok_or_else(|| anyhow!("PUBLIC_BASE_URL must be set when TWILIO_AUTH_TOKEN is"))?,
        }))
    }
}

/// Exotel's account, for REST calls (worker).
#[derive(Debug, Clone)]
pub struct ExotelConfig {
    pub account_sid: String,
    pub api_key: String,
    pub api_token: SecretString,
    /// No trailing slash.
    pub api_base: String,
}

impl ExotelConfig {
    /// `None` when `EXOTEL_ACCOUNT_SID` is unset; an error naming what is missing otherwise.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let Some(account_sid) = var("EXOTEL_ACCOUNT_SID") else { return Ok(None) };
        let required = |name: &str| var(name).ok_or_else(|| anyhow!("{name} must be set when EXOTEL_ACCOUNT_SID is"));
        Ok(Some(Self {
            account_sid,
            api_key: required("EXOTEL_API_KEY")?,
            api_token: secrets::secret("EXOTEL_API_TOKEN")?
                .ok_or_else(|| anyhow!("EXOTEL_API_TOKEN must be set when EXOTEL_ACCOUNT_SID is"))?,
            api_base: api_base("EXOTEL_API_BASE", "https://api.exotel.com")?,
        }))
    }
}

/// A provider's REST base URL from `name` (else `default`), without a trailing slash.
fn api_base(name: &str, default: &str) -> anyhow::Result<String> {
    secrets::endpoint(name)?;
    Ok(var(name).as_deref().unwrap_or(default).trim().trim_end_matches('/').to_owned())
}

fn public_base_url() -> anyhow::Result<Option<String>> {
    secrets::endpoint("PUBLIC_BASE_URL")?;
    Ok(var("PUBLIC_BASE_URL").map(|raw| raw.trim().trim_end_matches('/').to_owned()))
}

/// How the web process authenticates and answers provider webhooks.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub twilio: Option<TwilioConfig>,
    /// Twilio Webhooks SharedKey secrets (`TWILIO_WEBHOOK_SHARED_KEY`).
    pub twilio_shared_keys: Vec<SecretString>,
    /// `EXOTEL_WEBHOOK_SECRET`, at least [`MIN_GUARD_CHARS`] long.
    pub exotel_secret: Option<SecretString>,
    pub exotel_allowed_ips: Vec<IpBlock>,
    pub exotel_connect_deadline: Duration,
    pub trust_forwarded_for: bool,
    /// Where the Connect webhook may schedule overflow callbacks (`CALLBACK_ALLOWED_PREFIXES`).
    pub callback_prefixes: NumberPrefixes,
}

impl Default for WebhookConfig {
    /// Every webhook closed.
    fn default() -> Self {
        Self {
            twilio: None,
            twilio_shared_keys: Vec::new(),
            exotel_secret: None,
            exotel_allowed_ips: Vec::new(),
            exotel_connect_deadline: Duration::from_secs(3),
            trust_forwarded_for: false,
            callback_prefixes: NumberPrefixes::default(),
        }
    }
}

impl WebhookConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let exotel_allowed_ips = var("EXOTEL_ALLOWED_IPS")
            .map(|raw| {
                raw.split(',').filter(|b| !b.trim().is_empty()).map(IpBlock::parse).collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|e| anyhow!("EXOTEL_ALLOWED_IPS: {e}"))?
            .unwrap_or_default();
        Ok(Self {
            twilio: TwilioConfig::from_env()?,
            twilio_shared_keys: secrets::secret_list("TWILIO_WEBHOOK_SHARED_KEY", 1)?,
            exotel_secret: secrets::guarding_secret("EXOTEL_WEBHOOK_SECRET")?,
            exotel_allowed_ips,
            exotel_connect_deadline: duration("EXOTEL_CONNECT_DEADLINE", "3s")?,
            trust_forwarded_for: flag("TRUST_FORWARDED_FOR", false)?,
            callback_prefixes: callback_prefixes_from_env()?,
        })
    }
}
