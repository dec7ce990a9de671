//! The API of `stratum server`: the same routes as under `stratum up`, over agents that joined through the API's
//! own agents' routes (behind the join token). Two real agents (edge1, fog1) join over loopback, an application is
//! applied through `POST /v1/apply` with the file it imports, and every view — topology, agents with their measured
//! use, components, services, dashboards fed from the agents' heartbeats, series, metrics, events — shows it
//! running; predictions go through the gateway; each token is held to its role.

mod common;

use common::{Api, OPERATOR, VIEWER, assert_error};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use stratum_api::{ApiConfig, ApiState, Tokens};
use stratum_control::agent::{Agent, AgentOptions};
use stratum_control::deployment::Deployment;
use stratum_control::pki::Authority;
use stratum_control::server::{Server, ServerOptions};
use stratum_dataplane::tls::{ClientTls, SERVER_IDENTITY, ServerTls};

const APP: &str = include_str!("../test_data/small.stratum");
const JOIN: &str = "join-token";

fn folder(name: &str) -> PathBuf {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

fn assert_status(answer: &(StatusCode, Value), status: u16) {
    assert_eq!(answer.0.as_u16(), status, "{}", answer.1);
}

async fn start_agent(
    server: &str,
    authority_sha256: &str,
    name: &str,
    folder: &Path,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let options = AgentOptions {
        servers: vec![server.to_string()],
        join_token: JOIN.into(),
        authority_sha256: Some(authority_sha256.into()),
        name: name.into(),
        tier: None,
        labels: Default::default(),
        data_listen: "127.0.0.1:0".parse().unwrap(),
        advertise: None,
        data_dir: folder.join(name),
        simulate: true,
        mqtt_broker: None,
        api_listen: Some("127.0.0.1:0".parse().unwrap()),
        image_tools: true,
    };
    let (agent, _router) = Agent::start(options).await.expect("the agent starts");
    tokio::spawn(agent.run(stop));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_serves_the_api_and_its_agents_protocol() {
    let folder = folder("api_server");
    let state_dir = folder.join("server");
    // Over TLS, as `stratum server` runs by default: the cluster's authority made in the state folder signs the
    // server's certificate and, at join, each agent's (which they present on their data ports and APIs).
    let authority = std::sync::Arc::new(Authority::open(&state_dir.join("tls")).unwrap());
    let authority_sha256 = authority.sha256().unwrap();
    let server_tls = ServerTls::new(&authority.issue(SERVER_IDENTITY, &[]).unwrap()).unwrap();
    let server = Server::open(ServerOptions {
        state_dir: state_dir.clone(),
        agent_timeout: Duration::from_secs(5),
        join_token: JOIN.into(),
        authority: Some(authority.clone()),
    })
    .expect("the server opens its state");
    // The model the service needs, trained into the server's store as `stratum train --store` would.
    let mut history = String::from("n,busy\n");
    for n in 0..300 {
        history.push_str(&format!("{n},{}\n", n > 150));
    }
    std::fs::write(folder.join("history.csv"), history).unwrap();
    let checked = stratum_lang::check_text("small.stratum", APP);
    let model_options = stratum_control::models::ModelOptions {
        base_dir: folder.clone(),
        model_store: state_dir.join("models"),
        bootstrap_hours: Some(1.0),
    };
    stratum_control::models::ensure_models(&checked.application, &model_options, &mut |_| {}).await.unwrap();

    let config = ApiConfig {
        tokens: Tokens { operator: OPERATOR.into(), viewer: VIEWER.into(), join: Some(JOIN.into()) },
        source_file: state_dir.join("app").join("app.stratum"),
        state_dir: state_dir.clone(),
    };
    let (plane, _) = ApiState::new(config, Some(server.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let base = format!("https://{address}");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(server.clone().run(stopped.clone()));
    let served = tokio::spawn(stratum_api::serve(listener, plane.clone(), Some(server_tls), stopped.clone()));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let trusting = |pem: &str| {
        let tls = ClientTls::new(pem, SERVER_IDENTITY).unwrap();
        Client::builder().use_preconfigured_tls(tls.config()).build().unwrap()
    };
    let api = Api { base: base.clone(), http: trusting(authority.certificate_pem()) };

    // Only TLS is served, and only a client that trusts the cluster's authority takes the server for the server.
    assert!(Client::new().get(format!("http://{address}/v1/openapi.json")).send().await.is_err());
    let elsewhere = Authority::open(&folder.join("another-authority")).unwrap();
    let fooled = trusting(elsewhere.certificate_pem()).get(format!("{base}/v1/openapi.json")).send().await;
    assert!(fooled.is_err(), "a client trusting another authority reached the server");
    // The authority itself is open to fetch (an agent checks its hash against its join string's).
    let fetched = api.http.get(format!("{base}/v1/cluster/ca")).send().await.unwrap().text().await.unwrap();
    assert_eq!(stratum_dataplane::tls::certificate_sha256(&fetched).unwrap(), authority_sha256);

    // Model files sent to the model store (`stratum apply --prepare-models` on another machine): the store keeps
    // what it lacks, never changes a version it has, and keeps only artifacts it can serve.
    let trained = std::fs::read_to_string(state_dir.join("models/busy/v1.json")).unwrap();
    let put = |file: &str, token: &'static str, body: &str| {
        let (path, body, api) = (format!("/v1/models/busy/files/{file}"), body.to_string(), &api);
        async move { api.call(Method::PUT, &path, Some(token), Some(body)).await }
    };
    let (code, body) = put("v1.json", OPERATOR, &trained).await;
    assert_eq!((code.as_u16(), &body["kept"]), (200, &json!(false)), "{body}");
    assert_error(put("v1.json", OPERATOR, &trained.replace("\"busy\"", "\"busy \"")).await, 409, "conflict");
    assert_error(put("v2.json", OPERATOR, &trained).await, 400, "bad_request");
    assert_error(put("v3.json", OPERATOR, "{\"not\": \"a model\"}").await, 400, "bad_request");
    assert_error(put("v3.txt", OPERATOR, &trained).await, 400, "bad_request");
    assert_error(put("v1.json", VIEWER, &trained).await, 403, "forbidden");
    let copy = trained.replace("\"version\": 1,", "\"version\": 2,");
    let (code, body) = put("v2.json", OPERATOR, &copy).await;
    assert_eq!((code.as_u16(), &body["kept"]), (200, &json!(true)), "{body}");
    assert_eq!(std::fs::read_to_string(state_dir.join("models/busy/v2.json")).unwrap(), copy);
    assert!(!state_dir.join("models/busy/v3.json").exists(), "a refused file is not kept");
    std::fs::remove_file(state_dir.join("models/busy/v2.json")).unwrap();

    // Nothing applied yet: the views that need an application say how to send one; the status has no app.
    let (code, body) = api.call(Method::GET, "/v1/topology", Some(VIEWER), None).await;
    assert_eq!(code.as_u16(), 503);
    assert!(body["error"]["message"].as_str().unwrap().contains("stratum apply"), "{body}");
    assert!(api.get("/v1/status").await["app"].is_null());

    // The agents' protocol takes the join token and nothing else; the join token takes nothing else either.
    let join = json!({
        "name": "intruder",
        "resources": { "cpu": 1.0, "memory_bytes": 1, "arch": "x" },
        "data_address": "127.0.0.1:1",
    })
    .to_string();
    for token in [None, Some("not-a-token")] {
        assert_error(api.call(Method::POST, "/v1/agents/join", token, Some(join.clone())).await, 401, "unauthorized");
    }
    for token in [VIEWER, OPERATOR] {
        assert_error(
            api.call(Method::POST, "/v1/agents/join", Some(token), Some(join.clone())).await,
            403,
            "forbidden",
        );
    }
    assert_status(&api.call(Method::GET, "/v1/status", Some(JOIN), None).await, 403);
    let source = json!({ "source": APP }).to_string();
    assert_status(&api.call(Method::POST, "/v1/apply", Some(JOIN), Some(source.clone())).await, 403);
    assert_status(&api.call(Method::POST, "/v1/agents/nobody/heartbeat", Some(JOIN), Some("{}".into())).await, 404);
    assert_status(&api.call(Method::POST, "/v1/agents/join", Some(JOIN), Some("{}".into())).await, 400);

    for name in ["edge1", "fog1"] {
        start_agent(&base, &authority_sha256, name, &folder, stopped.clone()).await;
    }
    api.wait_for("two agents", "/v1/status", |status| status["agents"].as_array().unwrap().len() == 2).await;

    // Each agent holds its own key, issued at its first join: the join token alone cannot take over its name.
    let joining = |name: &str| {
        json!({ "name": name, "resources": { "cpu": 1.0, "memory_bytes": 1, "arch": "x" }, "data_address": "127.0.0.1:9" })
            .to_string()
    };
    let (code, body) = api.call(Method::POST, "/v1/agents/join", Some(JOIN), Some(joining("edge1"))).await;
    assert_eq!(code.as_u16(), 403, "an impostor join: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("held by another machine"), "{body}");
    let beat = api.call(Method::POST, "/v1/agents/edge1/heartbeat", Some(JOIN), Some("{}".into())).await;
    assert_eq!(beat.0.as_u16(), 403, "an impostor heartbeat: {}", beat.1);
    let with_key = |path: &str, key: &str, body: String| {
        api.http.post(format!("{base}{path}")).bearer_auth(JOIN).header("x-stratum-agent-key", key).body(body).send()
    };
    let wrong = with_key("/v1/agents/edge1/heartbeat", "0123", "{}".into()).await.unwrap();
    assert_eq!(wrong.status().as_u16(), 403, "a wrong key");
    // A replacement machine takes a name only once an operator has forgotten the old one.
    let (code, first) = api.call(Method::POST, "/v1/agents/join", Some(JOIN), Some(joining("spare"))).await;
    assert_eq!(code.as_u16(), 200, "{first}");
    let key = first["key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 64);
    // With its key comes a certificate naming it, from the cluster's authority, for its data port and API.
    let certificate = first["certificate"].as_str().unwrap();
    let identity = stratum_dataplane::tls::Identity {
        certificate_pem: certificate.into(),
        key_pem: first["certificate_key"].as_str().unwrap().into(),
    };
    ServerTls::new(&identity).expect("a certificate and its key");
    ClientTls::new(authority.certificate_pem(), &stratum_dataplane::tls::agent_identity("spare")).unwrap();
    let again = with_key("/v1/agents/join", &key, joining("spare")).await.unwrap();
    assert_eq!(again.status().as_u16(), 200, "the same machine joins again with its key");
    let again: Value = serde_json::from_str(&again.text().await.unwrap()).unwrap();
    assert!(again["key"].is_null(), "a key is issued once: {again}");
    assert!(again["certificate"].is_string(), "a certificate at every join: {again}");
    assert_eq!(api.call(Method::POST, "/v1/agents/join", Some(JOIN), Some(joining("spare"))).await.0.as_u16(), 403);
    assert_eq!(api.call(Method::DELETE, "/v1/agents/spare", Some(VIEWER), None).await.0.as_u16(), 403);
    assert_eq!(api.call(Method::DELETE, "/v1/agents/nobody", Some(OPERATOR), None).await.0.as_u16(), 404);
    let (code, forgotten) = api.call(Method::DELETE, "/v1/agents/spare", Some(OPERATOR), None).await;
    assert_eq!((code.as_u16(), &forgotten["forgotten"]), (200, &json!("spare")), "{forgotten}");
    let (code, replaced) = api.call(Method::POST, "/v1/agents/join", Some(JOIN), Some(joining("spare"))).await;
    assert_eq!(code.as_u16(), 200, "{replaced}");
    assert_ne!(replaced["key"].as_str().unwrap(), key, "the replacement gets a key of its own");
    assert_eq!(api.call(Method::DELETE, "/v1/agents/spare", Some(OPERATOR), None).await.0.as_u16(), 200);

    // An application with an import: the file it imports goes with it, and both are kept beside each other.
    let imported = "schema Labelled { n: int  busy: bool }\n";
    let main = APP.replace(imported, "").replace("app small\n", "app small\nimport \"lib/labelled.stratum\"\n");
    assert_ne!(main, APP);
    let escaping = json!({ "source": main, "files": { "../outside.stratum": imported } }).to_string();
    assert_status(&api.call(Method::POST, "/v1/apply", Some(OPERATOR), Some(escaping)).await, 400);
    let missing = json!({ "source": main }).to_string();
    assert_status(&api.call(Method::POST, "/v1/apply", Some(OPERATOR), Some(missing)).await, 422);
    let request = json!({ "source": main, "files": { "lib/labelled.stratum": imported } }).to_string();
    let applied = api.call(Method::POST, "/v1/apply", Some(OPERATOR), Some(request)).await;
    assert_status(&applied, 202);
    assert_eq!(std::fs::read_to_string(state_dir.join("app/lib/labelled.stratum")).unwrap(), imported);
    assert_eq!(api.get("/v1/app/source").await["text"], main.as_str());
    let app = api.get("/v1/app").await;
    assert_eq!((app["name"].as_str(), app["version"].as_u64()), (Some("small"), Some(1)), "{app}");

    // Data flows on the agents, and every view shows it.
    api.wait_for("windows on fog1", "/v1/components", |components| {
        components["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "flags" && c["events_out"].as_u64() > Some(0))
    })
    .await;
    let topology = api
        .wait_for("live rates on the path", "/v1/topology", |topology| {
            topology["edges"].as_array().unwrap().iter().any(|edge| {
                edge["from"] == "readings"
                    && edge["from_node"] == "edge1"
                    && edge["to_node"] == "fog1"
                    && edge["events_per_second"].as_f64().is_some_and(|rate| rate > 0.0)
            })
        })
        .await;
    let tiers: Vec<&str> =
        topology["tiers"].as_array().unwrap().iter().map(|tier| tier["tier"].as_str().unwrap()).collect();
    assert_eq!(tiers, ["edge", "fog"]);
    let agents = api
        .wait_for("the agents' own use", "/v1/agents", |agents| {
            agents["agents"].as_array().unwrap().iter().all(|agent| agent["cpu_percent"].as_f64().is_some())
        })
        .await;
    let fog = agents["agents"].as_array().unwrap().iter().find(|agent| agent["name"] == "fog1").unwrap();
    assert_eq!((fog["alive"].as_bool(), fog["arch"].as_str()), (Some(true), Some(std::env::consts::ARCH)));
    assert!(fog["memory_used_bytes"].as_u64().unwrap() > 0);
    assert!(fog["disk_free_bytes"].as_u64().unwrap() > 0, "{fog}");
    let services = api
        .wait_for("the service's replicas", "/v1/services", |services| services["services"][0]["model_version"] == 1)
        .await;
    assert_eq!(services["services"][0]["name"], "flags");
    let dashboards = api
        .wait_for("the dashboard's records from the agents", "/v1/dashboards", |dashboards| {
            dashboards["dashboards"][0]["panels"][2]["data"]["rows"].as_array().is_some_and(|rows| !rows.is_empty())
        })
        .await;
    let types: Vec<&str> = dashboards["dashboards"][0]["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|panel| panel["data"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["lines", "bars", "table", "stat"]);
    let series = api
        .wait_for("the nodes' series", "/v1/series?prefix=node%3A", |series| {
            series["series"].as_object().is_some_and(|series| series.contains_key("node:fog1:cpu_percent"))
        })
        .await;
    assert!(series["series"].as_object().unwrap().contains_key("node:edge1:memory_mib"));
    let models = api.get("/v1/models").await;
    assert_eq!(models["models"][0]["served_by"][0]["service"], "flags");
    let events = api.get("/v1/events").await;
    let kinds: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|event| event["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"agent-joined") && kinds.contains(&"applied"), "{kinds:?}");
    let metrics = api.call(Method::GET, "/metrics", Some(VIEWER), None).await.1;
    assert!(metrics.as_str().unwrap().contains("stratum_events_out_total{agent=\"fog1\",component=\"counts\""));
    assert!(metrics.as_str().unwrap().contains("stratum_service_replicas{agent=\"fog1\",service=\"flags\"}"));

    // Predictions go through the gateway to the agent that runs the service.
    let (code, prediction) =
        api.call(Method::POST, "/v1/services/flags/predict", None, Some(r#"{"n": 290}"#.into())).await;
    assert_eq!((code.as_u16(), &prediction["prediction"]), (200, &json!(true)), "{prediction}");
    let refused = api.call(Method::POST, "/v1/services/flags/predict", None, Some(r#"{"n": "many"}"#.into())).await;
    assert_eq!((refused.0.as_u16(), refused.1["error"]["code"].as_str()), (400, Some("bad_request")), "{}", refused.1);
    assert_status(&api.call(Method::POST, "/v1/services/nothing/predict", None, Some("{}".into())).await, 404);
    // A body the control plane takes (up to 8 MiB) is taken by the agent it forwards to as well: one limit, not a
    // 502 from an agent with a smaller one.
    let large = format!(r#"{{"n": 290, "note": "{}"}}"#, "x".repeat(3 << 20));
    let (code, prediction) = api.call(Method::POST, "/v1/services/flags/predict", None, Some(large)).await;
    assert_eq!((code.as_u16(), &prediction["prediction"]), (200, &json!(true)), "{prediction}");

    // Artifacts and blobs: agents and operators fetch, only operators store.
    let path = "/v1/models/busy/versions/1";
    assert_status(&api.call(Method::GET, path, Some(JOIN), None).await, 200);
    assert_status(&api.call(Method::GET, path, Some(VIEWER), None).await, 403);
    assert_status(&api.call(Method::POST, "/v1/blobs", Some(JOIN), Some("data".into())).await, 403);
    let stored = api.call(Method::POST, "/v1/blobs", Some(OPERATOR), Some("data".into())).await;
    let sha256 = stored.1["sha256"].as_str().unwrap().to_string();
    let (code, bytes) = api.call(Method::GET, &format!("/v1/blobs/{sha256}"), Some(JOIN), None).await;
    assert_eq!((code.as_u16(), bytes), (200, Value::String("data".into())));
    assert_status(&api.call(Method::GET, "/v1/training/7", Some(VIEWER), None).await, 404);

    // Version 2 adds a policy that migrates `counts` to the edge as soon as it measures anything: the control plane
    // measures it from the agents' heartbeats and moves it; the data path follows. And a service answering over
    // HTTP on the fog, with a policy that scales it out onto another machine as soon as the fog's CPU is measured.
    let policy = "policy closer { target = counts  when = p50 >= 0 ms  then = migrate(edge) }\n\
        service answers: inference { model = busy  input = http { path = \"/v1/answers\" }  on = fog }\n\
        policy crowded { target = answers  when = cpu > 0.1%  then = scale_out }\n";
    let request = json!({ "source": format!("{main}{policy}"), "files": { "lib/labelled.stratum": imported } });
    let applied = api.call(Method::POST, "/v1/apply", Some(OPERATOR), Some(request.to_string())).await;
    assert_status(&applied, 202);
    assert!(applied.1["changes"].as_array().is_some_and(|changes| !changes.is_empty()), "{}", applied.1);
    let placed_on = |status: &Value, component: &str| {
        status["placement"].as_array().unwrap().iter().find(|placed| placed["component"] == component).unwrap()["host"]
            .clone()
    };
    api.wait_for("counts on the edge", "/v1/status", |status| {
        status["version"] == 2 && placed_on(status, "counts") == "edge1"
    })
    .await;
    // `answers` runs on both machines now, and the gateway answers from either.
    let hosts_of = |status: &Value, component: &str| -> Vec<String> {
        let placed = status["placement"].as_array().unwrap().iter();
        let mut hosts: Vec<String> = placed
            .filter(|placed| placed["component"] == component)
            .filter_map(|placed| placed["host"].as_str().map(String::from))
            .collect();
        hosts.sort();
        hosts
    };
    api.wait_for("answers on two machines", "/v1/status", |status| hosts_of(status, "answers") == ["edge1", "fog1"])
        .await;
    api.wait_for("both serving it", "/v1/services", |services| {
        services["services"].as_array().unwrap().iter().any(|service| {
            service["name"] == "answers" && service["replicas"].as_u64().is_some_and(|replicas| replicas >= 2)
        })
    })
    .await;
    for _ in 0..4 {
        let answer = api.call(Method::POST, "/v1/services/answers/predict", None, Some(r#"{"n": 300}"#.into())).await;
        assert_eq!((answer.0.as_u16(), &answer.1), (200, &json!({ "prediction": true })), "{}", answer.1);
    }
    let events = api.get("/v1/events").await;
    let added = events["events"].as_array().unwrap().iter().any(|event| {
        event["component"] == "answers" && event["message"].as_str().unwrap().contains("one more instance on edge1")
    });
    assert!(added, "{events}");
    let moved = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["kind"] == "policy" && event["component"] == "counts")
        .cloned();
    let moved = moved.expect("a policy event");
    assert_eq!(moved["component"], "counts");
    assert!(moved["message"].as_str().unwrap().contains("migrating to the edge tier"), "{moved}");
    api.wait_for("windows on the edge", "/v1/topology", |topology| {
        topology["edges"].as_array().unwrap().iter().any(|edge| {
            edge["from"] == "counts"
                && edge["from_node"] == "edge1"
                && edge["to_node"] == "fog1"
                && edge["events_per_second"].as_f64().is_some_and(|rate| rate > 0.0)
        })
    })
    .await;

    // A restarted control plane keeps what the policies did: its state store has the migration and the added
    // instance, so placement puts `counts` on the edge and `answers` on both machines at once.
    stop.send_replace(true);
    let _ = served.await;
    let models_dir = state_dir.join("models");
    let restarted = Server::open(ServerOptions {
        state_dir,
        agent_timeout: Duration::from_secs(5),
        join_token: JOIN.into(),
        authority: None,
    })
    .unwrap();
    let (stop_restarted, restarted_stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(restarted.clone().run(restarted_stopped));
    let started = std::time::Instant::now();
    let host_of_counts =
        || restarted.placement().into_iter().find(|placed| placed.component == "counts").and_then(|placed| placed.host);
    while host_of_counts().is_none() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(host_of_counts().as_deref(), Some("edge1"));
    let mut answers: Vec<Option<String>> = restarted
        .placement()
        .into_iter()
        .filter(|placed| placed.component == "answers")
        .map(|placed| placed.host)
        .collect();
    answers.sort();
    assert_eq!(answers, [Some("edge1".to_string()), Some("fog1".to_string())], "the added instance too");

    // The model file a service serves changes on disk (by hand, or by someone who should not have): its digest, as
    // recorded when it was first served (the whole file: the model, its score, inputs, profile and leaderboard),
    // no longer matches, so no agent gets it, and an event says why — after a restart too.
    let artifact = models_dir.join("busy/v1.json");
    let mut text = std::fs::read_to_string(&artifact).unwrap();
    text.push('\n');
    std::fs::write(&artifact, text).unwrap();
    let started = std::time::Instant::now();
    let refused = || {
        restarted.state().component_events("busy", 20).unwrap().iter().any(|(_, event)| {
            event.kind == stratum_core::events::EventKind::Failed && event.message.contains("v1 refused")
        })
    };
    while !refused() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the changed model file was not refused: {:?}",
            (
                restarted.state().component_events("busy", 50).unwrap(),
                restarted.state().component_events("flags", 50).unwrap()
            )
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_restarted.send_replace(true);
}
