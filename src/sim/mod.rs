//! Simulated outside world for `switchboard demo` and `switchboard simulate`:
//! an OpenAI-compatible server, a Twilio-like and an Exotel-like provider,
//! each a small axum app on a loopback port, and callers that hold whole
//! conversations with the web's real webhooks (signed or behind the secret
//! path exactly as the providers do: the web has no bypass).

pub mod exotel;
pub mod openai;
pub mod scripts;
pub mod twilio;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use indicatif::ProgressBar;
use switchboard_jobs::ports::Provider;

use scripts::Script;

/// Serves `app` on 127.0.0.1 at a free port for the life of the process; its base URL.
pub async fn serve(app: Router) -> anyhow::Result<String> {
    let (listener, base_url) = listen().await?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base_url)
}

/// A free loopback port and its base URL, for an app that must know its own URL.
async fn listen() -> anyhow::Result<(tokio::net::TcpListener, String)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    Ok((listener, base_url))
}

/// The web the simulated providers call, and the secrets they call it with.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where requests go (`http://127.0.0.1:8080`).
    pub base_url: String,
    /// What the web believes its public URL is (`PUBLIC_BASE_URL`): what Twilio signs.
    pub public_base_url: String,
    pub twilio_auth_token: String,
    pub twilio_account_sid: String,
    pub exotel_secret: String,
    /// The number callers dial (E.164).
    pub our_number: String,
    /// Real milliseconds per second of scripted call time (15: a 3-minute call takes 2.7 s).
    pub talk_ms_per_second: u64,
    /// How long a caller waits in the queue for an agent before hanging up.
    pub patience: Duration,
}

/// One request a simulated provider made and how the web answered.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub endpoint: String,
    /// `None`: no answer at all (connection refused, timeout).
    pub status: Option<u16>,
    pub latency: Duration,
}

impl Exchange {
    pub fn accepted(&self) -> bool {
        self.status.is_some_and(|s| s < 400)
    }
}

/// Every exchange of a run, shared by the calls in flight.
#[derive(Debug, Clone, Default)]
pub struct Exchanges(Arc<Mutex<Vec<Exchange>>>);

impl Exchanges {
    pub fn record(&self, exchange: Exchange) {
        self.0.lock().expect("exchange log").push(exchange);
    }

    pub fn all(&self) -> Vec<Exchange> {
        self.0.lock().expect("exchange log").clone()
    }
}

/// One simulated call: who calls, what they say, how the agent behaves.
#[derive(Debug, Clone)]
pub struct CallPlan {
    pub script: &'static Script,
    /// E.164.
    pub caller: String,
    /// The first agent called does not pick up (the call is routed again).
    pub first_agent_misses: bool,
    /// Webhooks arrive as providers really send them: a stale status after the
    /// final one (Twilio promises no order), a callback delivered twice (retries).
    pub messy_delivery: bool,
}

impl CallPlan {
    /// The `n`-th call of a run: a fixed mix of scripts, repeat callers, misses, reordering.
    pub fn nth(n: usize) -> Self {
        let caller_pool = 37;
        Self {
            script: scripts::for_call(n),
            caller: format!("+9198{:08}", 45_100_000 + (n % caller_pool) * 7919),
            first_agent_misses: n % 9 == 4,
            messy_delivery: n % 4 == 3,
        }
    }

    fn talk_time(&self, target: &Target) -> Duration {
        Duration::from_millis(self.script.duration_secs.unsigned_abs() as u64 * target.talk_ms_per_second)
    }
}

/// The customers that scheduled calls ring, whichever provider places them:
/// a customer whose number ends in an odd digit misses the first call.
#[derive(Debug, Clone, Default)]
pub struct Customers(Arc<Mutex<CustomerBook>>);

#[derive(Debug, Default)]
struct CustomerBook {
    /// Calls placed to each customer so far.
    dialled: HashMap<String, usize>,
    /// Of those, the ones not over yet.
    in_progress: usize,
}

impl Customers {
    /// A call to `customer` starts ringing: whether they will pick up.
    fn ring(&self, customer: &str) -> bool {
        let mut book = self.0.lock().expect("customers");
        book.in_progress += 1;
        let count = book.dialled.entry(customer.to_owned()).or_default();
        *count += 1;
        let odd = customer.chars().last().and_then(|c| c.to_digit(10)).is_some_and(|d| d % 2 == 1);
        *count > 1 || !odd
    }

    /// A call [`ring`](Self::ring) started is over.
    fn hang_up(&self) {
        self.0.lock().expect("customers").in_progress -= 1;
    }

    /// Customers' phones still ringing or in a call placed to them.
    pub fn in_progress(&self) -> usize {
        self.0.lock().expect("customers").in_progress
    }
}

/// The simulated providers a run needs, started on loopback ports, calling
/// `target` and logging every request they make in `exchanges`.
pub struct Providers {
    pub twilio: twilio::TwilioSim,
    pub exotel: exotel::ExotelSim,
    pub exchanges: Exchanges,
    pub customers: Customers,
}

impl Providers {
    pub async fn start(target: &Target) -> anyhow::Result<Self> {
        let (exchanges, customers) = (Exchanges::default(), Customers::default());
        Ok(Self {
            twilio: twilio::TwilioSim::start(target, &exchanges, &customers).await?,
            exotel: exotel::ExotelSim::start(target, &exchanges, &customers).await?,
            exchanges,
            customers,
        })
    }
}

/// Places `calls` calls through `provider`, `rate` (positive) new calls per second,
/// all in flight at once as real traffic would be; `progress` ticks per finished call.
pub async fn run_calls(providers: &Providers, provider: Provider, calls: usize, rate: f64, progress: &ProgressBar) {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..calls {
        let start_at = started + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(start_at.into()).await;
        let plan = CallPlan::nth(n);
        let progress = progress.clone();
        match provider {
            Provider::Twilio => {
                let sim = providers.twilio.clone();
                tasks.spawn(async move {
                    sim.call(&plan).await;
                    progress.inc(1);
                });
            }
            Provider::Exotel => {
                let sim = providers.exotel.clone();
                tasks.spawn(async move {
                    sim.call(&plan).await;
                    progress.inc(1);
                });
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// The HTTP client simulated providers use: redirects are answers (Exotel's Passthru 302), not followed.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client builds")
}

/// Sends `request`, records the exchange; the body when the web answered.
async fn exchange(exchanges: &Exchanges, endpoint: &str, request: reqwest::RequestBuilder) -> Option<(u16, String)> {
    let started = Instant::now();
    let answer = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            Some((status, response.text().await.unwrap_or_default()))
        }
        Err(_) => None,
    };
    exchanges.record(Exchange {
        endpoint: endpoint.to_owned(),
        status: answer.as_ref().map(|(s, _)| *s),
        latency: started.elapsed(),
    });
    answer
}

/// What a run's exchanges add up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub sent: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
}

impl Tally {
    pub fn of(exchanges: &[Exchange]) -> Self {
        let mut latencies: Vec<Duration> = exchanges.iter().map(|e| e.latency).collect();
        latencies.sort();
        let at = |q: f64| {
            let rank = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len().max(1)) - 1;
            latencies.get(rank).copied().unwrap_or_default()
        };
        let accepted = exchanges.iter().filter(|e| e.accepted()).count();
        Self {
            sent: exchanges.len(),
            accepted,
            rejected: exchanges.len() - accepted,
            p50: at(0.5),
            p95: at(0.95),
            p99: at(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_answers_and_takes_nearest_rank_percentiles() {
        let exchanges: Vec<Exchange> = (1..=100)
            .map(|ms| Exchange {
                endpoint: "voice".into(),
                status: if ms % 10 == 0 { Some(403) } else { Some(200) },
                latency: Duration::from_millis(ms),
            })
            .collect();
        let tally = Tally::of(&exchanges);
        assert_eq!((tally.sent, tally.accepted, tally.rejected), (100, 90, 10));
        assert_eq!((tally.p50, tally.p95, tally.p99), (ms(50), ms(95), ms(99)));
        assert_eq!(Tally::of(&[]).p50, Duration::ZERO);
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
}
