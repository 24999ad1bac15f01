//! The backend apalis's worker pulls jobs of one kind from: it claims as many
//! due jobs as the worker has free slots, plus what it starts within about
//! one claim's round trip (`pace`), when woken by a NOTIFY, when the poll
//! interval passes, or at once after a claim that got all it asked for (then
//! before its buffer runs dry). A failed claim is retried with backoff; it
//! never stops the worker. Stopping, it hands back what it claimed and did
//! not start, without counting an attempt.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::layers::Identity;
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use backoff::backoff::Backoff;
use futures::future::BoxFuture;
use sqlx::PgPool;
use tokio::sync::{Notify, futures::OwnedNotified};

use super::claim::{self, Claim, Held};
use super::next::{self, Claimed};
use super::outcome::{self, Outbox, Outcome};
use super::pace::{self, ClaimRoundTrip, Running};

/// A claim on its way: how many jobs it asked for and since when. Its
/// statement owns the outcomes it carries and gives them back with its result.
struct InFlight {
    asked: usize,
    since: Instant,
    claiming: BoxFuture<'static, (Vec<Outcome>, Result<Claimed, sqlx::Error>)>,
}

/// What one fetcher is built from.
pub(crate) struct FetcherSetup {
    pub pool: PgPool,
    pub kind: &'static str,
    pub worker: Arc<str>,
    pub batch_size: usize,
    pub concurrency: usize,
    pub poll_interval: Duration,
    pub running: Running,
    pub held: Held,
    /// Outcomes waiting to be stored: each claim carries them.
    pub outbox: Outbox,
    pub wakeup: Arc<Notify>,
}

pub(crate) struct Fetcher {
    setup: FetcherSetup,
    buffer: VecDeque<Task<Vec<u8>>>,
    claiming: Option<InFlight>,
    round_trip: ClaimRoundTrip,
    handing_back: Option<BoxFuture<'static, ()>>,
    /// Claim without waiting: at start, after a claim that filled every slot, after a failed claim's pause.
    claim_now: bool,
    woken: Pin<Box<OwnedNotified>>,
    tick: tokio::time::Interval,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    retry: backoff::ExponentialBackoff,
}

impl Fetcher {
    pub fn new(setup: FetcherSetup) -> Self {
        let mut tick = tokio::time::interval(setup.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            woken: Box::pin(setup.wakeup.clone().notified_owned()),
            setup,
            buffer: VecDeque::new(),
            claiming: None,
            round_trip: ClaimRoundTrip::default(),
            handing_back: None,
            claim_now: true,
            tick,
            pause: None,
            retry: backoff::ExponentialBackoff {
                initial_interval: Duration::from_millis(100),
                max_interval: Duration::from_secs(5),
                max_elapsed_time: None,
                ..Default::default()
            },
        }
    }

    /// Jobs this worker starts within one claim's round trip (see `pace`).
    fn starts_per_round_trip(&self) -> usize {
        pace::starts_per_round_trip(self.setup.concurrency, self.setup.running.recent_run(), &self.round_trip)
    }

    /// How many more jobs to claim: the free slots, and those started within
    /// one round trip, with `max(concurrency, batch_size)` held in all. Jobs
    /// buffered now but started before the claim returns (`spent`) do not count.
    fn room(&self, spent: usize) -> usize {
        let FetcherSetup { concurrency, batch_size, .. } = self.setup;
        let ahead = self.starts_per_round_trip().min(batch_size.saturating_sub(concurrency));
        let held = self.setup.running.count() + self.buffer.len().saturating_sub(spent);
        (concurrency + ahead).saturating_sub(held)
    }

    /// True when a wakeup or the poll interval says to look for jobs.
    fn poll_due(&mut self, cx: &mut Context<'_>) -> bool {
        let woken = self.woken.as_mut().poll(cx).is_ready();
        if woken {
            self.woken = Box::pin(self.setup.wakeup.clone().notified_owned());
        }
        let ticked = self.tick.poll_tick(cx).is_ready();
        woken || ticked
    }

    fn start_claim(&mut self, spent: usize) {
        let asked = self.setup.batch_size.min(self.room(spent)).max(1);
        let (pool, kind, worker) = (self.setup.pool.clone(), self.setup.kind, self.setup.worker.clone());
        let carried = self.setup.outbox.take();
        let claiming = Box::pin(async move {
            let result = next::claim_due(&pool, kind, &worker, asked, &carried).await;
            (carried, result)
        });
        self.claiming = Some(InFlight { asked, since: Instant::now(), claiming });
    }

    /// Starts the next claim before the buffer runs dry, when the buffer
    /// will be spent within the claim's round trip and more jobs are likely
    /// due (the last claim got all it asked for), so the worker does not
    /// idle through the claim's commit. Called with the next task still in
    /// the buffer.
    fn claim_early(&mut self, cx: &mut Context<'_>) {
        let spent = self.starts_per_round_trip();
        if self.buffer.len() > spent || !self.claim_now || self.claiming.is_some() || self.pause.is_some() {
            return;
        }
        self.claim_now = false;
        self.start_claim(self.buffer.len());
        let _ = self.poll_claiming(cx);
    }

    fn buffer_claimed(&mut self, jobs: Vec<(Claim, Vec<u8>)>) {
        for (claim, payload) in jobs {
            self.setup.held.insert(&claim);
            let task = TaskBuilder::new(payload).task_id(TaskId::from_string(claim.job_id.clone())).data(claim).build();
            self.buffer.push_back(task);
        }
    }

    /// Drives an in-flight claim; `Ready` once there is none.
    fn poll_claiming(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(in_flight) = self.claiming.as_mut() else { return Poll::Ready(()) };
        let (carried, result) = match in_flight.claiming.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(returned) => returned,
        };
        let InFlight { asked, since, .. } = self.claiming.take().expect("a claim in flight");
        match result {
            Ok(Claimed { jobs, stored }) => {
                self.retry.reset();
                self.round_trip.record(since.elapsed());
                outcome::settle(&self.setup.held, &carried, &stored);
                self.claim_now = jobs.len() == asked;
                self.buffer_claimed(jobs);
            }
            Err(error) => {
                self.setup.outbox.put_back(carried);
                let wait = self.retry.next_backoff().unwrap_or(Duration::from_secs(5));
                tracing::warn!(kind = self.setup.kind, %error, retry_in_ms = wait.as_millis() as u64, "could not claim jobs");
                self.pause = Some(Box::pin(tokio::time::sleep(wait)));
            }
        }
        Poll::Ready(())
    }
}

impl Backend for Fetcher {
    type Task = Task<Vec<u8>>;
    type Error = std::convert::Infallible;

    fn poll_ready(&mut self, _: &mut Context<'_>, _: &WorkerContext) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(&mut self, cx: &mut Context<'_>, _: &WorkerContext) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        loop {
            if !self.buffer.is_empty() {
                self.claim_early(cx);
                if let Some(task) = self.buffer.pop_front() {
                    return Poll::Ready(Some(Ok(task)));
                }
            }
            if self.claiming.is_some() {
                if self.poll_claiming(cx).is_pending() {
                    return Poll::Pending;
                }
                continue;
            }
            if let Some(pause) = self.pause.as_mut() {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.pause = None;
                self.claim_now = true;
            }
            let due = std::mem::take(&mut self.claim_now) || self.poll_due(cx);
            if !due {
                return Poll::Pending;
            }
            self.start_claim(0);
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>, _: &WorkerContext) -> Poll<Result<(), Self::Error>> {
        if self.poll_claiming(cx).is_pending() {
            return Poll::Pending;
        }
        if self.handing_back.is_none() && !self.buffer.is_empty() {
            let claims: Vec<Claim> =
                self.buffer.drain(..).filter_map(|task| task.data().get::<Claim>().cloned()).collect();
            let (pool, held) = (self.setup.pool.clone(), self.setup.held.clone());
            self.handing_back = Some(Box::pin(async move {
                match claim::hand_back_unstarted(&pool, &claims).await {
                    Ok(n) if n > 0 => tracing::info!(jobs = n, "handed back jobs claimed but not started"),
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "could not hand back unstarted jobs; the worker's last hand-back will")
                    }
                }
                for claim in &claims {
                    held.release(claim);
                }
            }));
        }
        if let Some(handing_back) = self.handing_back.as_mut() {
            if handing_back.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.handing_back = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl BackendConfig for Fetcher {
    type Args = Vec<u8>;
    type Id = String;
    type Kind = Ephemeral;
    type Config = ();
    type Layer = Identity;

    fn config(&self) -> &Self::Config {
        &()
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        Identity::new()
    }
}
