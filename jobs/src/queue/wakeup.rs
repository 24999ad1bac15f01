//! Prompt pickup: one LISTEN connection per process turns apalis's insert
//! NOTIFY into a wakeup for the worker of that kind, and a poll interval wakes
//! every worker anyway, for scheduled and retried jobs (which never notify).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use backoff::backoff::Backoff;
use futures::Stream;
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

const CHANNEL: &str = "apalis::job::insert";

/// The running fetchers' wakeup channels: by kind, then by fetcher number.
type Senders = HashMap<String, Vec<mpsc::Sender<()>>>;

/// The wakeup senders of the workers currently running.
#[derive(Clone, Default)]
pub struct Wakeups {
    senders: Arc<Mutex<Senders>>,
    /// Where the next insert's wakeup starts looking, so fetchers take turns.
    turn: Arc<AtomicUsize>,
}

impl Wakeups {
    /// A wakeup stream for fetcher `fetcher` of `kind`, replacing any earlier one.
    pub fn subscribe(&self, kind: &str, fetcher: usize, poll_interval: Duration) -> WakeupStream {
        let (tx, rx) = mpsc::channel(1);
        let mut senders = self.senders.lock().expect("wakeups lock");
        let fetchers = senders.entry(kind.to_owned()).or_default();
        if fetchers.len() <= fetcher {
            // Fetchers subscribe in any order: a lower one not yet here is woken
            // through this channel meanwhile, which only wakes this fetcher.
            fetchers.resize(fetcher + 1, tx.clone());
        }
        fetchers[fetcher] = tx;
        let mut tick = tokio::time::interval(poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        WakeupStream { rx, tick }
    }

    /// Wake one fetcher of `kind` for an inserted job, taking turns: the first
    /// with no wakeup pending. Waking them all would send every fetcher to
    /// claim the one job, and they would queue up behind each other's locks.
    /// When each has a wakeup pending already, those absorb this one.
    pub fn wake(&self, kind: &str) {
        let senders = self.senders.lock().expect("wakeups lock");
        let Some(fetchers) = senders.get(kind).filter(|f| !f.is_empty()) else { return };
        let first = self.turn.fetch_add(1, Ordering::Relaxed) % fetchers.len();
        let rotated = fetchers[first..].iter().chain(&fetchers[..first]);
        for tx in rotated {
            if tx.try_send(()).is_ok() {
                return;
            }
        }
    }

    fn wake_all(&self) {
        for tx in self.senders.lock().expect("wakeups lock").values().flatten() {
            let _ = tx.try_send(());
        }
    }

    /// Listens until the task is dropped, reconnecting with backoff when the
    /// connection is lost (and waking everyone after, in case we missed a NOTIFY).
    pub async fn listen(self, pool: PgPool) {
        let mut retry = backoff::ExponentialBackoff {
            max_elapsed_time: None,
            max_interval: Duration::from_secs(10),
            ..Default::default()
        };
        loop {
            match self.listen_once(&pool, &mut retry).await {
                Ok(()) => return,
                Err(e) => {
                    let wait = retry.next_backoff().unwrap_or(Duration::from_secs(10));
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "job listener lost its connection");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn listen_once(&self, pool: &PgPool, retry: &mut backoff::ExponentialBackoff) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.ignore_pool_close_event(false);
        listener.listen(CHANNEL).await?;
        retry.reset();
        self.wake_all();
        loop {
            let Some(notification) = listener.try_recv().await? else {
                return Err(sqlx::Error::PoolClosed);
            };
            #[derive(Deserialize)]
            struct Inserted<'a> {
                job_type: &'a str,
            }
            if let Ok(inserted) = serde_json::from_str::<Inserted>(notification.payload()) {
                self.wake(inserted.job_type);
            }
        }
    }
}

/// Yields when a job of this kind was inserted or the poll interval elapsed.
pub struct WakeupStream {
    rx: mpsc::Receiver<()>,
    tick: tokio::time::Interval,
}

impl Stream for WakeupStream {
    type Item = ();

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        if let Poll::Ready(Some(())) = self.rx.poll_recv(cx) {
            return Poll::Ready(Some(()));
        }
        self.tick.poll_tick(cx).map(|_| Some(()))
    }
}
