//! The fleet load generator: one process that runs thousands of simulated agents against a real `stratum server`,
//! speaking its protocol — each joins, heartbeats at the interval the server gives, takes the assignments it is
//! given and reports their components running (with metrics), as `stratum agent` does, without running them. It
//! measures the control plane at fleet sizes no machine could hold as real agents (bench/fleet.py drives it).
//!
//! Usage: fleet --server URL --join-token TOKEN --agents N [--prefix edge] [--tier edge] [--cpu 2]
//!
//! Agents are named PREFIX1 … PREFIXN. Standard input takes commands, a line each: `stop NAME [COMPONENT …]` (the
//! agent goes silent, as a machine that died; the fleet watches the components named, or all it ran, until other
//! agents run them) and `start NAME` (it heartbeats again). Standard output gets one JSON line a
//! second with what the fleet sees (agents joined, agents with an assignment, components assigned, heartbeats and
//! their latency), and a line when the components of a stopped agent all run on other agents again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use stratum_control::protocol::{Heartbeat, HeartbeatAnswer, Join, MeasuredResources};
use stratum_control::server::AGENT_KEY_HEADER;
use stratum_core::ir::Tier;
use stratum_core::sync::lock;
use stratum_dataplane::metrics::{LATENCY_BUCKETS_MICROSECONDS, MetricsSnapshot};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// At most this many requests are in flight at once: the fleet's sockets stay few, as a fleet behind one NAT's.
const IN_FLIGHT: usize = 256;
/// Of those, at most this many are joins: agents that joined heartbeat beside the ones still joining, as real
/// agents do (each has its own connection), instead of queueing behind thousands of joins.
const JOINS_IN_FLIGHT: usize = 64;

/// How often the fleet looks whether a stopped agent's components run elsewhere again (the precision of that
/// figure).
const LOOK_EVERY: Duration = Duration::from_millis(50);

struct Options {
    server: String,
    join_token: String,
    agents: usize,
    prefix: String,
    tier: Tier,
    cpu: f64,
}

fn options() -> Result<Options, Failure> {
    let mut arguments = std::env::args().skip(1);
    let mut options = Options {
        server: String::new(),
        join_token: String::new(),
        agents: 0,
        prefix: "edge".into(),
        tier: Tier::Edge,
        cpu: 2.0,
    };
    while let Some(flag) = arguments.next() {
        let mut value = || arguments.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--server" => options.server = value()?.trim_end_matches('/').to_string(),
            "--join-token" => options.join_token = value()?,
            "--agents" => options.agents = value()?.parse()?,
            "--prefix" => options.prefix = value()?,
            "--tier" => options.tier = Tier::from_name(&value()?).ok_or("--tier is edge, fog or cloud")?,
            "--cpu" => options.cpu = value()?.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    if options.server.is_empty() || options.join_token.is_empty() || options.agents == 0 {
        return Err("usage: fleet --server URL --join-token TOKEN --agents N [--prefix edge] [--tier edge]".into());
    }
    Ok(options)
}

/// What one simulated agent was last told to run.
#[derive(Default)]
struct Assigned {
    key: Option<String>,
    components: Vec<String>,
}

/// What the fleet counted since the last report.
#[derive(Default)]
struct Counters {
    heartbeats: u64,
    errors: u64,
    assignments: u64,
    latencies_ms: Vec<f64>,
}

struct Fleet {
    options: Options,
    client: reqwest::Client,
    /// Slots for heartbeats and other requests.
    in_flight: tokio::sync::Semaphore,
    /// Slots for joins.
    joining: tokio::sync::Semaphore,
    joined: AtomicUsize,
    assigned: Mutex<BTreeMap<String, Assigned>>,
    stopped: Mutex<BTreeSet<String>>,
    counters: Mutex<Counters>,
}

fn main() -> Result<(), Failure> {
    let options = options()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(IN_FLIGHT).build()?;
    let fleet = Arc::new(Fleet {
        options,
        client,
        in_flight: tokio::sync::Semaphore::new(IN_FLIGHT - JOINS_IN_FLIGHT),
        joining: tokio::sync::Semaphore::new(JOINS_IN_FLIGHT),
        joined: AtomicUsize::new(0),
        assigned: Mutex::default(),
        stopped: Mutex::default(),
        counters: Mutex::default(),
    });
    // One thread: the fleet leaves the other core to the server it measures.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        for index in 1..=fleet.options.agents {
            let name = format!("{}{index}", fleet.options.prefix);
            tokio::spawn(agent(fleet.clone(), name));
        }
        tokio::spawn(commands(fleet.clone()));
        report(fleet).await;
    });
    Ok(())
}

/// Follows the commands on standard input; a stopped agent's components are watched until they run elsewhere.
async fn commands(fleet: Arc<Fleet>) {
    // Standard input is read on a thread of its own: the runtime's one thread never blocks.
    let (send, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["stop", name, watched @ ..] => {
                lock(&fleet.stopped).insert(name.to_string());
                let components = match watched {
                    [] => {
                        lock(&fleet.assigned).get(*name).map(|assigned| assigned.components.clone()).unwrap_or_default()
                    }
                    watched => watched.iter().map(|component| component.to_string()).collect(),
                };
                tokio::spawn(watch_replaced(fleet.clone(), name.to_string(), components));
            }
            ["start", name] => {
                lock(&fleet.stopped).remove(*name);
            }
            _ => eprintln!("fleet: unknown command {line:?} (stop NAME [COMPONENT …] | start NAME)"),
        }
    }
}

/// Says when every component `name` ran when it stopped is assigned to another agent, measured from the stop.
async fn watch_replaced(fleet: Arc<Fleet>, name: String, components: Vec<String>) {
    let stopped = Instant::now();
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let replaced = {
            let assigned = lock(&fleet.assigned);
            components.iter().all(|component| {
                assigned.iter().any(|(agent, assigned)| *agent != name && assigned.components.contains(component))
            })
        };
        if replaced {
            println!(
                "{{\"replaced\": \"{name}\", \"components\": {}, \"seconds\": {:.2}}}",
                components.len(),
                stopped.elapsed().as_secs_f64()
            );
            return;
        }
    }
}

/// A JSON line a second: what the fleet sees.
async fn report(fleet: Arc<Fleet>) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let counters = std::mem::take(&mut *lock(&fleet.counters));
        let (agents, components) = {
            let assigned = lock(&fleet.assigned);
            let with = assigned.values().filter(|assigned| assigned.key.is_some()).count();
            (with, assigned.values().map(|assigned| assigned.components.len()).sum::<usize>())
        };
        let mut latencies = counters.latencies_ms;
        latencies.sort_by(f64::total_cmp);
        let percentile = |fraction: f64| {
            latencies.get(((latencies.len() as f64 - 1.0) * fraction).round() as usize).copied().unwrap_or(0.0)
        };
        println!(
            "{{\"seconds\": {:.1}, \"joined\": {}, \"assigned_agents\": {agents}, \"components\": {components}, \
             \"heartbeats\": {}, \"assignments\": {}, \"errors\": {}, \"heartbeat_p50_ms\": {:.2}, \
             \"heartbeat_p99_ms\": {:.2}}}",
            started.elapsed().as_secs_f64(),
            fleet.joined.load(Ordering::Relaxed),
            counters.heartbeats,
            counters.assignments,
            counters.errors,
            percentile(0.5),
            percentile(0.99),
        );
    }
}

/// A spread in [0, 1) that follows from the agent's name: the fleet's heartbeats do not come in step.
fn spread(name: &str) -> f64 {
    let hash =
        name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| (hash ^ byte as u64).wrapping_mul(0x100_0000_01b3));
    (hash % 10_000) as f64 / 10_000.0
}

/// One simulated agent, forever: joins (again, when the server forgets it), then heartbeats.
async fn agent(fleet: Arc<Fleet>, name: String) {
    let mut key: Option<String> = None;
    let mut interval = Duration::from_secs(1);
    let mut joined = false;
    let mut counted = false;
    let mut running: Option<String> = None;
    let mut components: Vec<String> = Vec::new();
    let mut beats: u64 = 0;
    loop {
        if lock(&fleet.stopped).contains(&name) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        if !joined {
            match join(&fleet, &name, key.as_deref()).await {
                Ok((issued, told)) => {
                    key = key.or(issued);
                    interval = told;
                    joined = true;
                    if !std::mem::replace(&mut counted, true) {
                        fleet.joined.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(interval.mul_f64(spread(&name))).await;
                }
                Err(error) => {
                    lock(&fleet.counters).errors += 1;
                    tell(&name, "join", &*error);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            continue;
        }
        beats += 1;
        let beat = Heartbeat { running: running.clone(), metrics: metrics(&components, beats), ..Heartbeat::default() };
        let sent = Instant::now();
        match heartbeat(&fleet, &name, key.as_deref(), &beat).await {
            Ok(Some(answer)) => {
                if let Some(milliseconds) = answer.heartbeat_milliseconds.filter(|milliseconds| *milliseconds > 0) {
                    interval = Duration::from_millis(milliseconds);
                }
                let mut counters = lock(&fleet.counters);
                counters.heartbeats += 1;
                counters.latencies_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
                if let Some(assignment) = answer.assignment {
                    counters.assignments += 1;
                    // A real agent starts the part before it reports the key as running; this one runs nothing.
                    running = Some(assignment.key.clone());
                    components = assignment.components.clone();
                    let mut assigned = lock(&fleet.assigned);
                    let entry = assigned.entry(name.clone()).or_default();
                    entry.key = Some(assignment.key);
                    entry.components = assignment.components;
                }
            }
            Ok(None) => joined = false,
            Err(error) => {
                lock(&fleet.counters).errors += 1;
                tell(&name, "heartbeat", &*error);
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// The first few failures are told on standard error, then they are only counted.
fn tell(name: &str, what: &str, error: &dyn std::error::Error) {
    static TOLD: AtomicUsize = AtomicUsize::new(0);
    if TOLD.fetch_add(1, Ordering::Relaxed) < 10 {
        eprintln!("fleet: {name}: {what}: {}", stratum_core::error_chain(error));
    }
}

/// The counters a running component would report after `beats` heartbeats: ten records a heartbeat each.
fn metrics(components: &[String], beats: u64) -> Vec<MetricsSnapshot> {
    components
        .iter()
        .map(|component| MetricsSnapshot {
            component: component.clone(),
            kind: "stream".into(),
            events_in: beats * 10,
            events_out: beats * 10,
            bytes_in: beats * 640,
            bytes_out: beats * 640,
            latency_buckets: vec![0; LATENCY_BUCKETS_MICROSECONDS.len() + 1],
            ..MetricsSnapshot::default()
        })
        .collect()
}

/// Joins: the key issued (at the first join) and the heartbeat interval the server gives.
async fn join(fleet: &Fleet, name: &str, key: Option<&str>) -> Result<(Option<String>, Duration), Failure> {
    let join = Join {
        name: name.to_string(),
        tier: Some(fleet.options.tier),
        labels: BTreeMap::new(),
        resources: MeasuredResources {
            cpu: fleet.options.cpu,
            memory_bytes: 2 << 30,
            arch: std::env::consts::ARCH.into(),
            disk_free_bytes: Some(16 << 30),
        },
        // Nothing listens there: the fleet's agents run no data plane, and no path reaches them.
        data_address: "127.0.0.1:9".into(),
        api_address: None,
    };
    let answer: serde_json::Value =
        post(fleet, &fleet.joining, "/v1/agents/join", key, &join).await?.ok_or("join answered 404")?;
    let issued = answer["key"].as_str().map(str::to_string);
    let milliseconds = answer["heartbeat_milliseconds"].as_u64().unwrap_or(1000);
    Ok((issued, Duration::from_millis(milliseconds)))
}

async fn heartbeat(
    fleet: &Fleet,
    name: &str,
    key: Option<&str>,
    beat: &Heartbeat,
) -> Result<Option<HeartbeatAnswer>, Failure> {
    post(fleet, &fleet.in_flight, &format!("/v1/agents/{name}/heartbeat"), key, beat).await
}

/// A POST with the join token (and the agent's key), once one of `slots` is free; the answer, or `None` on 404.
async fn post<T: serde::Serialize, A: serde::de::DeserializeOwned>(
    fleet: &Fleet,
    slots: &tokio::sync::Semaphore,
    path: &str,
    key: Option<&str>,
    body: &T,
) -> Result<Option<A>, Failure> {
    let _slot = slots.acquire().await?;
    let mut request = fleet
        .client
        .post(format!("{}{path}", fleet.options.server))
        .bearer_auth(&fleet.options.join_token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body)?);
    if let Some(key) = key {
        request = request.header(AGENT_KEY_HEADER, key);
    }
    let response = request.send().await?;
    match response.status().as_u16() {
        404 => Ok(None),
        200 => Ok(Some(serde_json::from_slice(&response.bytes().await?)?)),
        status => Err(format!("{path} answered {status}: {}", response.text().await.unwrap_or_default()).into()),
    }
}
