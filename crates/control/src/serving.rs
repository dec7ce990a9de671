//! Inference over HTTP, served serverless: `POST /v1/services/{name}/predict` with one JSON object (answered with
//! `prediction`) or an array of them (answered with `predictions`, in order).
//!
//! A service is a pool of replicas, each a loaded model with `concurrency` slots. The pool scales with its load
//! (see `autoscale.rs`): up at once on a burst, down after the stable window, to zero after the idle time
//! when `min = 0`. A request that finds no free slot waits — while the first replica cold-starts (the model is
//! loaded from the store and its sha256 verified), or for a slot to free up; beyond what `max` replicas can hold
//! it is shed with 429 and `Retry-After`, never queued without bound. Requests are decoded against the model's
//! inputs and predicted by the entry point the data plane's `predict()` uses; each is counted and timed in the
//! service's standard metrics (`NAME-http`), and the pool adds replicas, cold starts and shed requests.

use crate::Error;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_core::Cause;
use stratum_core::autoscale::{Autoscaler, ScalePolicy};
use stratum_core::ir::Application;
use stratum_core::sync::lock;
use stratum_core::types::Field;
use stratum_dataplane::component::{BuildContext, Context, DeadLetters};
use stratum_dataplane::metrics::Registry;
use stratum_dataplane::record::{Record, datum_to_json, from_json_object};
use stratum_dataplane::stream::predict::{NoPredictor, Predictor};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The largest prediction request (many records may go in one), the same wherever one is taken: the control
/// plane's API and gateway, `stratum up`'s API and every agent's, so that what one takes, the next takes too.
pub const PREDICTION_BODY_LIMIT: usize = 8 << 20;

/// How long a request waits for a slot (or a cold start) before it is answered 503.
const WAIT_LIMIT: Duration = Duration::from_secs(10);
/// How often the pool samples its load and decides its size.
const SCALE_TICK: Duration = Duration::from_millis(500);

/// Why a request was not answered with predictions: an HTTP status, a message, and when to try again.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// Why, for people.
    pub message: String,
    /// When to try again, if at all.
    pub retry_after_seconds: Option<u32>,
}

stratum_core::vocabulary! {
    /// The stable code of an error answer, for callers to act on (the message is for people).
    pub enum ErrorCode {
        /// The request is malformed or names something wrongly.
        BadRequest = "bad_request",
        /// No token, or one that is none of the server's.
        Unauthorized = "unauthorized",
        /// The token's role may not call the route.
        Forbidden = "forbidden",
        /// Nothing of that name.
        NotFound = "not_found",
        /// The route takes another method.
        MethodNotAllowed = "method_not_allowed",
        /// A body over the route's limit.
        TooLarge = "too_large",
        /// An applied file that does not check or plan.
        InvalidApplication = "invalid_application",
        /// Another version is starting.
        Conflict = "conflict",
        /// A service's queue is full: try again after `Retry-After`.
        Overloaded = "overloaded",
        /// The machine that serves it did not answer.
        BadGateway = "bad_gateway",
        /// Nothing runs yet, or the request waited too long.
        Unavailable = "unavailable",
        /// A fault of the server's own; the message says what.
        Internal = "internal",
    }
}

impl Refusal {
    /// The error code the APIs answer it with.
    pub fn code(&self) -> ErrorCode {
        match self.status {
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            429 => ErrorCode::Overloaded,
            500 => ErrorCode::Internal,
            502 => ErrorCode::BadGateway,
            503 => ErrorCode::Unavailable,
            _ => ErrorCode::BadRequest,
        }
    }

    fn bad_request(message: String) -> Refusal {
        Refusal { status: 400, message, retry_after_seconds: None }
    }
}

/// The name a service's requests are counted under (its stream part, if any, counts under the service's own).
pub fn requests_component(service: &str) -> String {
    format!("{service}-http")
}

/// Items decoded and predicted at a time: a large request's memory is its body, the items' places in it and its
/// predictions, not a JSON tree of all of it.
const PREDICT_CHUNK: usize = 1024;

/// A request's items as slices of its body: one object (and `true`), or the objects of an array. Only the array's
/// structure is read here; each item is decoded when its chunk is predicted.
fn split_items(body: &[u8]) -> Result<(Vec<&RawValue>, bool), Refusal> {
    let not_json = |error: serde_json::Error| Refusal::bad_request(format!("not JSON: {error}"));
    let shape = || Refusal::bad_request("expected a JSON object or an array of objects".into());
    match body.iter().find(|byte| !byte.is_ascii_whitespace()) {
        Some(b'[') => Ok((serde_json::from_slice(body).map_err(not_json)?, false)),
        Some(b'{') => Ok((vec![serde_json::from_slice(body).map_err(not_json)?], true)),
        Some(_) => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(not_json)?;
            Err(shape())
        }
        None => Err(Refusal::bad_request("not JSON: the body is empty".into())),
    }
}

/// The refusal for a service that is not here, listing those that are.
pub fn unknown_service<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> Refusal {
    let known: Vec<&str> = known.map(String::as_str).collect();
    Refusal {
        status: 404,
        message: format!("no service `{name}`; services: {}", known.join(", ")),
        retry_after_seconds: None,
    }
}

struct Replica {
    predictor: Predictor,
    slots: Arc<Semaphore>,
}

/// What the pool has done, for `/metrics` and tests.
#[derive(Default)]
struct PoolCounters {
    cold_starts: AtomicU64,
    cold_start_microseconds: AtomicU64,
    last_cold_start_microseconds: AtomicU64,
    rejected: AtomicU64,
    timed_out: AtomicU64,
}

/// A service's pool of replicas: it admits, queues and sheds requests, and scales (see the module documentation).
pub struct ServicePool {
    /// The service.
    pub name: String,
    /// Its model.
    pub model: String,
    /// How it scales.
    pub policy: ScalePolicy,
    application: Application,
    model_store: PathBuf,
    /// The layout of a request's records: the model's inputs.
    inputs: Vec<Field>,
    context: Context,
    replicas: Mutex<Vec<Arc<Replica>>>,
    starting: AtomicU32,
    /// A replica came up or a slot was freed.
    available: Notify,
    in_flight: AtomicU64,
    arrived: AtomicU64,
    /// Latency of the requests answered since the scaler's last tick.
    latency_microseconds: AtomicU64,
    answered: AtomicU64,
    /// Replicas kept at least, raised by `scale_out` policies.
    floor: AtomicU32,
    /// Requests turned away per thousand, set by `shed_load` policies.
    shed_per_thousand: AtomicU32,
    /// Every request's number.
    sequence: AtomicU64,
    autoscaler: Mutex<Autoscaler>,
    counters: PoolCounters,
    last_failure: Mutex<Option<(Instant, String)>>,
}

/// Takes a request off the in-flight count when it is answered, however it ends.
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ServicePool {
    /// A pool for `service`, with its `min` replicas loaded (the model is loaded once even for `min = 0`, so that
    /// a model that cannot load fails here and not at the first request).
    pub fn new(
        application: &Application,
        service: &str,
        model_store: &Path,
        metrics: &Registry,
    ) -> Result<Arc<ServicePool>, Error> {
        let failed = |source: Cause| Error::Service { service: service.into(), source };
        let item = application
            .services
            .iter()
            .find(|item| item.name == service)
            .ok_or_else(|| failed("no such service".into()))?;
        let model = application
            .models
            .iter()
            .find(|model| model.name == item.model)
            .ok_or_else(|| failed(format!("no model `{}`", item.model).into()))?;
        let scale = &item.scale;
        let policy =
            ScalePolicy::new(scale.min, scale.max, scale.concurrency, scale.idle.map(|idle| idle.0), scale.predictive);
        let component = requests_component(service);
        let pool = Arc::new(ServicePool {
            name: service.into(),
            model: model.name.clone(),
            policy: policy.clone(),
            application: application.clone(),
            model_store: model_store.to_path_buf(),
            inputs: model.inputs.clone(),
            context: Context {
                component: component.clone(),
                metrics: metrics.register(&component, "inference-http"),
                shutdown: tokio::sync::watch::channel(false).1,
                dead_letters: DeadLetters::default(),
            },
            replicas: Mutex::new(Vec::new()),
            starting: AtomicU32::new(0),
            available: Notify::new(),
            in_flight: AtomicU64::new(0),
            arrived: AtomicU64::new(0),
            latency_microseconds: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            floor: AtomicU32::new(0),
            shed_per_thousand: AtomicU32::new(0),
            sequence: AtomicU64::new(0),
            autoscaler: Mutex::new(Autoscaler::new(policy)),
            counters: PoolCounters::default(),
            last_failure: Mutex::new(None),
        });
        let first = pool.load().map_err(|error| failed(error.into()))?;
        let mut replicas = vec![first];
        for _ in 1..pool.policy.min {
            replicas.push(pool.load().map_err(|error| failed(error.into()))?);
        }
        if pool.policy.min > 0 {
            *lock(&pool.replicas) = replicas;
        }
        Ok(pool)
    }

    fn load(&self) -> Result<Arc<Replica>, NoPredictor> {
        let build = BuildContext {
            application: &self.application,
            base_dir: Path::new("."),
            fast_generators: false,
            generator_limit: None,
            simulated_seconds: None,
            time_scale: 1.0,
            model_store: Some(&self.model_store),
            mqtt_broker: None,
            data_dir: None,
        };
        let predictor = Predictor::load(&self.name, &self.context.component, &self.inputs, &build)?;
        let slots = Arc::new(Semaphore::new(self.policy.target_concurrency as usize));
        Ok(Arc::new(Replica { predictor, slots }))
    }

    /// Replicas now.
    pub fn replicas(&self) -> usize {
        lock(&self.replicas).len()
    }

    /// Requests being answered or waiting.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Keeps one more replica than before at least (a `scale_out` policy); the new floor, or `None` at `max`.
    pub fn scale_out(&self) -> Option<u32> {
        let floor = self.floor.load(Ordering::Relaxed).max(self.replicas() as u32);
        (floor < self.policy.max).then(|| {
            self.floor.store(floor + 1, Ordering::Relaxed);
            floor + 1
        })
    }

    /// Turns away `fraction` of the requests from now on (a `shed_load` policy; 0 stops it). Whether it changed.
    pub fn shed(&self, fraction: f64) -> bool {
        let per_thousand = (fraction.clamp(0.0, 1.0) * 1000.0).round() as u32;
        self.shed_per_thousand.swap(per_thousand, Ordering::Relaxed) != per_thousand
    }

    /// Replicas started.
    pub fn cold_starts(&self) -> u64 {
        self.counters.cold_starts.load(Ordering::Relaxed)
    }

    /// Requests shed.
    pub fn rejected(&self) -> u64 {
        self.counters.rejected.load(Ordering::Relaxed)
    }

    /// Its replicas and counters now, for the views, `/metrics` and the agents' heartbeats.
    pub fn state(&self) -> ServiceState {
        let counters = &self.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ServiceState {
            name: self.name.clone(),
            replicas: self.replicas() as u64,
            in_flight: self.in_flight(),
            cold_starts: read(&counters.cold_starts),
            cold_start_seconds: read(&counters.cold_start_microseconds) as f64 / 1e6,
            last_cold_start_seconds: read(&counters.last_cold_start_microseconds) as f64 / 1e6,
            rejected: read(&counters.rejected),
            timed_out: read(&counters.timed_out),
        }
    }

    /// Starts one replica in the background: a cold start, timed.
    fn start_replica(self: &Arc<Self>) {
        self.starting.fetch_add(1, Ordering::Relaxed);
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let loaded = pool.load();
            let microseconds = started.elapsed().as_micros() as u64;
            match loaded {
                Ok(replica) => {
                    lock(&pool.replicas).push(replica);
                    pool.counters.cold_starts.fetch_add(1, Ordering::Relaxed);
                    pool.counters.cold_start_microseconds.fetch_add(microseconds, Ordering::Relaxed);
                    pool.counters.last_cold_start_microseconds.store(microseconds, Ordering::Relaxed);
                    tracing::info!(service = pool.name, milliseconds = microseconds as f64 / 1000.0, "replica started");
                }
                Err(error) => {
                    pool.context.metrics.count_error();
                    tracing::warn!(service = pool.name, %error, "a replica failed to start");
                    // Kept as the refusal's message that requests get while no replica starts.
                    *lock(&pool.last_failure) = Some((Instant::now(), stratum_core::error_chain(&error)));
                }
            }
            pool.starting.fetch_sub(1, Ordering::Relaxed);
            pool.available.notify_waiters();
        });
    }

    /// A free slot on a running replica, if there is one.
    fn free_slot(&self) -> Option<(Arc<Replica>, OwnedSemaphorePermit)> {
        lock(&self.replicas)
            .iter()
            .find_map(|replica| replica.slots.clone().try_acquire_owned().ok().map(|permit| (replica.clone(), permit)))
    }

    /// Answers one request body.
    pub async fn predict(self: &Arc<Self>, body: &[u8]) -> Result<Value, Refusal> {
        let started = Instant::now();
        let metrics = &self.context.metrics;
        self.arrived.fetch_add(1, Ordering::Relaxed);
        let shed = u64::from(self.shed_per_thousand.load(Ordering::Relaxed));
        // Request numbers times a prime coprime with 1000 spread the shed ones evenly: exactly the fraction of
        // every thousand consecutive requests.
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        if shed > 0 && sequence.wrapping_mul(7919) % 1000 < shed {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal {
                status: 503,
                message: format!("service `{}` is shedding load by policy; try again shortly", self.name),
                retry_after_seconds: Some(1),
            });
        }
        let waiting = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let _in_flight = InFlight(&self.in_flight);
        // Beyond what the largest pool holds at once, plus as much again waiting: shed, do not queue.
        let capacity = u64::from(self.policy.max) * self.policy.target_concurrency as u64;
        if waiting > 2 * capacity {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal {
                status: 429,
                message: format!(
                    "service `{}` is at its maximum of {} replicas; try again shortly",
                    self.name, self.policy.max
                ),
                retry_after_seconds: Some(1),
            });
        }
        // Parsed only once admitted: a request that is shed costs nothing. The items are found here (slices of the
        // body); each chunk of them is decoded and predicted in turn below.
        let (items, single) = split_items(body).inspect_err(|_| metrics.count_error())?;
        let (replica, permit) = loop {
            // The common case first: a free slot, without registering to be woken.
            if let Some(slot) = self.free_slot() {
                break slot;
            }
            let notified = self.available.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(slot) = self.free_slot() {
                break slot;
            }
            if self.replicas() == 0 && self.starting.load(Ordering::Relaxed) == 0 {
                if let Some((when, message)) = lock(&self.last_failure).clone()
                    && when.elapsed() < Duration::from_secs(1)
                {
                    return Err(Refusal { status: 503, message, retry_after_seconds: Some(1) });
                }
                self.start_replica();
            }
            let remaining = WAIT_LIMIT.saturating_sub(started.elapsed());
            if tokio::time::timeout(remaining, notified).await.is_err() {
                self.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                return Err(Refusal {
                    status: 503,
                    message: format!("service `{}` had no free replica within {} s", self.name, WAIT_LIMIT.as_secs()),
                    retry_after_seconds: Some(1),
                });
            }
        };
        metrics.count_in(items.len(), body.len());
        let mut predictions: Vec<Value> = Vec::with_capacity(items.len());
        for (chunk, first) in items.chunks(PREDICT_CHUNK).zip((0..).step_by(PREDICT_CHUNK)) {
            let first = (!single).then_some(first);
            let records = self.decode(chunk, first).inspect_err(|_| metrics.count_error())?;
            predictions.extend(replica.predictor.predict(&records, &self.context).iter().map(datum_to_json));
        }
        drop(permit);
        self.available.notify_one();
        metrics.count_out(predictions.len(), 0);
        let elapsed = started.elapsed();
        metrics.observe_latency(elapsed);
        // Summed without a lock; the scaler turns it into a mean latency at its next tick.
        self.latency_microseconds.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.answered.fetch_add(1, Ordering::Relaxed);
        Ok(if single {
            json!({ "prediction": predictions.into_iter().next().unwrap_or(Value::Null) })
        } else {
            json!({ "predictions": predictions })
        })
    }

    /// The records of some items of a request; `first` is the index of the first item of an array (messages
    /// name the item), none for a request of one object.
    fn decode(&self, items: &[&RawValue], first: Option<usize>) -> Result<Vec<Record>, Refusal> {
        let mut records = Vec::with_capacity(items.len());
        for (offset, item) in items.iter().enumerate() {
            let place = first.map(|first| format!("item {}: ", first + offset)).unwrap_or_default();
            let object = match serde_json::from_str::<Value>(item.get()) {
                Ok(Value::Object(object)) => object,
                Ok(_) => return Err(Refusal::bad_request(format!("{place}expected a JSON object"))),
                Err(error) => return Err(Refusal::bad_request(format!("{place}not JSON: {error}"))),
            };
            let record = self.decode_object(&object).map_err(|reason| format!("{place}{reason}"));
            records.push(record.map_err(Refusal::bad_request)?);
        }
        Ok(records)
    }

    fn decode_object(&self, object: &serde_json::Map<String, Value>) -> Result<Record, String> {
        from_json_object(object, &self.inputs).map_err(|reason| {
            let names: Vec<String> =
                self.inputs.iter().map(|field| format!("{}: {}", field.name, field.data_type)).collect();
            format!("{reason} (model `{}` takes {})", self.model, names.join(", "))
        })
    }

    /// Samples the load, decides the size and acts, until `stop` turns true. `on_scale` hears of every change.
    pub async fn autoscale(
        self: Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
        on_scale: impl Fn(&str, u32, u32, &str) + Send,
    ) {
        let started = Instant::now();
        let mut tick = tokio::time::interval(SCALE_TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
            let now = started.elapsed().as_secs_f64();
            let current = self.replicas() as u32 + self.starting.load(Ordering::Relaxed);
            let decision = {
                let mut autoscaler = lock(&self.autoscaler);
                let answered = self.answered.swap(0, Ordering::Relaxed);
                let latency = self.latency_microseconds.swap(0, Ordering::Relaxed);
                if answered > 0 {
                    autoscaler.observe_latency(latency as f64 / answered as f64 / 1e6);
                }
                autoscaler.observe(
                    now,
                    self.in_flight.load(Ordering::Relaxed) as f64,
                    self.arrived.swap(0, Ordering::Relaxed),
                );
                let mut decision = autoscaler.decide(now, current);
                let floor = self.floor.load(Ordering::Relaxed).min(self.policy.max);
                if decision.replicas < floor {
                    decision.replicas = floor;
                    decision.reason = "policy";
                }
                decision
            };
            if decision.replicas > current {
                for _ in current..decision.replicas {
                    self.start_replica();
                }
                on_scale(&self.name, current, decision.replicas, decision.reason);
            } else if decision.replicas < current {
                // Only replicas with nothing in flight go; a busy one is removed at a later tick.
                let mut replicas = lock(&self.replicas);
                let before = replicas.len() as u32;
                let mut excess = current - decision.replicas;
                replicas.retain(|replica| {
                    let idle = replica.slots.available_permits() == self.policy.target_concurrency as usize;
                    if excess > 0 && idle {
                        excess -= 1;
                        false
                    } else {
                        true
                    }
                });
                let after = replicas.len() as u32;
                drop(replicas);
                if after < before {
                    on_scale(&self.name, before, after, decision.reason);
                }
            }
        }
    }
}

/// These pools' metrics in the Prometheus text format (see [`render_prometheus`]).
pub fn render_pools<'a>(pools: impl Iterator<Item = &'a Arc<ServicePool>>) -> String {
    render_prometheus(&pools.map(|pool| (String::new(), pool.state())).collect::<Vec<_>>())
}

/// Services' pools (replicas, in flight, cold starts, shed requests) in the Prometheus text format, one family per
/// metric with a sample per pool; each pool's labels (such as `agent="edge1",`) come before its service's.
pub fn render_prometheus(pools: &[(String, ServiceState)]) -> String {
    let mut out = String::new();
    let Some((_, first)) = pools.first() else { return out };
    for (index, (name, kind, help, _)) in first.gauges().iter().enumerate() {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, pool) in pools {
            out.push_str(&format!("{name}{{{labels}service=\"{}\"}} {}\n", pool.name, pool.gauges()[index].3));
        }
    }
    out
}

/// A service's pool of replicas now: what the views show beside its metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    /// The service.
    pub name: String,
    /// Replicas now.
    pub replicas: u64,
    /// Requests being answered or waiting.
    pub in_flight: u64,
    /// Replicas started, and the time they took.
    pub cold_starts: u64,
    /// Seconds all cold starts took.
    pub cold_start_seconds: f64,
    /// Seconds the latest cold start took.
    pub last_cold_start_seconds: f64,
    /// Requests shed with 429.
    pub rejected: u64,
    /// Requests answered 503 after waiting.
    pub timed_out: u64,
}

impl ServiceState {
    /// Adds another replica pool of the same service (on another machine).
    pub fn add(&mut self, other: &ServiceState) {
        self.replicas += other.replicas;
        self.in_flight += other.in_flight;
        self.cold_starts += other.cold_starts;
        self.cold_start_seconds += other.cold_start_seconds;
        self.last_cold_start_seconds = self.last_cold_start_seconds.max(other.last_cold_start_seconds);
        self.rejected += other.rejected;
        self.timed_out += other.timed_out;
    }

    /// (metric, type, help, value) of each of its Prometheus metrics.
    pub(crate) fn gauges(&self) -> [(&'static str, &'static str, &'static str, f64); 7] {
        [
            ("stratum_service_replicas", "gauge", "Replicas running.", self.replicas as f64),
            ("stratum_service_in_flight", "gauge", "Requests being answered or waiting.", self.in_flight as f64),
            ("stratum_service_cold_starts_total", "counter", "Replicas started.", self.cold_starts as f64),
            (
                "stratum_service_cold_start_seconds_total",
                "counter",
                "Time spent starting replicas.",
                self.cold_start_seconds,
            ),
            (
                "stratum_service_last_cold_start_seconds",
                "gauge",
                "Time the last replica took to start.",
                self.last_cold_start_seconds,
            ),
            ("stratum_service_rejected_total", "counter", "Requests shed with 429.", self.rejected as f64),
            (
                "stratum_service_timed_out_total",
                "counter",
                "Requests answered 503 after waiting.",
                self.timed_out as f64,
            ),
        ]
    }
}
