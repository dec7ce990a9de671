//! The API over a real running application (test_data/small.stratum started by `stratum_control::up`, as
//! `stratum up` does): every route answers what its documentation says, with the right token, and refuses callers
//! without one, viewers on operator routes, bad input and oversized bodies with JSON errors; a version applied
//! through the API is written to the file and handed to the runner, which starts it.

mod common;

use common::{Api, OPERATOR, VIEWER, assert_error};
use reqwest::{Client, Method};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratum_api::{ApiConfig, ApiState, Reload, Tokens};
use stratum_control::up::{Running, UpOptions, up};

const APP: &str = include_str!("../test_data/small.stratum");
/// The sha256 of `hello`, the body the example stores as a blob.
const HELLO_SHA256: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

fn folder(name: &str) -> PathBuf {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let mut csv = String::from("n,busy\n");
    for n in 0..300 {
        csv.push_str(&format!("{n},{}\n", n > 150));
    }
    std::fs::write(folder.join("history.csv"), csv).unwrap();
    std::fs::write(folder.join("small.stratum"), APP).unwrap();
    folder
}

fn options(folder: &Path) -> UpOptions {
    UpOptions {
        base_dir: folder.to_path_buf(),
        state_dir: folder.join(".stratum"),
        mqtt_broker: None,
        simulate: true,
        bootstrap_hours: Some(1.0),
        time_scale: 1.0,
    }
}

async fn start(text: &str, folder: &Path) -> Running {
    let checked = stratum_lang::check_text("small.stratum", text);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let plan = stratum_planner::plan(&checked).plan.expect("a plan");
    up(checked.application, plan, options(folder), &mut |_| {}).await.expect("the application starts")
}

/// A request for each route: its method, a concrete path, and a body it accepts.
fn example(route: &stratum_api::table::Route, folder: &Path) -> (Method, String, Option<String>) {
    let path = route
        .path
        .replace("{name}", if route.path.starts_with("/v1/models") { "busy" } else { "flags" })
        .replace("{version}", "1")
        .replace("{sha256}", HELLO_SHA256)
        .replace("{job}", "1")
        .replace("{file}", "v1.json");
    let body = match route.path {
        "/v1/check" | "/v1/apply" => Some(json!({ "source": APP }).to_string()),
        "/v1/simulate" => Some(json!({ "duration": "1min" }).to_string()),
        "/v1/services/{name}/predict" => Some(r#"{"n": 190}"#.into()),
        "/v1/blobs" => Some("hello".into()),
        // The very file the store has: kept already.
        "/v1/models/{name}/files/{file}" => std::fs::read_to_string(folder.join(".stratum/models/busy/v1.json")).ok(),
        _ => None,
    };
    (Method::from_bytes(route.method.as_str().as_bytes()).unwrap(), path, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_a_running_application_to_operators_and_viewers() {
    let folder = folder("api_small");
    let source_file = folder.join("small.stratum");
    let config = ApiConfig {
        tokens: Tokens { operator: OPERATOR.into(), viewer: VIEWER.into(), join: None },
        source_file: source_file.clone(),
        state_dir: folder.join(".stratum"),
    };
    let (plane, mut reloads) = ApiState::new(config, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let served = tokio::spawn(stratum_api::serve(listener, plane.clone(), None, stopped));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = Api { base, http: Client::new() };

    // Before the application runs: the API says so, and routes that need it answer 503 with Retry-After.
    assert_eq!(api.get("/v1/app").await["phase"], "starting");
    let (status, body) = api.call(Method::GET, "/v1/topology", Some(VIEWER), None).await;
    assert_error((status, body), 503, "unavailable");

    let running = start(APP, &folder).await;
    plane.set_deployment(Some(running.deployment.clone()));

    // Wait for windows, predictions and a few samples of the series.
    let began = Instant::now();
    loop {
        let components = api.get("/v1/components").await;
        let flags = components["components"].as_array().unwrap().iter().find(|c| c["name"] == "flags").cloned();
        if flags.is_some_and(|flags| flags["events_out"].as_u64().unwrap() > 0)
            && api.get("/v1/series").await["timestamps_milliseconds"].as_array().unwrap().len() >= 3
        {
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(30), "no predictions yet: {components}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Access: every route, by every kind of caller.
    for route in stratum_api::routes::routes() {
        let (method, path, body) = example(&route, &folder);
        if route.path == "/v1/apply" {
            continue; // applied below, once
        }
        let anonymous = api.call(method.clone(), &path, None, body.clone()).await;
        let wrong = api.call(method.clone(), &path, Some("not-a-token"), body.clone()).await;
        let viewer = api.call(method.clone(), &path, Some(VIEWER), body.clone()).await;
        let operator = api.call(method.clone(), &path, Some(OPERATOR), body.clone()).await;
        // The agents' protocol, training on agents and the cluster's authority are `stratum server`'s; `up` has
        // none of them.
        let server_only = route.path.starts_with("/v1/agents/")
            || route.path.starts_with("/v1/training")
            || route.path == "/v1/cluster/ca";
        let expected = if server_only { 404 } else { route.response.0 };
        match route.access {
            stratum_api::table::Access::Public => {
                assert_eq!(anonymous.0.as_u16(), expected, "{method} {path} is public: {}", anonymous.1);
                assert_eq!(wrong.0.as_u16(), expected, "{method} {path}: a wrong token does not matter when public");
            }
            stratum_api::table::Access::Viewer => {
                assert_error(anonymous, 401, "unauthorized");
                assert_error(wrong, 401, "unauthorized");
                assert_eq!(viewer.0.as_u16(), expected, "{method} {path}: {}", viewer.1);
            }
            stratum_api::table::Access::Operator | stratum_api::table::Access::AgentOrOperator => {
                assert_error(anonymous, 401, "unauthorized");
                assert_error(viewer, 403, "forbidden");
            }
            stratum_api::table::Access::Agent => {
                assert_error(anonymous, 401, "unauthorized");
                assert_error(viewer, 403, "forbidden");
                assert_error(operator, 403, "forbidden");
                continue;
            }
        }
        assert_eq!(operator.0.as_u16(), expected, "{method} {path} as the operator: {}", operator.1);
    }

    // What each route answers.
    let app = api.get("/v1/app").await;
    assert_eq!(
        (app["name"].as_str(), app["version"].as_u64(), app["phase"].as_str()),
        (Some("small"), Some(1), Some("running"))
    );
    assert_eq!(app["can_apply"], false, "the viewer cannot apply");
    let (_, app) = api.call(Method::GET, "/v1/app", Some(OPERATOR), None).await;
    assert_eq!(app["can_apply"], true);
    assert_eq!(api.get("/v1/app/source").await["text"], APP);
    assert_eq!(api.get("/v1/plan").await["plan"]["app"], "small");

    let topology = api.get("/v1/topology").await;
    let tiers: Vec<&str> =
        topology["tiers"].as_array().unwrap().iter().map(|tier| tier["tier"].as_str().unwrap()).collect();
    assert_eq!(tiers, ["edge", "fog"]);
    let fog = &topology["tiers"][1]["nodes"][0];
    assert_eq!(fog["name"], "fog1");
    let on_fog: Vec<&str> = fog["components"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(on_fog.contains(&"counts") && on_fog.contains(&"flags"), "{on_fog:?}");
    let path =
        topology["edges"].as_array().unwrap().iter().find(|edge| edge["from"] == "readings" && edge["to"] == "counts");
    let path = path.expect("the path from the edge to the fog");
    assert_eq!((path["from_node"].as_str(), path["to_node"].as_str()), (Some("edge1"), Some("fog1")));
    assert!(path["events_per_second"].as_f64().is_some_and(|rate| rate > 0.0), "a live rate: {path}");

    let agents = api.get("/v1/agents").await;
    assert_eq!(agents["agents"].as_array().unwrap().len(), 2);

    let services = api.get("/v1/services").await;
    let flags = &services["services"][0];
    assert_eq!(
        (flags["name"].as_str(), flags["model"].as_str(), flags["model_version"].as_u64()),
        (Some("flags"), Some("busy"), Some(1))
    );
    assert_eq!(flags["targets"][0]["target"], "p99 <= 50 ms");

    let models = api.get("/v1/models").await;
    let busy = &models["models"][0];
    assert_eq!(busy["name"], "busy");
    assert_eq!(busy["served_by"][0]["service"], "flags");
    let leaderboard = busy["versions"][0]["leaderboard"].as_array().unwrap();
    assert_eq!(leaderboard.len(), 2, "one entry per candidate: {leaderboard:?}");
    assert!(busy["versions"][0]["profile"]["latency_p50_us"].as_f64().unwrap() > 0.0);
    assert_eq!(api.get("/v1/models/busy").await["name"], "busy");
    assert_error(api.call(Method::GET, "/v1/models/nothing", Some(VIEWER), None).await, 404, "not_found");

    let events = api.get("/v1/events").await["events"].as_array().unwrap().clone();
    assert!(events.iter().any(|event| event["kind"] == "started"), "{events:?}");
    let last = events.last().unwrap()["id"].as_i64().unwrap();
    assert!(api.get(&format!("/v1/events?after={last}")).await["events"].as_array().unwrap().is_empty());
    assert_eq!(api.get("/v1/events?limit=1").await["events"].as_array().unwrap().len(), 1);
    assert_error(api.call(Method::GET, "/v1/events?after=soon", Some(VIEWER), None).await, 400, "bad_request");

    let series = api.get("/v1/series?prefix=component%3Acounts%3A").await;
    let names: Vec<&String> = series["series"].as_object().unwrap().keys().collect();
    assert!(names.iter().all(|name| name.starts_with("component:counts:")) && !names.is_empty(), "{names:?}");
    let samples = series["timestamps_milliseconds"].as_array().unwrap();
    assert!(series["series"]["component:counts:in_per_second"].as_array().unwrap().len() == samples.len());
    let newest = samples.last().unwrap().as_i64().unwrap();
    assert!(
        api.get(&format!("/v1/series?since={newest}")).await["timestamps_milliseconds"].as_array().unwrap().is_empty()
    );

    let dashboards = api.get("/v1/dashboards").await;
    let panels = dashboards["dashboards"][0]["panels"].as_array().unwrap();
    let types: Vec<&str> = panels.iter().map(|panel| panel["data"]["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["lines", "bars", "table", "stat"]);
    assert!(!panels[0]["data"]["lines"].as_array().unwrap().is_empty(), "{}", panels[0]);
    assert!(panels[2]["data"]["rows"].as_array().unwrap().len() <= 5);

    let status = api.get("/v1/status").await;
    assert_eq!((status["app"].as_str(), status["models"][0]["model"].as_str()), (Some("small"), Some("busy")));

    let (code, prediction) =
        api.call(Method::POST, "/v1/services/flags/predict", None, Some(r#"{"n": 290}"#.into())).await;
    assert_eq!((code.as_u16(), &prediction["prediction"]), (200, &json!(true)), "{prediction}");
    assert_error(
        api.call(Method::POST, "/v1/services/flags/predict", None, Some(r#"{"n": "many"}"#.into())).await,
        400,
        "bad_request",
    );
    assert_error(
        api.call(Method::POST, "/v1/services/nothing/predict", None, Some("{}".into())).await,
        404,
        "not_found",
    );

    let metrics = api.call(Method::GET, "/metrics", Some(VIEWER), None).await.1;
    assert!(metrics.as_str().unwrap().contains("stratum_events_out_total{component=\"counts\""));
    // The process's own resources under Prometheus's standard names, as the process itself measures them.
    let resident = metrics
        .as_str()
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("process_resident_memory_bytes "))
        .and_then(|value| value.parse::<f64>().ok())
        .expect("process_resident_memory_bytes in /metrics");
    let measured = stratum_control::usage::process_memory_bytes().unwrap() as f64;
    assert!((resident - measured).abs() < 0.5 * measured, "{resident} against {measured} measured here");

    // The editor's check: diagnostics with codes and positions; a good text has a plan and says what changes.
    let broken = APP.replace("from = readings", "from = readingz");
    let report =
        api.call(Method::POST, "/v1/check", Some(VIEWER), Some(json!({ "source": broken }).to_string())).await.1;
    assert_eq!(report["ok"], false);
    let first = &report["diagnostics"][0];
    assert_eq!((first["code"].as_str(), first["line"].as_u64()), (Some("E0102"), Some(9)), "{report}");
    assert!(report["plan"].is_null());
    let report = api.call(Method::POST, "/v1/check", Some(VIEWER), Some(json!({ "source": APP }).to_string())).await.1;
    assert_eq!((report["ok"].as_bool(), report["changes"].as_array().map(Vec::len)), (Some(true), Some(0)), "{report}");
    assert!(report["plan"]["hosts"].as_array().unwrap().iter().any(|host| host["host"] == "fog1"));

    // A simulation of the running version: the generator's 200 readings a second for 10 minutes are made, the
    // edge's machine stopped for a minute makes none of its readings then, and the timeline says so.
    let simulation = json!({ "duration": "10min", "step": "1s", "fail": ["edge1@2min+1min"] }).to_string();
    let report = api.call(Method::POST, "/v1/simulate", Some(VIEWER), Some(simulation)).await.1;
    assert_eq!(report["app"], "small", "{report}");
    assert_eq!(report["records_made"].as_f64(), Some(200.0 * 600.0), "{report}");
    assert_eq!(report["records_lost_with_machines"].as_f64(), Some(200.0 * 60.0), "{report}");
    assert_eq!(report["timeline"][0]["what"], "edge1 stops");
    assert_eq!(report["series"]["seconds"].as_array().map(Vec::len), Some(200), "{report}");
    let wrong = json!({ "duration": "10 fortnights" }).to_string();
    let (status, answer) = api.call(Method::POST, "/v1/simulate", Some(VIEWER), Some(wrong)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("unknown unit `fortnights`"), "{answer}");
    let tiny = json!({ "duration": "7d", "step": "1ms" }).to_string();
    let (status, answer) = api.call(Method::POST, "/v1/simulate", Some(VIEWER), Some(tiny)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("at most a million steps"), "{answer}");
    let (status, answer) =
        api.call(Method::POST, "/v1/simulate", Some(VIEWER), Some(json!({ "fail": ["fog9@1s"] }).to_string())).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("no machine is named `fog9`"), "{answer}");

    // Bad input: not JSON, the wrong JSON, too large, unknown routes.
    assert_error(api.call(Method::POST, "/v1/check", Some(VIEWER), Some("source".into())).await, 400, "bad_request");
    assert_error(
        api.call(Method::POST, "/v1/check", Some(VIEWER), Some(r#"{"text": 1}"#.into())).await,
        400,
        "bad_request",
    );
    // Over the 16 MB a source text may have (a city's file with its thousands of machines fits).
    let huge = json!({ "source": "#".repeat(16 << 20) }).to_string();
    assert_error(api.call(Method::POST, "/v1/check", Some(VIEWER), Some(huge)).await, 413, "too_large");
    assert_error(api.call(Method::GET, "/v1/nothing", Some(VIEWER), None).await, 404, "not_found");
    assert_error(api.call(Method::DELETE, "/v1/app", Some(OPERATOR), None).await, 405, "method_not_allowed");

    // Apply: a text with errors is refused and the file is untouched; a good one is written and handed over.
    let refused =
        api.call(Method::POST, "/v1/apply", Some(OPERATOR), Some(json!({ "source": broken }).to_string())).await;
    assert_error(refused, 422, "invalid_application");
    assert_eq!(std::fs::read_to_string(&source_file).unwrap(), APP);
    let next = APP.replace("rate = 200/s", "rate = 300/s");
    let (status, answer) =
        api.call(Method::POST, "/v1/apply", Some(OPERATOR), Some(json!({ "source": next }).to_string())).await;
    assert_eq!(status.as_u16(), 202, "{answer}");
    assert_eq!(answer["changes"], json!(["`readings` changes"]));
    assert_eq!(std::fs::read_to_string(&source_file).unwrap(), next);
    let again = api.call(Method::POST, "/v1/apply", Some(OPERATOR), Some(json!({ "source": next }).to_string())).await;
    assert_error(again, 409, "conflict");
    assert_eq!(api.get("/v1/app").await["phase"], "restarting");

    // The runner's side, as `stratum up` does it: roll the new version out into the running one, serve it.
    let Reload { application, plan } = reloads.recv().await.expect("the applied version");
    let mut running = running;
    assert!(running.can_update(&application));
    let counted_before = windows_of(&running);
    let rollout = running.update(application, plan, &mut |_| {}).await.unwrap();
    plane.set_deployment(Some(running.deployment.clone()));
    let app = api.get("/v1/app").await;
    assert_eq!((app["version"].as_u64(), app["phase"].as_str()), (Some(2), Some("running")));
    // Only the source whose rate changed restarted; the window stream, the sink, the service and the feed ran on.
    assert_eq!(rollout.restarted, ["readings"], "{rollout:?}");
    assert!(rollout.started.is_empty() && rollout.stopped.is_empty(), "{rollout:?}");
    let mut unchanged = rollout.unchanged.clone();
    unchanged.sort();
    assert_eq!(unchanged, ["counts", "counts-feed", "flags", "kept"]);
    let events = api.get("/v1/events").await;
    let rolled_out = events["events"].as_array().unwrap().iter().find(|event| event["kind"] == "rolled-out");
    assert_eq!(
        rolled_out.map(|event| event["message"].as_str().unwrap()),
        Some("version 2: restarted readings; 4 unchanged"),
        "{events}"
    );
    // Its metrics count on: the stream kept its counters (and its open windows) across the rollout.
    assert!(windows_of(&running) >= counted_before);

    running.stop().await.unwrap();
    stop.send_replace(true);
    served.await.unwrap().unwrap();
    let _ = Arc::clone(&plane);
}

/// The records the running version's window stream has taken in.
fn windows_of(running: &Running) -> u64 {
    running
        .deployment
        .metrics
        .snapshot()
        .iter()
        .find(|metrics| metrics.component == "counts")
        .map_or(0, |metrics| metrics.events_in)
}

/// The OpenAPI document and the routes are one: every route of the table is documented with its method, summary,
/// security and responses; the document has no path the table lacks; every schema reference resolves.
#[test]
fn the_openapi_document_covers_every_route() {
    let routes = stratum_api::routes::routes();
    let document = stratum_api::openapi::document(&routes);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            documented += 1;
            let route =
                routes.iter().find(|route| route.path == path && route.method.as_str().eq_ignore_ascii_case(method));
            assert!(route.is_some(), "{method} {path} is documented but not routed");
            assert!(operation["summary"].as_str().is_some_and(|summary| !summary.is_empty()), "{method} {path}");
            assert!(operation["security"].is_array(), "{method} {path}");
            assert!(!operation["responses"].as_object().unwrap().is_empty(), "{method} {path}");
        }
    }
    assert_eq!(documented, routes.len(), "each route documented once");
    for route in &routes {
        let operation = &document["paths"][route.path][route.method.as_str().to_lowercase()];
        assert!(operation.is_object(), "{} {} has no documentation", route.method, route.path);
        assert!(operation["responses"][route.response.0.to_string()].is_object(), "{} {}", route.method, route.path);
        for parameter in route.path.split('{').skip(1).filter_map(|rest| rest.split_once('}')).map(|(name, _)| name) {
            let documented = operation["parameters"].as_array().into_iter().flatten().any(|p| p["name"] == parameter);
            assert!(documented, "{} {}: the path parameter `{parameter}` is undocumented", route.method, route.path);
        }
    }
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"").skip(1).map(|rest| rest.split('"').next().unwrap()) {
        let name =
            reference.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("a local reference: {reference}"));
        assert!(schemas.contains_key(name), "{reference} does not resolve");
    }
    assert!(schemas.contains_key("Topology") && schemas.contains_key("ErrorBody"));
}
