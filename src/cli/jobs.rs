//! `switchboard jobs ...`: what operators use at 3 a.m. Tables by default,
//! `--json` for scripts, a progress bar when many jobs are touched.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sqlx::PgPool;
use switchboard_jobs::queue::admin::{self, JobState, JobSummary, ListFilter};
use switchboard_jobs::queue::prune;

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest activity first.
    List {
        #[arg(long)]
        state: Option<JobState>,
        #[arg(long)]
        kind: Option<String>,
        /// Only jobs active this recently, e.g. 2h, 30m, 7d.
        #[arg(long, value_parser = parse_age)]
        since: Option<Duration>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        output: Output,
    },
    /// Everything about one job: payload, attempts, every error.
    Show {
        id: String,
        #[command(flatten)]
        output: Output,
    },
    /// Run jobs again now, attempts reset: by id, or every job matching --kind/--state/--since.
    Replay {
        ids: Vec<String>,
        #[command(flatten)]
        select: Selection,
        #[command(flatten)]
        output: Output,
    },
    /// Delete jobs for good: by id, or every job matching --kind/--state/--since/--error.
    Discard {
        ids: Vec<String>,
        #[command(flatten)]
        select: Selection,
        #[command(flatten)]
        output: Output,
    },
    /// Dead and retrying jobs grouped by kind and error message, with counts and a sample id.
    Errors {
        #[command(flatten)]
        output: Output,
    },
    /// Stop claiming jobs of a kind (running ones finish); they wait until resumed.
    Pause {
        kind: String,
        #[command(flatten)]
        output: Output,
    },
    /// Claim jobs of a paused kind again.
    Resume {
        kind: String,
        #[command(flatten)]
        output: Output,
    },
    /// Live workers: last heartbeat and the jobs each holds.
    Workers {
        /// A worker silent this long is dead (3 x WORKER_HEARTBEAT by default).
        #[arg(long, value_parser = parse_age, default_value = "15s")]
        within: Duration,
        #[command(flatten)]
        output: Output,
    },
    /// Counts per kind and state, oldest pending job, recent throughput.
    Stats {
        #[command(flatten)]
        output: Output,
    },
    /// Delete finished jobs older than the given age.
    Prune {
        #[arg(long, value_parser = parse_age)]
        older_than: Duration,
        #[command(flatten)]
        output: Output,
    },
}

/// Which jobs a bulk replay or discard touches, and whether it only says so.
#[derive(Debug, Args, Clone)]
pub struct Selection {
    #[arg(long)]
    kind: Option<String>,
    /// With a filter: the state to select (default: dead).
    #[arg(long)]
    state: Option<JobState>,
    /// Only jobs active this recently, e.g. 2h.
    #[arg(long, value_parser = parse_age)]
    since: Option<Duration>,
    /// Only jobs whose last error is exactly this message (as `jobs errors` prints it).
    #[arg(long)]
    error: Option<String>,
    /// Print the jobs that would change; change nothing.
    #[arg(long)]
    dry_run: bool,
}

impl Selection {
    fn filters(&self) -> bool {
        self.kind.is_some() || self.state.is_some() || self.since.is_some() || self.error.is_some()
    }
}

#[derive(Debug, Args, Clone, Copy)]
pub struct Output {
    /// One JSON document on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_age(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| format!("{e} (try 30m, 2h, 7d)"))
}

const CHUNK: usize = 500;

pub async fn run(pool: &PgPool, command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::List { state, kind, since, limit, output } => {
            let jobs = admin::list(pool, &ListFilter { state, kind, since, limit, error: None }).await?;
            print(output, &jobs, || summary_table(&jobs))
        }
        JobsCommand::Show { id, output } => {
            let job = admin::show(pool, &id).await?.with_context(|| format!("no job with id {id}"))?;
            print(output, &job, || {
                let s = &job.summary;
                let mut out = format!(
                    "job      {}\nkind     {}\nstate    {}\nattempts {}/{}\nrun_at   {}\nworker   {}\npayload  {}\n",
                    s.id,
                    s.kind,
                    s.state.0,
                    s.attempts,
                    s.max_attempts,
                    s.run_at,
                    s.worker.as_deref().unwrap_or("-"),
                    job.payload
                );
                if job.errors.is_empty() {
                    out.push_str("errors   none\n");
                } else {
                    let mut table = table(&["at", "attempt", "outcome", "worker", "message"]);
                    for e in &job.errors {
                        table.add_row(vec![
                            e.at.to_rfc3339(),
                            e.attempt.to_string(),
                            e.outcome.clone(),
                            e.worker.clone().unwrap_or_else(|| "-".into()),
                            e.message.clone(),
                        ]);
                    }
                    out.push_str(&format!("errors\n{table}\n"));
                }
                out
            })
        }
        JobsCommand::Replay { ids, select, output } => {
            let dry_run = select.dry_run;
            let ids = targets(pool, "replay", ids, &select).await?;
            let changed = if dry_run {
                admin::list_by_ids(pool, &ids).await?
            } else {
                let bar = progress(ids.len(), "replaying");
                let mut changed = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(CHUNK) {
                    changed.extend(admin::replay(pool, chunk).await?);
                    bar.inc(chunk.len() as u64);
                }
                bar.finish_and_clear();
                changed
            };
            #[derive(Serialize)]
            struct Replayed<'a> {
                dry_run: bool,
                replayed: &'a [JobSummary],
                skipped_running_or_missing: usize,
            }
            let skipped = ids.len() - changed.len();
            print(output, &Replayed { dry_run, replayed: &changed, skipped_running_or_missing: skipped }, || {
                let verb = if dry_run { "would replay" } else { "replayed" };
                let mut out = format!("{verb} {} job(s) (now pending, attempts reset)", changed.len());
                if skipped > 0 {
                    out.push_str(&format!("; skipped {skipped} running or unknown"));
                }
                if !changed.is_empty() {
                    out.push_str(&format!("\nbefore:\n{}", summary_table(&changed)));
                }
                out
            })
        }
        JobsCommand::Discard { ids, select, output } => {
            let ids = targets(pool, "discard", ids, &select).await?;
            let (discarded, dry_run) = if select.dry_run {
                (admin::list_by_ids(pool, &ids).await?.into_iter().map(|j| j.id).collect(), true)
            } else {
                let mut deleted = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(CHUNK) {
                    deleted.extend(admin::discard(pool, chunk).await?);
                }
                (deleted, false)
            };
            let kept: Vec<&String> = ids.iter().filter(|id| !discarded.contains(id)).collect();
            #[derive(Serialize)]
            struct Discarded<'a> {
                dry_run: bool,
                discarded: &'a [String],
                not_discarded: &'a [&'a String],
            }
            print(output, &Discarded { dry_run, discarded: &discarded, not_discarded: &kept }, || {
                let verb = if dry_run { "would discard" } else { "discarded" };
                let mut out = format!("{verb} {} job(s)", discarded.len());
                if !discarded.is_empty() && discarded.len() <= 20 {
                    out.push_str(&format!(": {}", discarded.join(", ")));
                }
                if !kept.is_empty() {
                    let kept: Vec<&str> = kept.iter().map(|s| s.as_str()).collect();
                    out.push_str(&format!("; not discarded (running or unknown): {}", kept.join(", ")));
                }
                out
            })
        }
        JobsCommand::Pause { kind, output } => {
            known_kind(&kind)?;
            let changed = admin::pause(pool, &kind).await?;
            paused_report(pool, output, &kind, changed, if changed { "paused" } else { "already paused" }).await
        }
        JobsCommand::Resume { kind, output } => {
            known_kind(&kind)?;
            let changed = admin::resume(pool, &kind).await?;
            paused_report(pool, output, &kind, changed, if changed { "resumed" } else { "was not paused" }).await
        }
        JobsCommand::Errors { output } => {
            let groups = admin::errors(pool).await?;
            print(output, &groups, || {
                if groups.is_empty() {
                    return "no dead or retrying jobs".to_owned();
                }
                let mut table = table(&["count", "kind", "state", "error", "sample id", "last failed"]);
                for g in &groups {
                    table.add_row(vec![
                        g.count.to_string(),
                        g.kind.clone(),
                        g.state.0.to_string(),
                        switchboard_jobs::phone::mask_in_text(&g.message),
                        g.sample_id.clone(),
                        g.last_at.map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
                    ]);
                }
                table.to_string()
            })
        }
        JobsCommand::Workers { within, output } => {
            let workers = admin::workers(pool, within).await?;
            print(output, &workers, || {
                if workers.is_empty() {
                    return format!("no worker seen in the last {}", humantime::format_duration(within));
                }
                let mut table = table(&["worker", "kind", "last seen", "alive", "holding"]);
                for w in &workers {
                    let holding = match w.holding.len() {
                        0 => "-".to_owned(),
                        1..=3 => w.holding.join(", "),
                        n => format!("{n} jobs: {}, ...", w.holding[..3].join(", ")),
                    };
                    table.add_row(vec![
                        w.name.clone(),
                        w.kind.clone(),
                        w.last_seen.format("%Y-%m-%d %H:%M:%S").to_string(),
                        if w.alive { "yes" } else { "no (orphaned jobs)" }.to_owned(),
                        holding,
                    ]);
                }
                table.to_string()
            })
        }
        JobsCommand::Stats { output } => {
            let stats = admin::stats(pool).await?;
            print(output, &stats, || {
                let mut table = table(&["kind", "state", "count"]);
                for c in &stats.counts {
                    table.add_row(vec![c.kind.clone(), c.state.clone(), c.count.to_string()]);
                }
                let oldest = stats.oldest_pending_age_s.map_or("none".to_owned(), |s| format!("{s:.1}s"));
                format!(
                    "{table}\noldest pending job: {oldest}\nfinished in the last 5 minutes: {}",
                    stats.finished_last_5m
                )
            })
        }
        JobsCommand::Prune { older_than, output } => {
            let deleted = prune::prune_done(pool, older_than).await?;
            #[derive(Serialize)]
            struct Pruned {
                deleted: u64,
            }
            print(output, &Pruned { deleted }, || {
                format!("deleted {deleted} finished job(s) older than {}", humantime::format_duration(older_than))
            })
        }
    }
}

/// Pausing a kind nothing runs would silently do nothing.
fn known_kind(kind: &str) -> anyhow::Result<()> {
    switchboard_jobs::registry().only(&[kind.to_owned()]).map(drop).map_err(anyhow::Error::msg)
}

async fn paused_report(pool: &PgPool, output: Output, kind: &str, changed: bool, what: &str) -> anyhow::Result<()> {
    let paused: Vec<String> = admin::paused(pool).await?.into_iter().map(|(kind, _)| kind).collect();
    #[derive(Serialize)]
    struct Paused<'a> {
        kind: &'a str,
        changed: bool,
        paused_kinds: &'a [String],
    }
    print(output, &Paused { kind, changed, paused_kinds: &paused }, || {
        let now = if paused.is_empty() { "none".to_owned() } else { paused.join(", ") };
        format!("{kind}: {what}; paused kinds now: {now}")
    })
}

/// The ids given, or those of the jobs the selection's filters match (dead
/// ones when no state is given: touching live or done work by accident would redo or lose it).
async fn targets(pool: &PgPool, verb: &str, ids: Vec<String>, select: &Selection) -> anyhow::Result<Vec<String>> {
    match (ids.is_empty(), select.filters()) {
        (false, false) => Ok(ids),
        (false, true) => bail!("give job ids, or --kind/--state/--since/--error to select jobs, not both"),
        (true, false) => bail!("nothing to {verb}: give job ids, or --kind K --state dead"),
        (true, true) => {
            let filter = ListFilter {
                state: Some(select.state.unwrap_or(JobState::Dead)),
                kind: select.kind.clone(),
                since: select.since,
                error: select.error.clone(),
                limit: i64::MAX,
            };
            Ok(admin::matching_ids(pool, &filter).await?)
        }
    }
}

fn print<T: Serialize>(output: Output, value: &T, human: impl FnOnce() -> String) -> anyhow::Result<()> {
    if output.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", human());
    }
    Ok(())
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(header.to_vec());
    table
}

fn summary_table(jobs: &[JobSummary]) -> String {
    if jobs.is_empty() {
        return "no jobs".to_owned();
    }
    let mut table = table(&["id", "kind", "state", "attempts", "run_at", "last error"]);
    for j in jobs {
        let error = j.last_error.as_deref().unwrap_or("").chars().take(60).collect::<String>();
        table.add_row(vec![
            j.id.clone(),
            j.kind.clone(),
            j.state.0.to_string(),
            format!("{}/{}", j.attempts, j.max_attempts),
            j.run_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            error,
        ]);
    }
    table.to_string()
}

fn progress(total: usize, message: &'static str) -> ProgressBar {
    if total <= CHUNK {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64).with_message(message);
    bar.set_style(ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} {eta}").expect("static template"));
    bar
}
