//! `switchboard worker`: every registered job kind (or `--queues`) in one
//! apalis Monitor, drained on SIGTERM; its connections logged at start: the
//! handlers' pool (through PgBouncer when pooled), the queue's pool and LISTEN
//! (unless `WORKER_POLL_ONLY`) on the direct route.

use std::sync::Arc;

use switchboard_jobs::ports::{Ports, Telephony};
use switchboard_jobs::probe::{self, Probe};
use switchboard_jobs::queue::{self, QUEUE_POOL_CONNECTIONS, QueuePools};

use crate::config::{self, DatabaseConfig, ExotelConfig, TwilioConfig};
use crate::db;
use crate::providers::exotel_rest::ExotelRest;
use crate::providers::telephony_router::TelephonyRouter;
use crate::providers::twilio_rest::TwilioRest;

/// The handlers' connections at defaults: every kind's running jobs share
/// them; a job that finds them all busy waits 2 s without spending an attempt
/// (`JobError`'s `PoolTimedOut`). See docs/deploy-heroku.md for the budget.
const HANDLER_POOL_SIZE: u32 = 6;

pub async fn run(queues: &[String]) -> anyhow::Result<()> {
    let registry = switchboard_jobs::registry();
    let registry =
        if config::var(probe::ENABLE_VAR).as_deref() == Some("1") { registry.with::<Probe>() } else { registry };
    let registry = if queues.is_empty() { registry } else { registry.only(queues).map_err(anyhow::Error::msg)? };
    let settings = config::supervisor_from_env(registry.kinds())?;
    let database = DatabaseConfig::from_env()?.for_process("worker");
    let handlers = database.pool_size(HANDLER_POOL_SIZE);
    let direct = db::direct_options(&database)?;
    let listen = !config::flag("WORKER_POLL_ONLY", false)?;
    let pools = QueuePools {
        handlers: db::pooled_pool(&database, handlers)?,
        queue: queue::queue_pool(direct.clone()),
        listen: listen.then_some(direct),
    };
    db::log_budget(&database, handlers, QUEUE_POOL_CONNECTIONS + u32::from(listen));
    db::refuse_plaintext(&database, &pools.handlers).await?;
    db::check_pooled_route(&database).await?;
    crate::log_metrics::spawn(pools.queue.clone())?;
    let ports = Ports {
        telephony: telephony_from_env()?,
        outbound_line: config::outbound_line_from_env()?,
        callback_prefixes: config::callback_prefixes_from_env()?,
        reconcile_after: Some(config::positive_duration("RECONCILE_AFTER", "3m")?),
        ..Ports::default()
    };
    let ports = Arc::new(crate::after_call::with_after_call_ports(ports).await?);
    switchboard_jobs::queue::run(pools, registry, ports, settings, crate::shutdown::signal()).await;
    Ok(())
}

/// Both providers' REST clients behind one port, each present when its
/// account is configured; `None` when neither is.
fn telephony_from_env() -> anyhow::Result<Option<Arc<dyn Telephony>>> {
    let machine_detection = config::flag("TWILIO_MACHINE_DETECTION", true)?;
    let router = TelephonyRouter {
        twilio: TwilioConfig::from_env()?
            .map(|c| Arc::new(TwilioRest::new(c).with_machine_detection(machine_detection)) as Arc<dyn Telephony>),
        exotel: ExotelConfig::from_env()?.map(|c| Arc::new(ExotelRest::new(c)) as Arc<dyn Telephony>),
    };
    let any = router.twilio.is_some() || router.exotel.is_some();
    Ok(any.then(|| Arc::new(router) as Arc<dyn Telephony>))
}
