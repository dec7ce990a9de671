//! Stratum across real machines: `stratum server` (the control plane), `stratum agent` (one per machine),
//! `stratum apply` (send an application to the control plane) and `stratum status`.

use crate::Outcome;
use crate::commands::{checked_without_errors, planned_or_report};
use crate::output::{ColorChoice, Format};
use crate::running::{parse_duration, runtime};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;
use stratum_api::views::{AppView, ApplyAnswer, ErrorBody, PhaseName, SourceText};
use stratum_api::{ApiConfig, ApiState, Tokens};
use stratum_control::agent::{Agent, AgentOptions};
use stratum_control::server::{Server, ServerOptions};
use stratum_core::ir::Tier;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct ServerArgs {
    /// Back the control plane's state up, or restore it (instead of running it).
    #[command(subcommand)]
    action: Option<ServerAction>,
    /// Where the API (for agents, `apply`, `status`) listens.
    #[arg(long, default_value = "127.0.0.1:7070", value_name = "ADDRESS")]
    listen: SocketAddr,
    /// The state store and the model store agents pull from.
    #[arg(long, default_value = ".stratum-server")]
    state_dir: PathBuf,
    /// The operator's token, for `apply`, `train --server` and reading (or STRATUM_TOKEN).
    #[arg(long, env = "STRATUM_TOKEN", hide_env_values = true, required = true)]
    token: Option<String>,
    /// A read-only token for `status`, events and metrics (or STRATUM_VIEWER_TOKEN).
    #[arg(long, env = "STRATUM_VIEWER_TOKEN", hide_env_values = true)]
    viewer_token: Option<String>,
    /// The token agents join with (or STRATUM_JOIN_TOKEN); it cannot apply, train or read.
    #[arg(long, env = "STRATUM_JOIN_TOKEN", hide_env_values = true, required = true)]
    join_token: Option<String>,
    /// An agent silent for this long is lost and its components move.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    agent_timeout: Duration,
    /// Serve plain HTTP, without TLS: for development on one machine only, since tokens, agent keys and data
    /// then cross the network in the clear.
    #[arg(long)]
    plain_http: bool,
    /// Another name or address the server's certificate is valid for (repeatable), for browsers and `curl`
    /// reaching it by that name; Stratum's agents and commands need none.
    #[arg(long = "tls-name", value_name = "NAME")]
    tls_names: Vec<String>,
    /// Keep the state in PostgreSQL instead of STATE_DIR/state.db (or STRATUM_STORE), e.g.
    /// `postgres://stratum:PASSWORD@db.example:5432/stratum`: run two or more servers on it and one leads while the
    /// others wait to take over; agents list them all in --server.
    #[arg(long, env = "STRATUM_STORE", hide_env_values = true, value_name = "URL")]
    store: Option<String>,
    /// The authority (PEM) that signed the PostgreSQL server's certificate (or STRATUM_STORE_CA): the store is
    /// then reached over TLS that trusts it alone.
    #[arg(long, env = "STRATUM_STORE_CA", value_name = "FILE", requires = "store")]
    store_ca: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub(crate) enum ServerAction {
    /// Copy the state directory — state store, models, the cluster's authority and secrets, the applied file —
    /// into a new folder, consistently, while the server runs.
    Backup {
        /// The server's state directory.
        #[arg(long, default_value = ".stratum-server")]
        state_dir: PathBuf,
        /// The new folder the backup goes into.
        #[arg(long, value_name = "FOLDER")]
        to: PathBuf,
    },
    /// Put a backup back into a state directory (checked against its manifest first); then start `stratum
    /// server` on it.
    Restore {
        /// The backup's folder.
        #[arg(long, value_name = "FOLDER")]
        from: PathBuf,
        /// The state directory to restore into; it must have no state store yet, unless --force.
        #[arg(long, default_value = ".stratum-server")]
        state_dir: PathBuf,
        /// Replace the state directory's store and files (stop its server first).
        #[arg(long)]
        force: bool,
    },
}

/// `stratum server backup` and `stratum server restore`.
fn server_action(action: ServerAction) -> anyhow::Result<Outcome> {
    match action {
        ServerAction::Backup { state_dir, to } => {
            let manifest = stratum_control::backup::backup(&state_dir, &to)?;
            println!(
                "backed up {} into {}: {} files, {}",
                state_dir.display(),
                to.display(),
                manifest.files.len(),
                stratum_core::units::ByteSize(manifest.bytes())
            );
        }
        ServerAction::Restore { from, state_dir, force } => {
            let manifest = stratum_control::backup::restore(&from, &state_dir, force)?;
            println!(
                "restored {} files ({}) into {}; start `stratum server --state-dir {}` on it",
                manifest.files.len(),
                stratum_core::units::ByteSize(manifest.bytes()),
                state_dir.display(),
                state_dir.display()
            );
        }
    }
    Ok(Outcome::Success)
}

#[derive(clap::Args)]
pub(crate) struct AgentArgs {
    /// The control plane, `https://host:port` (`http://` for one started with --plain-http). Replicas that share
    /// a state store (`stratum server --store`): each of them, comma-separated or repeated; the agent follows the
    /// one that leads.
    #[arg(long = "server", value_name = "URL", value_delimiter = ',', required = true)]
    servers: Vec<String>,
    /// The cluster's join token (or STRATUM_JOIN_TOKEN); over https:// the agent trusts the authority the control
    /// plane proves with it. Or the join string in the server's STATE_DIR/join-string, `stratum1:SHA256:TOKEN`,
    /// which also pins the authority by its hash.
    #[arg(long, env = "STRATUM_JOIN_TOKEN", hide_env_values = true)]
    join_token: String,
    /// This machine's name; a node of that name in the application is the machine the plan means.
    #[arg(long)]
    name: String,
    /// This machine is a member of the pool POOL: its name in the plan is `POOL-N`, N one more than the number
    /// that ends `--name` (a StatefulSet pod's ordinal: `agent-cloud-workers-0` is `cloud_workers-1`).
    #[arg(long, value_name = "POOL")]
    pool: Option<String>,
    /// The tier (edge, fog, cloud); the application's node of the same name says when omitted.
    #[arg(long, value_parser = parse_tier)]
    tier: Option<Tier>,
    /// A label, `key=value` (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Where data from other agents arrives.
    #[arg(long, default_value = "0.0.0.0:0", value_name = "ADDRESS")]
    data_listen: SocketAddr,
    /// The address other agents reach this one's data at (when not the one it listens on).
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Buffers, models and files the agent writes.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Stand generators in for sources that need the outside world (MQTT, NATS, Kafka, HTTP) (or
    /// STRATUM_SIMULATE=true).
    #[arg(long, env = "STRATUM_SIMULATE")]
    simulate: bool,
    /// Leave tools that run a container image to the deployment, which runs them as containers of their own
    /// (the generated compose file and Kubernetes manifests do).
    #[arg(long)]
    no_image_tools: bool,
    /// The MQTT broker for components that name none.
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// Serve this agent's API here: its Prometheus `/metrics` (machine and components) and predictions of the
    /// services it runs, which the control plane's gateway forwards (`127.0.0.1:0` picks a port).
    #[arg(long, value_name = "ADDRESS")]
    api: Option<SocketAddr>,
}

/// How an operator's command reaches a control plane.
#[derive(clap::Args)]
pub(crate) struct Operator {
    /// The control plane, `https://host:port`.
    #[arg(long, value_name = "URL")]
    server: String,
    /// The operator's token (or STRATUM_TOKEN).
    #[arg(long, env = "STRATUM_TOKEN", hide_env_values = true)]
    token: String,
    /// The cluster's certificate authority, to reach a control plane over https:// (or STRATUM_CA_CERT): the
    /// server's `STATE_DIR/tls/ca.pem`. Without it, the authority the control plane proves with the token.
    #[arg(long, env = "STRATUM_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

impl Operator {
    /// The control plane's URL without a trailing slash, and a client for it.
    async fn client(&self) -> anyhow::Result<(String, reqwest::Client)> {
        let server = self.server.trim_end_matches('/').to_string();
        let client = api_client(&server, self.ca_cert.as_deref(), Some(&self.token)).await?;
        Ok((server, client))
    }
}

#[derive(clap::Args)]
pub(crate) struct ApplyArgs {
    /// The .stratum file to check, plan and send.
    file: PathBuf,
    #[command(flatten)]
    operator: Operator,
    /// Before sending, make the models the services serve ready in this model store as `stratum up` does (a model
    /// trained on the same data is reused; otherwise it is trained, on data bootstrapped from simulated history when
    /// its dataset does not exist yet), and send the control plane those it does not have.
    #[arg(long, value_name = "STORE")]
    prepare_models: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct StatusArgs {
    /// The control plane, `http://host:port` (a `stratum server`, or the API of `stratum up`).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:7070")]
    server: String,
    /// The operator's or the viewer's token (or STRATUM_TOKEN).
    #[arg(long, env = "STRATUM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The cluster's certificate authority, to reach a control plane over https:// (or STRATUM_CA_CERT): the
    /// server's `STATE_DIR/tls/ca.pem`.
    #[arg(long, env = "STRATUM_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(clap::Args)]
pub(crate) struct ForgetArgs {
    /// The agent's name.
    name: String,
    #[command(flatten)]
    operator: Operator,
}

#[derive(clap::Args)]
pub(crate) struct BrokerArgs {
    /// Where the MQTT 3.1.1 listener accepts connections.
    #[arg(long, default_value = "0.0.0.0:1883", value_name = "ADDRESS")]
    listen: SocketAddr,
    /// Where the MQTT 5 listener accepts connections.
    #[arg(long, default_value = "0.0.0.0:1884", value_name = "ADDRESS")]
    listen_v5: SocketAddr,
}

#[derive(clap::Args)]
pub(crate) struct HealthArgs {
    /// The address to ask (or STRATUM_HEALTH_URL): an HTTP(S) URL, healthy when it answers 2xx within 5 s; one
    /// without a scheme, `HOST:PORT/PATH`, is asked over TLS and then, if that fails, over plain HTTP (a server or
    /// agent runs either way); or `tcp://HOST:PORT`, healthy when it accepts a connection (the broker).
    #[arg(env = "STRATUM_HEALTH_URL", default_value = "127.0.0.1:7070/v1/openapi.json", value_name = "URL")]
    url: String,
}

fn parse_tier(text: &str) -> Result<Tier, String> {
    match text {
        "edge" => Ok(Tier::Edge),
        "fog" => Ok(Tier::Fog),
        "cloud" => Ok(Tier::Cloud),
        other => Err(format!("`{other}` is not a tier: edge, fog or cloud")),
    }
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .ok_or_else(|| format!("`{text}` is not a label: write key=value"))
}

async fn until_stopped(stop: std::sync::Arc<tokio::sync::watch::Sender<bool>>) {
    crate::running::shutdown_requested().await;
    stop.send_replace(true);
}

pub(crate) fn server(args: ServerArgs) -> anyhow::Result<Outcome> {
    if let Some(action) = args.action {
        return server_action(action);
    }
    // Both are required by clap whenever no subcommand is given.
    let (Some(token), Some(join_token)) = (args.token, args.join_token) else {
        anyhow::bail!("--token and --join-token are required to run the server");
    };
    if join_token == token || args.viewer_token.as_ref().is_some_and(|viewer| *viewer == join_token) {
        eprintln!(
            "error: the join token must differ from the operator's and the viewer's: agents must not act as them"
        );
        return Ok(Outcome::UserError);
    }
    let runtime = runtime()?;
    // On a store replicas share, this one waits until it leads, then takes the files the cluster shares (its
    // authority and secrets among them) before anything else reads them.
    let (state, lead) = match &args.store {
        Some(url) => {
            let authority = match &args.store_ca {
                Some(file) => Some(std::fs::read_to_string(file).map_err(|error| {
                    anyhow::anyhow!("cannot read the state store's authority {}: {error}", file.display())
                })?),
                None => None,
            };
            let waiting = lead_when_free(url, authority, &args.listen);
            let Some(lead) = runtime.block_on(waiting)? else { return Ok(Outcome::Success) };
            lead
        }
        None => (stratum_control::state::StateStore::open(&args.state_dir.join("state.db"))?, None),
    };
    if let (Some(shared), Some(_)) = (state.shared(), &lead) {
        let taken = stratum_control::lead::download(shared, &args.state_dir)?;
        tracing::info!(files = taken, "took the shared files from the state store");
    }
    let tls_folder = args.state_dir.join("tls");
    let authority = if args.plain_http {
        None
    } else {
        Some(std::sync::Arc::new(
            stratum_control::pki::Authority::open(&tls_folder).map_err(|error| anyhow::anyhow!("{error}"))?,
        ))
    };
    let server_tls = match &authority {
        Some(authority) => {
            let identity = authority
                .issue(stratum_dataplane::tls::SERVER_IDENTITY, &server_names(&args.listen, &args.tls_names))
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            Some(stratum_dataplane::tls::ServerTls::new(&identity)?)
        }
        None => None,
    };
    // The join string holds the join token: it goes to a file only this user reads, never to the log.
    let join_file = args.state_dir.join("join-string");
    let authority_sha256 = match &authority {
        Some(authority) => {
            let ca_sha256 = authority.sha256()?;
            let join = stratum_control::pki::JoinString { ca_sha256: ca_sha256.clone(), token: join_token.clone() };
            stratum_control::files::write_secret(&join_file, format!("{}\n", join.render()).as_bytes())
                .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", join_file.display()))?;
            Some(ca_sha256)
        }
        None => None,
    };
    let options = ServerOptions {
        state_dir: args.state_dir.clone(),
        agent_timeout: args.agent_timeout,
        join_token: join_token.clone(),
        authority,
    };
    let server = match Server::open_with(options, state.clone()) {
        Ok(server) => server,
        Err(error) => {
            anyhow::bail!("{error}");
        }
    };
    // What another replica needs to take over is in the store before any agent hears of this one.
    if let Some(shared) = state.shared() {
        stratum_control::lead::Mirror::default().upload(shared, &args.state_dir)?;
    }
    // Without a viewer's token nobody reads with one: a random token stands in, never shown.
    let viewer = match args.viewer_token {
        Some(viewer) => viewer,
        None => Tokens::random()?.viewer,
    };
    let config = ApiConfig {
        tokens: Tokens { operator: token, viewer, join: Some(join_token) },
        source_file: args.state_dir.join("app").join("app.stratum"),
        state_dir: args.state_dir.clone(),
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                anyhow::bail!("cannot serve on {}: {error} (choose another address with --listen)", args.listen);
            }
        };
        // Versions applied through the API (`stratum apply`, the editor) go straight to the server.
        let (plane, _) = ApiState::new(config, Some(server.clone()));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stop = std::sync::Arc::new(stop);
        tokio::spawn(until_stopped(stop.clone()));
        tokio::spawn(server.run(stopped.clone()));
        // A replica that can no longer renew its lead stops serving at once: another may lead by now.
        let deposed = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        if let Some(lead) = lead.map(std::sync::Arc::new) {
            tokio::spawn({
                let (lead, stopped) = (lead.clone(), stopped.clone());
                async move { lead.mirror(args.state_dir.clone(), stopped).await }
            });
            let (stop, stopped, deposed) = (stop.clone(), stopped.clone(), deposed.clone());
            tokio::spawn(async move {
                if let Err(error) = lead.keep(stopped).await {
                    *deposed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(stratum_core::error_chain(&error));
                    stop.send_replace(true);
                }
            });
        }
        let address = listener.local_addr()?;
        match &authority_sha256 {
            Some(ca_sha256) => eprintln!(
                "control plane on https://{address}: dashboard and API (sign in with the operator's or the viewer's \
                 token), over TLS with a certificate from the cluster's authority {ca} (sha256 {ca_sha256}).\n\
                 Agents join with `stratum agent --server https://HOST:{port} --join-token JOIN_TOKEN --name NAME`: \
                 they trust the authority this server proves with the join token. To pin it by its hash instead, \
                 give them the join string in {join}.\nCtrl-C stops it.",
                ca = tls_folder.join("ca.pem").display(),
                join = join_file.display(),
                port = address.port(),
            ),
            None => eprintln!(
                "control plane on http://{address}, without TLS (--plain-http: for one machine only): agents join \
                 here with the bare join token; dashboard and API at the same address (sign in with the operator's \
                 or the viewer's token). Ctrl-C stops it."
            ),
        }
        let served = stratum_api::serve(listener, plane, server_tls, stopped).await;
        if let Some(why) = deposed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            anyhow::bail!("{why}; stopped serving (start it again: it waits as a standby)");
        }
        match served {
            Ok(()) => Ok(Outcome::Success),
            Err(error) => Err(anyhow::anyhow!("{error}")),
        }
    })
}

/// Connects to the shared state store at `url` and waits, as a standby, until this replica leads (`None`:
/// stopped while waiting). Says who leads meanwhile.
async fn lead_when_free(
    url: &str,
    authority: Option<String>,
    listen: &SocketAddr,
) -> anyhow::Result<Option<(stratum_control::state::StateStore, Option<stratum_control::lead::Lead>)>> {
    let connecting = url.to_string();
    let state = tokio::task::spawn_blocking(move || {
        stratum_control::state::StateStore::connect(&connecting, authority.as_deref())
    })
    .await??;
    // Fail now, not after waiting, when the address is taken.
    drop(tokio::net::TcpListener::bind(listen).await.map_err(|error| {
        anyhow::anyhow!("cannot serve on {listen}: {error} (choose another address with --listen)")
    })?);
    let holder = stratum_control::lead::replica_name(&listen.to_string());
    let shown = state.shared().map(|shared| shared.shown().to_string()).unwrap_or_default();
    let taking = stratum_control::lead::Lead::take(state.clone(), holder, listen.to_string(), |leader| {
        if leader.remaining_milliseconds > 0 && !leader.holder.is_empty() {
            eprintln!(
                "standby: the control plane at {} ({}) leads the state store {shown}; this one takes over if it stops \
                 ({}s without renewing).",
                leader.address,
                leader.holder,
                stratum_control::lead::LEASE.as_secs()
            );
        }
    });
    tokio::select! {
        lead = taking => {
            let lead = lead?;
            eprintln!("leading the state store {shown} as {}", lead.holder());
            Ok(Some((state, Some(lead))))
        }
        () = crate::running::shutdown_requested() => Ok(None),
    }
}

/// The names and addresses the server's certificate is valid for besides its identity: loopback, this machine's
/// name, the address it listens on when it is a specific one, and those asked for.
fn server_names(listen: &SocketAddr, asked: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        names.push(host.trim().to_string());
    }
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.extend(asked.iter().cloned());
    names.retain(|name| !name.is_empty());
    names.sort();
    names.dedup();
    names
}

/// An HTTP client for the control plane at `server`: over https:// it trusts the cluster's authority alone — the
/// one in `ca_cert`, else the one the control plane proves with `token` — and takes only the control plane's
/// certificate.
pub(crate) async fn api_client(
    server: &str,
    ca_cert: Option<&Path>,
    token: Option<&str>,
) -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::Client::builder();
    if !server.starts_with("https://") {
        return Ok(builder.build()?);
    }
    let pem = match (ca_cert, token) {
        (Some(ca_cert), _) => std::fs::read_to_string(ca_cert)
            .map_err(|error| anyhow::anyhow!("cannot read the authority {}: {error}", ca_cert.display()))?,
        (None, Some(token)) => match stratum_control::pki::fetch_authority(server, token, None).await? {
            Ok(pem) => pem,
            Err(unreachable) => return Err(unreachable.into()),
        },
        (None, None) => anyhow::bail!(
            "{server} is reached over TLS: give a token (its authority is proved with it) or the cluster's \
             authority with --ca-cert FILE (or STRATUM_CA_CERT), the server's STATE_DIR/tls/ca.pem"
        ),
    };
    let tls = stratum_dataplane::tls::ClientTls::new(&pem, stratum_dataplane::tls::SERVER_IDENTITY)?;
    Ok(builder.use_preconfigured_tls(tls.config()).build()?)
}

/// `stratum broker`: the MQTT broker embedded in Stratum on its own, for deployments whose application uses MQTT
/// and has no broker of its own (the generated compose file and manifests run it).
pub(crate) fn broker(args: BrokerArgs) -> anyhow::Result<Outcome> {
    let broker = match stratum_dataplane::connectors::mqtt::EmbeddedBroker::start(args.listen, args.listen_v5) {
        Ok(broker) => broker,
        Err(error) => {
            anyhow::bail!("{error}");
        }
    };
    eprintln!("MQTT broker at {} and {}. Ctrl-C stops it.", broker.url(), broker.url5());
    runtime()?.block_on(async {
        crate::running::shutdown_requested().await;
    });
    Ok(Outcome::Success)
}

/// `stratum health`: the container image's health check — whether the server, agent or `up` in this container
/// answers on its API. Exit code 0 when it does, 1 otherwise.
pub(crate) fn health(args: HealthArgs) -> anyhow::Result<Outcome> {
    if let Some(address) = args.url.strip_prefix("tcp://") {
        let connected = runtime()?.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(address)).await
        });
        return Ok(match connected {
            Ok(Ok(_)) => Outcome::Success,
            Ok(Err(error)) => {
                eprintln!("unhealthy: {address} refuses connections: {error}");
                Outcome::UserError
            }
            Err(_) => {
                eprintln!("unhealthy: {address} did not accept a connection within 5 s");
                Outcome::UserError
            }
        });
    }
    let urls = if args.url.contains("://") {
        vec![args.url.clone()]
    } else {
        vec![format!("https://{}", args.url), format!("http://{}", args.url)]
    };
    let answers = runtime()?.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Whether it answers, not who it is: a health check sends nothing secret, so any certificate does.
        let tls = stratum_dataplane::tls::ClientTls::trusting_anyone()?;
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(5)).use_preconfigured_tls(tls.config()).build()?;
        let mut answers = Vec::new();
        for url in urls {
            let answer = client.get(&url).send().await.map(|response| response.status());
            let answered = answer.is_ok();
            answers.push((url, answer));
            if answered {
                break;
            }
        }
        anyhow::Ok(answers)
    })?;
    for (url, answer) in &answers {
        match answer {
            Ok(status) if status.is_success() => return Ok(Outcome::Success),
            Ok(status) => eprintln!("unhealthy: {url} answered {status}"),
            Err(error) => eprintln!("unhealthy: {url} does not answer: {error}"),
        }
    }
    Ok(Outcome::UserError)
}

/// The plan's name for a pool member whose own name ends with its 0-based ordinal.
fn pool_member(pool: &str, name: &str) -> Result<String, String> {
    let digits: String =
        name.chars().rev().take_while(char::is_ascii_digit).collect::<Vec<_>>().into_iter().rev().collect();
    match digits.parse::<u32>() {
        Ok(ordinal) => Ok(format!("{pool}-{}", ordinal + 1)),
        Err(_) => Err(format!(
            "--pool {pool}: the name `{name}` does not end with the member's number (as a StatefulSet pod's does)"
        )),
    }
}

pub(crate) fn agent(args: AgentArgs) -> anyhow::Result<Outcome> {
    let name = match &args.pool {
        Some(pool) => match pool_member(pool, &args.name) {
            Ok(name) => name,
            Err(message) => {
                anyhow::bail!("{message}");
            }
        },
        None => args.name.clone(),
    };
    let (join_token, authority_sha256) = match stratum_control::pki::JoinString::parse(&args.join_token) {
        Ok(Some(join)) => (join.token, Some(join.ca_sha256)),
        Ok(None) => (args.join_token, None),
        Err(error) => return Err(anyhow::Error::from(error).context("--join-token")),
    };
    let options = AgentOptions {
        servers: args.servers,
        join_token,
        authority_sha256,
        data_dir: args.data_dir.unwrap_or_else(|| PathBuf::from(format!(".stratum-agent-{name}"))),
        name,
        tier: args.tier,
        labels: args.labels.into_iter().collect::<BTreeMap<_, _>>(),
        data_listen: args.data_listen,
        advertise: args.advertise,
        simulate: args.simulate,
        mqtt_broker: args.broker,
        api_listen: args.api,
        image_tools: !args.no_image_tools,
    };
    let runtime = runtime()?;
    let result = runtime.block_on(async move {
        // Starting waits for the control plane's authority when it has none kept: Ctrl-C ends the wait.
        let started = tokio::select! {
            started = Agent::start(options.clone()) => started?,
            () = crate::running::shutdown_requested() => return Ok(()),
        };
        let (agent, router) = started;
        let scheme = if options.servers.iter().any(|server| server.starts_with("https://")) { "https" } else { "http" };
        let api = agent.api_address().map(|address| format!(", API at {scheme}://{address}")).unwrap_or_default();
        eprintln!(
            "agent `{}`: data at {}{api}; joining {} …",
            options.name,
            agent.data_address(),
            options.servers.join(" or ")
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(until_stopped(std::sync::Arc::new(stop)));
        let result = agent.run(stopped).await;
        router.abort();
        result
    });
    match result {
        Ok(()) => Ok(Outcome::Success),
        Err(error) => Err(anyhow::anyhow!("{error}")),
    }
}

/// `stratum apply FILE --server URL`: the file checked and planned here (so that mistakes show at once, with
/// their source), then sent with the files it imports to `POST /v1/apply`; the control plane checks it again,
/// keeps the files, and rolls the new version out. Waits until the new version runs.
pub(crate) fn apply(args: ApplyArgs, color: ColorChoice) -> anyhow::Result<Outcome> {
    let Some(checked) = checked_without_errors(&args.file, color)? else { return Ok(Outcome::UserError) };
    if planned_or_report(&checked, &args.file, color).is_none() {
        return Ok(Outcome::UserError);
    }
    let files = match crate::commands::application_files(&checked, &args.file) {
        Ok(files) => files,
        Err(message) => {
            anyhow::bail!("{message}");
        }
    };
    let source = std::fs::read_to_string(&args.file)?;
    let request = SourceText { source, files };
    if let Some(store) = &args.prepare_models
        && !prepare_models(&checked.application, store)?
    {
        return Ok(Outcome::UserError);
    }
    let runtime = runtime()?;
    let answer = runtime.block_on(async {
        let (server, client) = args.operator.client().await?;
        if let Some(store) = &args.prepare_models
            && let Err(refused) =
                send_models(&client, &server, &args.operator.token, &checked.application, store).await?
        {
            return Ok(Err(refused));
        }
        let response = client
            .post(format!("{server}/v1/apply"))
            .bearer_auth(&args.operator.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&request)?)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        if status != 202 {
            return anyhow::Ok(Err((status, text)));
        }
        let accepted: ApplyAnswer = serde_json::from_str(&text)?;
        // The version runs once the control plane has recorded it; the agents follow within a heartbeat.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let app: AppView = serde_json::from_str(
                &client.get(format!("{server}/v1/app")).bearer_auth(&args.operator.token).send().await?.text().await?,
            )?;
            let newer = app.version.is_some_and(|version| Some(version) > accepted.from_version);
            if app.phase == PhaseName::Failed {
                return Ok(Err((500, app.failure.unwrap_or_default())));
            }
            if (newer && app.phase == PhaseName::Running) || std::time::Instant::now() > deadline {
                return Ok(Ok((accepted, app)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    match answer {
        Ok(Ok((accepted, app))) => {
            println!(
                "applied `{}` version {} to {}",
                app.name.as_deref().unwrap_or("?"),
                app.version.map_or_else(|| "?".to_string(), |version| version.to_string()),
                args.operator.server
            );
            for change in &accepted.changes {
                println!("  {change}");
            }
            Ok(Outcome::Success)
        }
        Ok(Err((401 | 403, _))) => {
            eprintln!(
                "error: {} refused the token: applying needs the operator's (--token or STRATUM_TOKEN)",
                args.operator.server
            );
            Ok(Outcome::UserError)
        }
        Ok(Err((status, text))) => {
            let message = serde_json::from_str::<ErrorBody>(&text).map_or(text, |body| body.error.message);
            Err(anyhow::anyhow!("the control plane answered {status}: {message}"))
        }
        Err(error) => Err(anyhow::anyhow!("cannot reach the control plane at {}: {error:#}", args.operator.server)),
    }
}

/// Sends the latest version of each of the application's models in `store` to the control plane, which keeps
/// what it lacks (`PUT /v1/models/{name}/files/{file}`): its model store may be on another machine — a replica
/// of the control plane on a shared store, a Kubernetes pod — than the one that prepared them. An imported
/// model's ONNX file goes before its artifact. `Err((status, answer))` when the control plane refused one.
async fn send_models(
    client: &reqwest::Client,
    server: &str,
    token: &str,
    application: &stratum_core::ir::Application,
    store: &Path,
) -> anyhow::Result<Result<(), (u16, String)>> {
    let models = stratum_ml::ModelStore::new(store);
    for model in &application.models {
        let Some(version) = models.serving(&model.name)? else { continue };
        for file in [format!("v{version}.onnx"), format!("v{version}.json")] {
            let Ok(bytes) = std::fs::read(store.join(&model.name).join(&file)) else { continue };
            let response = client
                .put(format!("{server}/v1/models/{}/files/{file}", model.name))
                .bearer_auth(token)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes)
                .send()
                .await?;
            let status = response.status().as_u16();
            if status != 200 {
                return Ok(Err((status, response.text().await?)));
            }
        }
    }
    Ok(Ok(()))
}

/// Makes the served models ready in `store` (see `ApplyArgs::prepare_models`); simulated history is written
/// to a temporary folder, since the application's own folder may be read-only (a mounted ConfigMap). Reports
/// what went wrong and answers false when a model could not be made ready.
fn prepare_models(application: &stratum_core::ir::Application, store: &Path) -> anyhow::Result<bool> {
    let options = stratum_control::models::ModelOptions {
        base_dir: std::env::temp_dir().join(format!("stratum-prepare-{}", application.name)),
        model_store: store.to_path_buf(),
        bootstrap_hours: None,
    };
    let result = runtime()?.block_on(stratum_control::models::ensure_models(application, &options, &mut |progress| {
        eprintln!("{}", crate::up::describe_model_progress(&progress));
    }));
    match result {
        Ok(_) => Ok(true),
        Err(error) => {
            eprintln!("error: {error}");
            Ok(false)
        }
    }
}

/// `stratum forget NAME --server URL`: `DELETE /v1/agents/NAME` with the operator's token.
pub(crate) fn forget(args: ForgetArgs) -> anyhow::Result<Outcome> {
    let server = args.operator.server.trim_end_matches('/').to_string();
    let answer = runtime()?.block_on(async {
        let (server, client) = args.operator.client().await?;
        let response =
            client.delete(format!("{server}/v1/agents/{}", args.name)).bearer_auth(&args.operator.token).send().await?;
        anyhow::Ok((response.status().as_u16(), response.text().await?))
    });
    match answer {
        Ok((200, _)) => {
            println!(
                "forgot `{}`: its components go elsewhere; the next join under its name is a new machine",
                args.name
            );
            Ok(Outcome::Success)
        }
        Ok((404, _)) => {
            eprintln!("error: {server} knows no agent `{}` (`stratum status` lists them)", args.name);
            Ok(Outcome::UserError)
        }
        Ok((401 | 403, _)) => {
            eprintln!("error: {server} refused the token: forgetting an agent takes the operator's");
            Ok(Outcome::UserError)
        }
        Ok((status, text)) => anyhow::bail!("{server} answered {status}: {text}"),
        Err(error) => anyhow::bail!("cannot reach {server}: {error:#}"),
    }
}

/// `stratum logs COMPONENT --server URL`: the component's latest events (at most `limit`), as a control plane
/// recorded them, in the form `stratum logs` prints a state directory's.
pub(crate) fn remote_logs(
    server: &str,
    token: Option<&str>,
    ca_cert: Option<&Path>,
    component: &str,
    limit: usize,
) -> anyhow::Result<Outcome> {
    let server = server.trim_end_matches('/');
    let answers = runtime()?.block_on(async {
        let client = api_client(server, ca_cert, token).await?;
        let mut answers = Vec::new();
        for route in ["/v1/status", "/v1/events?limit=1000"] {
            let mut request = client.get(format!("{server}{route}"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await?;
            answers.push((response.status().as_u16(), response.text().await?));
        }
        anyhow::Ok(answers)
    });
    let answers = match answers {
        Ok(answers) => answers,
        Err(error) => anyhow::bail!("cannot reach {server}: {error:#}"),
    };
    let mut values = Vec::new();
    for (status, text) in answers {
        match status {
            200 => values.push(serde_json::from_str::<serde_json::Value>(&text)?),
            401 | 403 => {
                eprintln!(
                    "error: {server} needs the operator's or the viewer's token: give --token (or STRATUM_TOKEN)"
                );
                return Ok(Outcome::UserError);
            }
            status => anyhow::bail!("{server} answered {status}: {text}"),
        }
    }
    let app = values[0]["app"].as_str().unwrap_or("-").to_string();
    let events: Vec<&serde_json::Value> = values[1]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|event| event["component"].as_str() == Some(component))
        .collect();
    if events.is_empty() {
        eprintln!("error: {server} recorded nothing for `{component}`");
        return Ok(Outcome::UserError);
    }
    for event in &events[events.len().saturating_sub(limit)..] {
        let at = stratum_core::eval::format_timestamp(event["at_milliseconds"].as_i64().unwrap_or(0));
        let (kind, message) = (event["kind"].as_str().unwrap_or("?"), event["message"].as_str().unwrap_or(""));
        println!("{at}  {app}  {kind}: {message}");
    }
    Ok(Outcome::Success)
}

pub(crate) fn status(args: StatusArgs) -> anyhow::Result<Outcome> {
    let runtime = runtime()?;
    let answer = runtime.block_on(async {
        let client = api_client(&args.server, args.ca_cert.as_deref(), args.token.as_deref()).await?;
        let mut request = client.get(format!("{}/v1/status", args.server.trim_end_matches('/')));
        if let Some(token) = &args.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        anyhow::Ok((response.status().as_u16(), response.text().await?))
    });
    let text = match answer {
        Ok((200, text)) => text,
        Ok((401 | 403, _)) => {
            eprintln!(
                "error: {} needs the operator's or the viewer's token: give --token (or STRATUM_TOKEN)",
                args.server
            );
            return Ok(Outcome::UserError);
        }
        Ok((status, text)) => {
            anyhow::bail!("{} answered {status}: {text}", args.server);
        }
        Err(error) => {
            anyhow::bail!("cannot reach {}: {error:#}", args.server);
        }
    };
    let status: serde_json::Value = serde_json::from_str(&text)?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(Outcome::Success);
    }
    match (status["app"].as_str(), status["version"].as_u64()) {
        (Some(app), Some(version)) => println!("app {app} version {version}"),
        _ => println!("no application applied yet (`stratum apply FILE --server URL` sends one)"),
    }
    for agent in status["agents"].as_array().into_iter().flatten() {
        let components: Vec<&str> = agent["components"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|component| component.as_str().or_else(|| component["name"].as_str()))
            .collect();
        let state = match agent["alive"].as_bool() {
            Some(true) => "alive",
            Some(false) => "LOST",
            None => "in process",
        };
        println!(
            "  {:<18} {:<6} {:<10} {}",
            agent["name"].as_str().unwrap_or("?"),
            agent["tier"].as_str().unwrap_or("-"),
            state,
            components.join(", ")
        );
    }
    // What runs on no machine yet: what it reads waits for it on its producers' machines.
    for placed in status["placement"].as_array().into_iter().flatten().filter(|placed| placed["host"].is_null()) {
        println!(
            "  waiting: {} (planned on {}, which has not joined or is lost; what it reads is kept for it)",
            placed["component"].as_str().unwrap_or("?"),
            placed["planned"].as_str().unwrap_or("?"),
        );
    }
    Ok(Outcome::Success)
}

/// `stratum train FILE --server URL`: each model's data uploaded as a blob, its search run on the agents, the
/// leaderboard printed when the control plane has refitted and saved the winner.
pub(crate) fn train_remotely(
    application: &stratum_core::ir::Application,
    models: &[String],
    base: &std::path::Path,
    server: &str,
    ca_cert: Option<&Path>,
    token: &str,
    format: Format,
) -> anyhow::Result<Outcome> {
    let runtime = runtime()?;
    let server = server.trim_end_matches('/');
    runtime.block_on(async {
        let client = api_client(server, ca_cert, Some(token)).await?;
        let mut reports = Vec::new();
        for model in models {
            let path = stratum_control::training::data_path(application, model, base)?;
            if !path.is_file() {
                anyhow::bail!("model `{model}`: {} is not a file; training on agents ships one data file", path.display());
            }
            let bytes = std::fs::read(&path)?;
            let uploaded = client.post(format!("{server}/v1/blobs")).bearer_auth(token).body(bytes).send().await?;
            if !uploaded.status().is_success() {
                anyhow::bail!("uploading the data: the control plane answered {}", uploaded.status());
            }
            let uploaded: serde_json::Value = serde_json::from_str(&uploaded.text().await?)?;
            let request = stratum_control::protocol::TrainingRequest {
                application: application.clone(),
                model: model.clone(),
                data_sha256: uploaded["sha256"].as_str().unwrap_or_default().to_string(),
            };
            let started = client
                .post(format!("{server}/v1/training"))
                .bearer_auth(token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&request)?)
                .send()
                .await?;
            let status = started.status();
            let text = started.text().await?;
            if !status.is_success() {
                anyhow::bail!("model `{model}`: the control plane answered {status}: {text}");
            }
            let job = serde_json::from_str::<serde_json::Value>(&text)?["job"].as_u64().unwrap_or_default();
            if format == Format::Human {
                eprintln!("training `{model}` on the agents of {server} (job {job}) …");
            }
            let report = loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let answer = client.get(format!("{server}/v1/training/{job}")).bearer_auth(token).send().await?;
                let code = answer.status();
                let text = answer.text().await?;
                if !code.is_success() {
                    anyhow::bail!("model `{model}`: the control plane answered {code}: {text}");
                }
                let status: serde_json::Value = serde_json::from_str(&text)?;
                match status["result"]["state"].as_str() {
                    Some("done") | Some("failed") => break status,
                    _ => {}
                }
            };
            if report["result"]["state"] == "failed" {
                anyhow::bail!("model `{model}`: {}", report["result"]["reason"].as_str().unwrap_or("training failed"));
            }
            let version = report["result"]["version"].as_u64().unwrap_or_default();
            let artifact = client.get(format!("{server}/v1/models/{model}/versions/{version}")).bearer_auth(token).send().await?;
            let artifact: stratum_ml::Artifact = serde_json::from_str(&artifact.text().await?)?;
            match format {
                Format::Human => {
                    crate::output::print_leaderboard(&artifact.leaderboard);
                    let agents: Vec<String> = report["by_agent"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(agent, tasks)| format!("{agent} {tasks}"))
                        .collect();
                    println!(
                        "winner: {} ({}); {} tasks on the agents ({}); saved `{model}` version {version} in the control plane's store",
                        artifact.algorithm,
                        artifact.params.describe(),
                        report["tasks"],
                        agents.join(", ")
                    );
                }
                Format::Json => reports.push(serde_json::json!({
                    "model": model,
                    "leaderboard": artifact.leaderboard,
                    "by_agent": report["by_agent"],
                    "artifact": { "version": version, "sha256": artifact.sha256, "algorithm": artifact.algorithm },
                })),
            }
        }
        if format == Format::Json {
            // The shape of a local `stratum train --format json`, with where the tasks ran.
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "models": reports }))?);
        }
        Ok(Outcome::Success)
    })
}
