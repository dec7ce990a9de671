//! The API's routes, as one table: each route's method, path, who may call it, what it answers and its handler.
//! The router and the OpenAPI document are both built from this table, so a route cannot exist without its
//! documentation. Errors are JSON with a code and a message ([`ErrorBody`]).

use crate::answer::{Answer, ApiError, json, ok};
use crate::editor::check_and_plan;
use crate::plane::{ApiState, Phase, Refused, Reload, Snapshot};
use crate::table::{Access, Role, Route};
use crate::views::*;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use serde::Serialize;
use std::sync::Arc;
use stratum_control::api::same_token;
use stratum_control::deployment::Deployment;
use stratum_control::protocol::{Heartbeat, Join, TrainingRequest};
use stratum_control::server::AGENT_KEY_HEADER;
use stratum_control::serving::ErrorCode;
use stratum_lang::Severity;

/// Prediction requests may carry many records (and heartbeats the dashboards' latest records): the limit every
/// agent's API shares.
const PREDICTION_BODY: usize = stratum_control::serving::PREDICTION_BODY_LIMIT;
/// Training data uploaded for training on the agents.
const BLOB_BODY: usize = 1 << 30;
/// An application's source text with its imports: a city's declares thousands of machines (10,000 edge nodes with
/// three components each is about 3.5 MB).
const SOURCE_BODY: usize = 16 << 20;

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    use Access::{Agent, AgentOrOperator, Operator, Public, Viewer};
    let running = [503];
    vec![
        Route::new(Method::GET, "/v1/openapi.json", Public, "This document", get(openapi)),
        Route::new(Method::GET, "/v1/app", Viewer, "The application, its version and what it is doing", get(app))
            .answers::<AppView>(),
        Route::new(Method::GET, "/v1/app/source", Viewer, "The application's .stratum source", get(source))
            .answers::<SourceView>()
            .errors(&[500]),
        Route::new(Method::GET, "/v1/plan", Viewer, "Where every component of the running version runs", get(plan))
            .answers::<PlanView>()
            .errors(&running),
        Route::new(
            Method::GET,
            "/v1/topology",
            Viewer,
            "Tiers, machines, the components on them and the data paths between them, with live rates",
            get(topology),
        )
        .answers::<Topology>()
        .errors(&running),
        Route::new(Method::GET, "/v1/agents", Viewer, "The agents, one per machine, and their components", get(agents))
            .answers::<AgentsView>()
            .errors(&running),
        Route::new(
            Method::GET,
            "/v1/components",
            Viewer,
            "Every component's counters, rates and latency",
            get(components),
        )
        .answers::<ComponentsView>()
        .errors(&running),
        Route::new(
            Method::GET,
            "/v1/services",
            Viewer,
            "Every inference service: replicas, load, latency against its targets",
            get(services),
        )
        .answers::<ServicesView>()
        .errors(&running),
        Route::new(
            Method::POST,
            "/v1/services/{name}/predict",
            Public,
            "Predictions for one JSON object or an array of them",
            post(predict),
        )
        .parameter("name", "path", "the service")
        .takes::<serde_json::Value>()
        .body_limit(PREDICTION_BODY)
        .errors(&[404, 429, 503]),
        Route::new(
            Method::GET,
            "/v1/models",
            Viewer,
            "The models: stored versions with their leaderboards and profiles, and the services that serve them",
            get(models),
        )
        .answers::<ModelsView>()
        .errors(&running),
        Route::new(Method::GET, "/v1/models/{name}", Viewer, "One model", get(model))
            .parameter("name", "path", "the model")
            .answers::<ModelView>()
            .errors(&[404, 503]),
        Route::new(Method::GET, "/v1/events", Viewer, "The latest events, oldest first", get(events))
            .parameter("after", "query", "only events with a larger id")
            .parameter("limit", "query", "at most this many (200 by default, 1,000 at most)")
            .answers::<EventsView>()
            .errors(&[400, 503]),
        Route::new(
            Method::GET,
            "/v1/series",
            Viewer,
            "Metric series sampled every second over the last 15 minutes",
            get(series),
        )
        .parameter("since", "query", "only samples after this time, in milliseconds since 1970")
        .parameter("prefix", "query", "only series whose names start with this, such as `service:`")
        .answers::<SeriesView>()
        .errors(&[400]),
        Route::new(
            Method::GET,
            "/v1/dashboards",
            Viewer,
            "The dashboards the file declares, each panel with its data now",
            get(dashboards),
        )
        .answers::<DashboardsView>()
        .errors(&running),
        Route::new(Method::GET, "/v1/status", Viewer, "Agents, services and served models at once", get(status))
            .answers::<StatusView>()
            .errors(&running),
        Route::new(
            Method::POST,
            "/v1/check",
            Viewer,
            "Checks and plans a source text, and says what applying it would change",
            post(check),
        )
        .body_limit(SOURCE_BODY)
        .takes::<SourceText>()
        .answers::<CheckReport>(),
        Route::new(
            Method::POST,
            "/v1/apply",
            Operator,
            "Writes a source text to the application's file and runs it as the next version",
            post(apply),
        )
        .body_limit(SOURCE_BODY)
        .takes::<SourceText>()
        .answers::<ApplyAnswer>()
        .status(202)
        .errors(&[409, 422, 500]),
        Route::new(
            Method::POST,
            "/v1/simulate",
            Viewer,
            "Simulates the running version over time: link use, latency per path, buffers, services, failures and cut links",
            post(simulate),
        )
        .takes::<SimulateRequest>()
        .answers::<stratum_sim::Report>()
        .errors(&[400, 429, 503]),
        Route::new(Method::GET, "/metrics", Viewer, "Every component's and service's metrics", get(metrics))
            .text("text/plain; version=0.0.4")
            .errors(&running),
        // The agents' protocol (`stratum server` only; its types are in stratum-control's `protocol`).
        Route::new(
            Method::GET,
            "/v1/cluster/ca",
            Public,
            "The cluster's certificate authority (PEM): an agent checks it against the hash in its join string",
            get(cluster_authority),
        )
        .text("application/x-pem-file")
        .errors(&[404]),
        Route::new(
            Method::POST,
            "/v1/agents/join",
            Agent,
            "An agent joins: its name, tier, labels, measured resources and addresses",
            post(join),
        )
        .takes::<serde_json::Value>()
        .answers::<JoinAnswer>()
        .errors(&[403, 404]),
        Route::new(
            Method::POST,
            "/v1/agents/{name}/heartbeat",
            Agent,
            "An agent reports what it runs and how it does; the answer is what it should run and train",
            post(heartbeat),
        )
        .parameter("name", "path", "the agent")
        .takes::<serde_json::Value>()
        .body_limit(PREDICTION_BODY)
        .errors(&[403, 404]),
        Route::new(
            Method::DELETE,
            "/v1/agents/{name}",
            Operator,
            "Forgets an agent: its key goes, so that another machine may join under its name (a replacement)",
            delete(forget_agent),
        )
        .parameter("name", "path", "the agent")
        .answers::<ForgetAnswer>()
        .errors(&[404]),
        Route::new(
            Method::GET,
            "/v1/models/{name}/versions/{version}",
            AgentOrOperator,
            "A stored model version's artifact file, which agents check by its sha256",
            get(artifact),
        )
        .parameter("name", "path", "the model")
        .parameter("version", "path", "the version")
        .errors(&[400, 404]),
        Route::new(
            Method::PUT,
            "/v1/models/{name}/files/{file}",
            Operator,
            "Keeps a model file (`vN.json`, or an imported model's `vN.onnx`, sent first) in the control plane's model \
             store unless it has it: versions never change, so a different file of a version it has is refused",
            put(put_model_file),
        )
        .parameter("name", "path", "the model")
        .parameter("file", "path", "the file: `vN.json` or `vN.onnx`")
        .takes_bytes("application/octet-stream")
        .body_limit(BLOB_BODY)
        .answers::<ModelFileAnswer>()
        .errors(&[400, 409, 500]),
        Route::new(
            Method::POST,
            "/v1/blobs",
            Operator,
            "Stores bytes under their sha256 (training data)",
            post(put_blob),
        )
        .takes_bytes("application/octet-stream")
        .body_limit(BLOB_BODY)
        .answers::<BlobAnswer>()
        .errors(&[500]),
        Route::new(
            Method::GET,
            "/v1/blobs/{sha256}",
            AgentOrOperator,
            "The bytes stored under a sha256",
            get(get_blob),
        )
        .parameter("sha256", "path", "the bytes' sha256, in hex")
        .text("application/octet-stream")
        .errors(&[400, 404]),
        Route::new(
            Method::POST,
            "/v1/training",
            Operator,
            "Trains a model of an application on the agents, from data stored as a blob",
            post(start_training),
        )
        .takes::<serde_json::Value>()
        .body_limit(PREDICTION_BODY)
        .answers::<TrainingStarted>()
        .errors(&[404]),
        Route::new(Method::GET, "/v1/training/{job}", Viewer, "How a training job is doing", get(training_status))
            .parameter("job", "path", "the job")
            .errors(&[404]),
    ]
}

/// The router: every route of the table behind its access check and body limit, the web interface, and JSON
/// answers for unknown routes and methods.
pub fn router(plane: Arc<ApiState>) -> axum::Router {
    let mut router = axum::Router::new();
    for route in routes() {
        let guarded = route
            .handler
            .layer(DefaultBodyLimit::max(route.body_limit))
            .layer(axum::middleware::from_fn_with_state((plane.clone(), route.access), guard));
        router = router.route(route.path, guarded);
    }
    crate::assets::add(router).fallback(not_found).method_not_allowed_fallback(method_not_allowed).with_state(plane)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("no route {method} {}; see /v1/openapi.json", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    let message = format!("{} does not take {method}; see /v1/openapi.json", uri.path());
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed, message)
}

/// The caller's role by its `Authorization: Bearer TOKEN`; a token that is none of the server's is an error.
pub(crate) fn role_of(plane: &ApiState, headers: &HeaderMap) -> Result<Role, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(Role::Anonymous) };
    let token = value.to_str().ok().and_then(|value| value.strip_prefix("Bearer ")).ok_or(())?;
    let tokens = &plane.config.tokens;
    if same_token(token, &tokens.operator) {
        Ok(Role::Operator)
    } else if same_token(token, &tokens.viewer) {
        Ok(Role::Viewer)
    } else if tokens.join.as_deref().is_some_and(|join| same_token(token, join)) {
        Ok(Role::Agent)
    } else {
        Err(())
    }
}

async fn guard(State((plane, access)): State<(Arc<ApiState>, Access)>, mut request: Request, next: Next) -> Response {
    let role = match role_of(&plane, request.headers()) {
        Ok(role) => role,
        Err(()) if access == Access::Public => Role::Anonymous,
        Err(()) => {
            let message = "the bearer token is not one of this server's";
            return ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message).into_response();
        }
    };
    if !access.allows(role) {
        if role == Role::Anonymous {
            let message = "send `Authorization: Bearer TOKEN` with the operator's or the viewer's token";
            return ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message).into_response();
        }
        let message = match access {
            Access::Operator => "this needs the operator's token",
            Access::Agent => "this is the agents' protocol: it needs the join token",
            Access::AgentOrOperator => "this needs the join token or the operator's",
            Access::Viewer | Access::Public => "this needs the viewer's or the operator's token",
        };
        return ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message).into_response();
    }
    request.extensions_mut().insert(role);
    next.run(request).await
}

/// The running application, or why there is none.
fn snapshot(plane: &ApiState) -> Result<Snapshot, ApiError> {
    plane.snapshot().ok_or_else(|| {
        let message = match plane.phase() {
            Phase::Failed(reason) => format!("the application is not running: {reason}"),
            _ if plane.server.is_some() => {
                "no application is applied yet: `stratum apply FILE --server URL` sends one".to_string()
            }
            phase => format!("the application is {}; try again in a moment", phase.name()),
        };
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, message).retry_after(1)
    })
}

/// The deployment, even one with no version yet (a server its agents joined before anything was applied).
fn deployment(plane: &ApiState) -> Result<Arc<dyn Deployment>, ApiError> {
    plane.deployment().ok_or_else(|| snapshot(plane).err().unwrap_or_else(|| ApiError::internal("no deployment")))
}

/// Runs `view` on the running application and answers it as JSON.
fn with_snapshot<T: Serialize>(plane: &ApiState, view: impl FnOnce(&Snapshot) -> T) -> Answer {
    ok(&view(&snapshot(plane)?))
}

/// A query string's parameters, percent-decoded.
fn query_parameters(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

/// A numeric query parameter, if given.
fn number<T: std::str::FromStr>(parameters: &[(String, String)], name: &str) -> Result<Option<T>, ApiError> {
    match parameters.iter().find(|(key, _)| key == name) {
        None => Ok(None),
        Some((_, value)) => value
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("`{name}` must be a number, not `{value}`"))),
    }
}

/// A request body, or why it could not be read (too large, say).
fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { ErrorCode::TooLarge } else { ErrorCode::BadRequest };
        ApiError::new(status, code, rejection.body_text())
    })
}

/// A JSON request body of the route's type.
fn parse<T: serde::de::DeserializeOwned>(request: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    serde_json::from_slice(&body(request)?)
        .map_err(|failure| ApiError::bad_request(format!("not the JSON expected: {failure}")))
}

async fn openapi() -> Answer {
    ok(&crate::openapi::document(&routes()))
}

async fn app(State(plane): State<Arc<ApiState>>, axum::Extension(role): axum::Extension<Role>) -> Answer {
    let live = plane.snapshot().map(|snapshot| snapshot.running.clone());
    let phase = plane.phase();
    ok(&AppView {
        name: live.as_ref().map(|live| live.app.clone()),
        version: live.as_ref().map(|live| live.version),
        phase: phase.name(),
        failure: match phase {
            Phase::Failed(reason) => Some(reason),
            _ => None,
        },
        uptime_seconds: live.as_ref().map_or(0.0, |live| live.started.elapsed().as_secs_f64()),
        source_file: plane.config.source_file.display().to_string(),
        broker_url: live.as_ref().and_then(|live| live.broker_url.clone()),
        not_running: live
            .as_ref()
            .map(|live| {
                live.not_running
                    .iter()
                    .map(|(component, reason)| NotRunning { component: component.clone(), reason: reason.clone() })
                    .collect()
            })
            .unwrap_or_default(),
        can_apply: role == Role::Operator,
    })
}

async fn source(State(plane): State<Arc<ApiState>>) -> Answer {
    let file = &plane.config.source_file;
    let text = std::fs::read_to_string(file).map_err(|failure| match failure.kind() {
        std::io::ErrorKind::NotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no source yet: {} is not there", file.display()),
        ),
        _ => ApiError::internal(format!("cannot read {}: {failure}", file.display())),
    })?;
    ok(&SourceView { file: file.display().to_string(), text })
}

async fn plan(State(plane): State<Arc<ApiState>>) -> Answer {
    with_snapshot(&plane, |snapshot| PlanView {
        version: snapshot.running.version,
        plan: serde_json::to_value(snapshot.running.plan.as_ref()).unwrap_or_default(),
    })
}

async fn topology(State(plane): State<Arc<ApiState>>) -> Answer {
    with_snapshot(&plane, |snapshot| plane.topology(snapshot))
}

async fn agents(State(plane): State<Arc<ApiState>>) -> Answer {
    ok(&AgentsView { agents: plane.agents_view(deployment(&plane)?.as_ref()) })
}

async fn components(State(plane): State<Arc<ApiState>>) -> Answer {
    with_snapshot(&plane, |live| ComponentsView { components: plane.components_view(live) })
}

async fn services(State(plane): State<Arc<ApiState>>) -> Answer {
    with_snapshot(&plane, |live| ServicesView { services: plane.services_view(live) })
}

async fn models(State(plane): State<Arc<ApiState>>) -> Answer {
    with_snapshot(&plane, |live| ModelsView { models: plane.models_view(live) })
}

async fn model(State(plane): State<Arc<ApiState>>, Path(name): Path<String>) -> Answer {
    let snapshot = snapshot(&plane)?;
    match plane.models_view(&snapshot).into_iter().find(|model| model.name == name) {
        Some(model) => ok(&model),
        None => {
            let known: Vec<&str> =
                snapshot.running.application.models.iter().map(|model| model.name.as_str()).collect();
            let message = format!("no model `{name}`; models: {}", known.join(", "));
            Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message))
        }
    }
}

async fn events(State(plane): State<Arc<ApiState>>, RawQuery(query): RawQuery) -> Answer {
    let parameters = query_parameters(query.as_deref());
    let after = number::<i64>(&parameters, "after")?;
    let limit = number::<usize>(&parameters, "limit")?.unwrap_or(200).min(1000);
    let snapshot = snapshot(&plane)?;
    let events = snapshot.deployment.state().events(&snapshot.running.app, 1000).map_err(ApiError::internal)?;
    let mut events: Vec<EventView> = events
        .into_iter()
        .filter(|event| after.is_none_or(|after| event.id > after))
        .map(|event| EventView {
            id: event.id,
            at_milliseconds: event.at_milliseconds,
            kind: event.kind.as_str().to_string(),
            component: event.component,
            message: event.message,
        })
        .collect();
    let skip = events.len().saturating_sub(limit);
    events.drain(..skip);
    ok(&EventsView { events })
}

async fn series(State(plane): State<Arc<ApiState>>, RawQuery(query): RawQuery) -> Answer {
    let parameters = query_parameters(query.as_deref());
    let since = number::<i64>(&parameters, "since")?.unwrap_or(0);
    let prefix = parameters.iter().find(|(name, _)| name == "prefix").map_or("", |(_, value)| value.as_str());
    let (timestamps_milliseconds, series) = crate::plane::lock(&plane.series).view(since, prefix);
    ok(&SeriesView { timestamps_milliseconds, series })
}

async fn dashboards(State(plane): State<Arc<ApiState>>) -> Answer {
    with_snapshot(&plane, |live| DashboardsView { dashboards: plane.dashboards_view(live) })
}

/// Everything at once; a server's agents show before any application is applied to it.
async fn status(State(plane): State<Arc<ApiState>>) -> Answer {
    let deployment = deployment(&plane)?;
    let snapshot = plane.snapshot();
    let current = snapshot.as_ref().map(|snapshot| &snapshot.running);
    ok(&StatusView {
        app: current.map(|current| current.app.clone()),
        version: current.map(|current| current.version),
        uptime_seconds: current.map_or(0.0, |current| current.started.elapsed().as_secs_f64()),
        agents: plane.agents_view(deployment.as_ref()),
        services: snapshot.as_ref().map(|snapshot| plane.services_view(snapshot)).unwrap_or_default(),
        placement: plane.placement_view(deployment.as_ref()),
        models: current
            .and_then(|current| deployment.state().served_models(&current.app).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|served| ServedModelView {
                service: served.service,
                model: served.model,
                version: served.version,
                sha256: served.sha256,
            })
            .collect(),
    })
}

/// Checks and plans a text off the threads that serve requests (it is CPU work), comparing it with what runs.
async fn checked(plane: Arc<ApiState>, request: &SourceText) -> Result<crate::editor::Edited, ApiError> {
    let (text, files) = (request.source.clone(), request.files.clone());
    tokio::task::spawn_blocking(move || {
        let snapshot = plane.snapshot();
        let current =
            snapshot.as_ref().map(|snapshot| (snapshot.running.application.as_ref(), snapshot.running.plan.as_ref()));
        check_and_plan(&plane.config.source_file, &text, &files, current)
    })
    .await
    .map_err(ApiError::internal)
}

async fn check(State(plane): State<Arc<ApiState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let request: SourceText = parse(request)?;
    ok(&checked(plane, &request).await?.report)
}

/// The longest simulation the API runs, its most steps, and the most machines a scaled tier may have: a
/// simulation runs on the server's own cores.
const SIMULATED_SECONDS_AT_MOST: f64 = 7.0 * 86_400.0;
const SIMULATED_STEPS_AT_MOST: f64 = 1_000_000.0;
const SCALED_MACHINES_AT_MOST: u32 = 20_000;

/// Whether a simulation runs now: one at a time, since each takes a core for up to a minute.
static SIMULATING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The one simulation running: taking it sets [`SIMULATING`], dropping it clears it — when the simulation ends,
/// whether or not its caller is still waiting (a request whose client went away is dropped while it waits).
struct Simulating;

impl Simulating {
    fn take() -> Option<Simulating> {
        (!SIMULATING.swap(true, std::sync::atomic::Ordering::AcqRel)).then_some(Simulating)
    }
}

impl Drop for Simulating {
    fn drop(&mut self) {
        SIMULATING.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Reads what a simulation is asked, with the command line's forms and the API's limits.
fn scenario(request: &SimulateRequest) -> Result<stratum_sim::Scenario, String> {
    use stratum_core::units::parse_duration_text;
    // A scenario's words become the refusal's message, with what is wrong in them.
    let words = |error: stratum_sim::ScenarioError| stratum_core::error_chain(&error);
    let seconds = |name: &str, text: &str| {
        parse_duration_text(text).map_err(|error| format!("`{name}`: {}", stratum_core::error_chain(&error)))
    };
    let mut scenario = stratum_sim::Scenario::default();
    if let Some(duration) = &request.duration {
        scenario.duration = seconds("duration", duration)?;
    }
    if scenario.duration > SIMULATED_SECONDS_AT_MOST {
        return Err("`duration`: at most 7 days through the API (`stratum simulate` runs longer ones)".into());
    }
    scenario.step = request.step.as_deref().map(|step| seconds("step", step)).transpose()?;
    if scenario.duration / scenario.step_seconds() > SIMULATED_STEPS_AT_MOST {
        return Err("`step`: at most a million steps through the API; take a longer step".into());
    }
    if let Some(timeout) = &request.agent_timeout {
        scenario.agent_timeout = seconds("agent_timeout", timeout)?;
    }
    scenario.scale = request
        .scale
        .iter()
        .map(|text| stratum_sim::ScaleTier::parse(text).map_err(words))
        .collect::<Result<_, _>>()?;
    if let Some(scale) = scenario.scale.iter().find(|scale| scale.nodes > SCALED_MACHINES_AT_MOST) {
        return Err(format!(
            "`scale`: at most {SCALED_MACHINES_AT_MOST} machines a tier through the API, not {} (`stratum simulate` takes more)",
            scale.nodes
        ));
    }
    scenario.failures =
        request.fail.iter().map(|text| stratum_sim::Failure::parse(text).map_err(words)).collect::<Result<_, _>>()?;
    scenario.partitions = request
        .partition
        .iter()
        .map(|text| stratum_sim::Partition::parse(text).map_err(words))
        .collect::<Result<_, _>>()?;
    Ok(scenario)
}

async fn simulate(State(plane): State<Arc<ApiState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let request: SimulateRequest = parse(request)?;
    let mut scenario = scenario(&request).map_err(ApiError::bad_request)?;
    let application = snapshot(&plane)?.running.application.clone();
    let store = stratum_ml::ModelStore::new(plane.config.state_dir.join("models"));
    let Some(running) = Simulating::take() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Overloaded,
            "a simulation is running; ask again once it is done",
        ));
    };
    let simulated = tokio::task::spawn_blocking(move || {
        let _running = running;
        // The stored models' profiles say how long a prediction takes.
        scenario.prediction_seconds =
            stratum_sim::measured_predictions(&application, |model| store.prediction_seconds(model));
        stratum_sim::simulate(&application, &scenario)
    })
    .await;
    match simulated {
        Ok(Ok(report)) => ok(&report),
        Ok(Err(error)) => Err(ApiError::bad_request(stratum_core::error_chain(&error))),
        Err(failed) => Err(ApiError::internal(failed)),
    }
}

async fn apply(State(plane): State<Arc<ApiState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let request: SourceText = parse(request)?;
    crate::editor::check_file_names(&plane.config.source_file, &request.files).map_err(ApiError::bad_request)?;
    let edited = checked(plane.clone(), &request).await?;
    let Some((application, next_plan)) = edited.planned else {
        let first = edited.report.diagnostics.iter().find(|diagnostic| diagnostic.severity == Severity::Error);
        let message = match first {
            Some(first) => format!(
                "{} error(s); the first, {} at line {}: {}",
                edited.report.errors, first.code, first.line, first.message
            ),
            None => "the application has no plan".into(),
        };
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidApplication, message));
    };
    let busy = || {
        ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "a version is starting already; apply again once it runs",
        )
    };
    if matches!(plane.phase(), Phase::Restarting | Phase::Starting) {
        return Err(busy());
    }
    // The files are the application's source of truth: the new text replaces them before it runs.
    crate::editor::write_sources(&plane.config.source_file, &request.source, &request.files)
        .map_err(ApiError::internal)?;
    let from_version = plane.snapshot().map(|snapshot| snapshot.running.version);
    match plane.request_reload(Reload { application, plan: next_plan }) {
        Ok(()) => {}
        Err(Refused::Busy) => return Err(busy()),
        Err(Refused::Failed(error)) => return Err(ApiError::internal(error)),
    }
    Ok(json(StatusCode::ACCEPTED, &ApplyAnswer { from_version, changes: edited.report.changes }))
}

async fn predict(
    State(plane): State<Arc<ApiState>>,
    Path(name): Path<String>,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
    let bytes = body(request)?;
    let snapshot = snapshot(&plane)?;
    snapshot.deployment.predict(name, bytes.to_vec()).await.map_err(ApiError::from).and_then(|answer| ok(&answer))
}

async fn metrics(State(plane): State<Arc<ApiState>>) -> Answer {
    let mut text = snapshot(&plane)?.deployment.prometheus();
    text.push_str(&stratum_control::usage::render_process_metrics());
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// The multi-machine control plane, for the routes only it has.
fn server(plane: &ApiState) -> Result<&Arc<stratum_control::server::Server>, ApiError> {
    plane.server.as_ref().ok_or_else(|| {
        let message = "this is `stratum up`: agents and training on agents need `stratum server`";
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    })
}

async fn cluster_authority(State(plane): State<Arc<ApiState>>) -> Answer {
    let server = server(&plane)?;
    let Some(pem) = server.authority_pem() else {
        let message = "this control plane serves plain HTTP (started with --plain-http): it has no authority";
        return Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message));
    };
    // A proof under each token, so that whoever holds one (an agent, an operator's command) can check that the
    // authority is this control plane's although the connection it came over was not checked yet.
    let tokens = &plane.config.tokens;
    let proofs: Vec<String> = (tokens.join.iter().chain([&tokens.operator, &tokens.viewer]))
        .filter_map(|token| stratum_dataplane::tls::authority_proof(token, pem).ok())
        .collect();
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-pem-file".to_string()),
            (header::HeaderName::from_static(stratum_dataplane::tls::PROOF_HEADER), proofs.join(", ")),
        ],
        pem.to_string(),
    )
        .into_response())
}

/// The key an agent presents, if any.
fn agent_key(headers: &HeaderMap) -> Option<&str> {
    headers.get(AGENT_KEY_HEADER).and_then(|value| value.to_str().ok())
}

async fn join(
    State(plane): State<Arc<ApiState>>,
    headers: HeaderMap,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
    let server = server(&plane)?;
    let joined = server.join(parse::<Join>(request)?, agent_key(&headers))?;
    let (certificate, certificate_key) = match joined.identity {
        Some(identity) => (Some(identity.certificate_pem), Some(identity.key_pem)),
        None => (None, None),
    };
    ok(&JoinAnswer {
        heartbeat_milliseconds: server.heartbeat_interval().as_millis() as u64,
        key: joined.key,
        certificate,
        certificate_key,
        api_key: joined.api_key,
    })
}

async fn heartbeat(
    State(plane): State<Arc<ApiState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
    let server = server(&plane)?;
    server.check_agent_key(&name, agent_key(&headers))?;
    match server.heartbeat(&name, parse::<Heartbeat>(request)?) {
        Some(answer) => ok(&answer),
        None => {
            Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("no agent `{name}`: join first")))
        }
    }
}

async fn forget_agent(State(plane): State<Arc<ApiState>>, Path(name): Path<String>) -> Answer {
    let server = server(&plane)?;
    match server.forget_agent(&name) {
        Ok(true) => ok(&ForgetAnswer { forgotten: name }),
        Ok(false) => Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("no agent `{name}`"))),
        Err(error) => Err(ApiError::internal(error)),
    }
}

/// A stored model version's artifact file, as agents fetch it (and check its sha256).
async fn artifact(State(plane): State<Arc<ApiState>>, Path((name, version)): Path<(String, u32)>) -> Answer {
    if name.is_empty() || name.contains(['/', '\\', '.']) {
        return Err(ApiError::bad_request(format!("`{name}` is not a model name")));
    }
    let path = plane.config.state_dir.join("models").join(&name).join(format!("v{version}.json"));
    match std::fs::read(&path) {
        Ok(bytes) => Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()),
        Err(_) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no model `{name}` version {version}"),
        )),
    }
}

/// A model file sent by `stratum apply --prepare-models` (see the route's summary). A version's artifact is checked
/// once kept (it loads, its model matches its sha256; an imported one's ONNX file came first): one that does not
/// is removed again and refused.
async fn put_model_file(
    State(plane): State<Arc<ApiState>>,
    Path((name, file)): Path<(String, String)>,
    request: Result<Bytes, BytesRejection>,
) -> Answer {
    let bytes = body(request)?;
    if name.is_empty() || name.contains(['/', '\\', '.']) {
        return Err(ApiError::bad_request(format!("`{name}` is not a model name")));
    }
    let version = file
        .strip_prefix('v')
        .and_then(|rest| rest.strip_suffix(".json").or_else(|| rest.strip_suffix(".onnx")))
        .and_then(|number| number.parse::<u32>().ok())
        .ok_or_else(|| ApiError::bad_request(format!("`{file}` is not a model file (vN.json or vN.onnx)")))?;
    let store = stratum_ml::ModelStore::new(plane.config.state_dir.join("models"));
    let path = store.root.join(&name).join(&file);
    match std::fs::read(&path) {
        Ok(kept) if kept == bytes.as_ref() => return ok(&ModelFileAnswer { model: name, file, kept: false }),
        Ok(_) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                format!("the control plane has another `{name}` {file}: a version never changes; train a new one"),
            ));
        }
        Err(_) => {}
    }
    stratum_control::files::write_whole(&path, &bytes)
        .map_err(|failure| ApiError::internal(format!("cannot keep {}: {failure}", path.display())))?;
    if file.ends_with(".json") {
        let refusal = match store.load_any(&name, Some(version)) {
            Ok(stored) if stored.name() == name && stored.version() == version => None,
            Ok(stored) => Some(format!("it is `{}` version {}", stored.name(), stored.version())),
            Err(error) => Some(stratum_core::error_chain(&error)),
        };
        if let Some(why) = refusal {
            let _ = std::fs::remove_file(&path);
            return Err(ApiError::bad_request(format!(
                "`{name}` {file} is not a model artifact this control plane can serve: {why}"
            )));
        }
    }
    ok(&ModelFileAnswer { model: name, file, kept: true })
}

async fn put_blob(State(plane): State<Arc<ApiState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let bytes = body(request)?;
    let sha256 = stratum_control::files::put_blob(&plane.config.state_dir, &bytes)
        .map_err(|failure| ApiError::internal(format!("cannot store the blob: {failure}")))?;
    ok(&BlobAnswer { sha256, bytes: bytes.len() as u64 })
}

async fn get_blob(State(plane): State<Arc<ApiState>>, Path(sha256): Path<String>) -> Answer {
    let Some(path) = stratum_control::files::blob_path(&plane.config.state_dir, &sha256) else {
        return Err(ApiError::bad_request(format!("`{sha256}` is not a sha256")));
    };
    match std::fs::read(&path) {
        Ok(bytes) => Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()),
        Err(_) => Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("no blob {sha256}"))),
    }
}

async fn start_training(State(plane): State<Arc<ApiState>>, request: Result<Bytes, BytesRejection>) -> Answer {
    let server = server(&plane)?;
    let job = server.start_training(parse::<TrainingRequest>(request)?)?;
    ok(&TrainingStarted { job })
}

async fn training_status(State(plane): State<Arc<ApiState>>, Path(job): Path<u64>) -> Answer {
    match server(&plane)?.training_status(job) {
        Some(status) => ok(&status),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("no training job {job}"))),
    }
}
