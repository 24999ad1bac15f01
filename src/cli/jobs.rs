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
        #[arg(long)]
        kind: Option<String>,
        /// With --kind or --since: the state to replay (default: dead).
        #[arg(long)]
        state: Option<JobState>,
        #[arg(long, value_parser = parse_age)]
        since: Option<Duration>,
        /// Print what would be replayed; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Delete jobs (dead ones, typically) by id.
    Discard {
        #[arg(required = true)]
        ids: Vec<String>,
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
            let jobs = admin::list(pool, &ListFilter { state, kind, since, limit }).await?;
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
        JobsCommand::Replay { ids, kind, state, since, dry_run, output } => {
            let ids = replay_targets(pool, ids, kind, state, since).await?;
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
        JobsCommand::Discard { ids, output } => {
            let deleted = admin::discard(pool, &ids).await?;
            let kept: Vec<&String> = ids.iter().filter(|id| !deleted.contains(id)).collect();
            #[derive(Serialize)]
            struct Discarded<'a> {
                discarded: &'a [String],
                not_discarded: &'a [&'a String],
            }
            print(output, &Discarded { discarded: &deleted, not_discarded: &kept }, || {
                let mut out = format!("discarded {} job(s)", deleted.len());
                if !kept.is_empty() {
                    let kept: Vec<&str> = kept.iter().map(|s| s.as_str()).collect();
                    out.push_str(&format!("; not discarded (running or unknown): {}", kept.join(", ")));
                }
                out
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

async fn replay_targets(
    pool: &PgPool,
    ids: Vec<String>,
    kind: Option<String>,
    state: Option<JobState>,
    since: Option<Duration>,
) -> anyhow::Result<Vec<String>> {
    match (ids.is_empty(), kind.is_some() || state.is_some() || since.is_some()) {
        (false, false) => Ok(ids),
        (false, true) => bail!("give job ids, or --kind/--state/--since to select jobs, not both"),
        (true, false) => bail!("nothing to replay: give job ids, or --kind K --state dead"),
        (true, true) => {
            // Selecting without a state means the dead ones: replaying done work by accident would redo it.
            let state = Some(state.unwrap_or(JobState::Dead));
            Ok(admin::matching_ids(pool, &ListFilter { state, kind, since, limit: i64::MAX }).await?)
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
