//! Prompt pickup: a NOTIFY for every job that becomes due now, one LISTEN
//! connection per process turning it into a wakeup for that kind's fetcher,
//! and a poll interval for jobs that become due by the clock (scheduled,
//! retried, snoozed).
//!
//! A wakeup is a stored permit (`tokio::sync::Notify::notify_one`), never
//! lost: one that arrives while the fetcher is busy or mid-claim makes it
//! claim again as soon as it has a free slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backoff::backoff::Backoff;
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgListener};
use tokio::sync::Notify;

/// The channel apalis's own insert trigger used; we keep its name and payload
/// shape (`{"job_type": ...}`), so apalis's tools still understand it.
pub(crate) const CHANNEL: &str = "apalis::job::insert";

/// A CTE `woken` that sends one NOTIFY per kind found in the CTE `$cte`
/// (which has a `job_type` column). The statement must reference `woken`,
/// through [`after_waking!`], or the planner skips it.
macro_rules! wake_kinds_in {
    ($cte:literal) => {
        concat!(
            ", woken AS (
                SELECT pg_notify('apalis::job::insert', json_build_object('job_type', job_type)::text)
                FROM (SELECT DISTINCT job_type FROM ",
            $cte,
            ") kinds)"
        )
    };
}
pub(crate) use wake_kinds_in;

/// A condition that is always true and makes the planner run `woken` once.
macro_rules! after_waking {
    () => {
        "(SELECT count(*) FROM woken) >= 0"
    };
}
pub(crate) use after_waking;

/// Ends a statement whose CTE `released(id, job_type)` made jobs due now:
/// one NOTIFY per kind, then the ids.
macro_rules! notify_released {
    () => {
        concat!(
            $crate::queue::wakeup::wake_kinds_in!("released"),
            " SELECT id FROM released WHERE ",
            $crate::queue::wakeup::after_waking!()
        )
    };
}
pub(crate) use notify_released;

/// Every kind's wakeup, by kind name.
#[derive(Clone, Default)]
pub struct Wakeups {
    by_kind: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Wakeups {
    /// The wakeup of `kind`'s fetcher in this process.
    pub(crate) fn of(&self, kind: &str) -> Arc<Notify> {
        self.by_kind.lock().expect("wakeups lock").entry(kind.to_owned()).or_default().clone()
    }

    fn wake(&self, kind: &str) {
        if let Some(notify) = self.by_kind.lock().expect("wakeups lock").get(kind) {
            notify.notify_one();
        }
    }

    fn wake_all(&self) {
        for notify in self.by_kind.lock().expect("wakeups lock").values() {
            notify.notify_one();
        }
    }

    /// Listens on a connection of its own until the task is dropped,
    /// reconnecting with backoff when it is lost, and waking every fetcher
    /// after each (re)connection, in case a NOTIFY was missed meanwhile.
    pub async fn listen(self, options: PgConnectOptions) {
        let mut retry = backoff::ExponentialBackoff {
            max_elapsed_time: None,
            max_interval: Duration::from_secs(10),
            ..Default::default()
        };
        loop {
            let error = self.listen_once(&options, &mut retry).await;
            let wait = retry.next_backoff().unwrap_or(Duration::from_secs(10));
            tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "job listener lost its connection");
            tokio::time::sleep(wait).await;
        }
    }

    async fn listen_once(&self, options: &PgConnectOptions, retry: &mut backoff::ExponentialBackoff) -> sqlx::Error {
        // A pool of one, just for this listener: its connection is its own,
        // never taken from the handlers' pool.
        let own = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(options.clone());
        let mut listener = match PgListener::connect_with(&own).await {
            Ok(listener) => listener,
            Err(e) => return e,
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            return e;
        }
        retry.reset();
        self.wake_all();
        loop {
            #[derive(Deserialize)]
            struct Due<'a> {
                job_type: &'a str,
            }
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if let Ok(due) = serde_json::from_str::<Due>(notification.payload()) {
                        self.wake(due.job_type);
                    }
                }
                Ok(None) => return sqlx::Error::PoolClosed,
                Err(e) => return e,
            }
        }
    }
}
