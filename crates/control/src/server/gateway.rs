//! The control plane's prediction gateway: a request for a service goes to a live agent that serves it (in turn
//! when there are several), and its answer comes back as it is. On a cluster with TLS each agent is reached with a
//! client of its own, which takes only that agent's certificate.

use super::{Server, lock};
use crate::Error;
use crate::serving::Refusal;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use stratum_core::Cause;

/// How long the gateway waits for an agent's answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// The gateway's HTTP clients.
pub(crate) struct Clients {
    /// The cluster's authority (TLS), or `None` (plain HTTP, one client for every agent).
    authority_pem: Option<String>,
    plain: reqwest::Client,
    /// One client per agent over TLS, made when first needed, by agent name and the certificate it pins.
    per_agent: Mutex<HashMap<(String, Option<String>), reqwest::Client>>,
}

impl Clients {
    pub(crate) fn new(authority_pem: Option<&str>) -> Result<Clients, Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let plain = reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            .build()
            .map_err(|error| Error::State(format!("HTTP client: {error}").into()))?;
        Ok(Clients { authority_pem: authority_pem.map(str::to_string), plain, per_agent: Mutex::default() })
    }

    /// The client for `agent`, taking only the certificate whose sha256 is `certificate` (its latest), and the
    /// scheme of its API.
    fn client(&self, agent: &str, certificate: Option<&str>) -> Result<(reqwest::Client, &'static str), Cause> {
        let Some(authority) = &self.authority_pem else { return Ok((self.plain.clone(), "http")) };
        let mut clients = lock(&self.per_agent);
        let key = (agent.to_string(), certificate.map(str::to_string));
        if let Some(client) = clients.get(&key) {
            return Ok((client.clone(), "https"));
        }
        // A client for an earlier certificate of the agent opens nothing any more.
        clients.retain(|(known, _), _| known != agent);
        let identity = stratum_dataplane::tls::agent_identity(agent);
        let tls = stratum_dataplane::tls::ClientTls::pinned(authority, &identity, certificate)?;
        let client = reqwest::Client::builder().timeout(FORWARD_TIMEOUT).use_preconfigured_tls(tls.config()).build()?;
        clients.insert(key, client.clone());
        Ok((client, "https"))
    }
}

impl Server {
    /// The gateway: a prediction goes to a live agent that runs the service (in turn when there are several), and
    /// its answer — predictions, or a refusal with its status and `Retry-After` — comes back as it is.
    pub(crate) async fn forward_prediction(
        &self,
        service: String,
        body: Vec<u8>,
    ) -> Result<serde_json::Value, Refusal> {
        let targets: Vec<(String, String, Option<String>, String)> = {
            let cluster = lock(&self.cluster);
            let services: Vec<&String> = cluster
                .applied
                .iter()
                .flat_map(|applied| applied.application.services.iter().map(|service| &service.name))
                .collect();
            if !services.contains(&&service) {
                return Err(crate::serving::unknown_service(&service, services.into_iter()));
            }
            // Agents placement gave the service to, once they say they serve it (an agent that has just been
            // given it may still be loading its model).
            cluster
                .placed
                .iter()
                .filter(|placed| placed.component == service)
                .filter_map(|placed| placed.host.as_ref())
                .filter_map(|host| cluster.agents.get(host).filter(|agent| !agent.lost))
                .filter(|agent| agent.services.iter().any(|state| state.name == service))
                .filter_map(|agent| {
                    let address = agent.join.api_address.clone()?;
                    Some((agent.join.name.clone(), address, agent.certificate_sha256.clone(), agent.api_key.clone()))
                })
                .collect()
        };
        if targets.is_empty() {
            return Err(Refusal {
                status: 503,
                message: format!(
                    "no live agent serves `{service}` over HTTP (agents serve it when started with --api)"
                ),
                retry_after_seconds: Some(1),
            });
        }
        let turn = self.next_replica.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (agent, target, certificate, api_key) = &targets[turn % targets.len()];
        let bad_gateway = |message: String| Refusal { status: 502, message, retry_after_seconds: None };
        let (client, scheme) = self
            .gateway
            .client(agent, certificate.as_deref())
            .map_err(|error| bad_gateway(format!("agent `{agent}`: {}", stratum_core::error_chain(&*error))))?;
        forward(&client, &format!("{scheme}://{target}"), api_key, &service, body).await
    }
}

/// Sends a prediction request to the agent at `target` (`scheme://host:port`) and reads its answer back.
async fn forward(
    client: &reqwest::Client,
    target: &str,
    api_key: &str,
    service: &str,
    body: Vec<u8>,
) -> Result<serde_json::Value, Refusal> {
    let bad_gateway = |message: String| Refusal { status: 502, message, retry_after_seconds: None };
    let answer = client
        .post(format!("{target}/v1/services/{service}/predict"))
        .bearer_auth(api_key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|error| bad_gateway(format!("agent at {target}: {error}")))?;
    let status = answer.status().as_u16();
    let retry_after_seconds = answer.headers().get("retry-after").and_then(|value| value.to_str().ok()?.parse().ok());
    let bytes = answer.bytes().await.map_err(|error| bad_gateway(format!("agent at {target}: {error}")))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|error| bad_gateway(format!("agent at {target} answered no JSON: {error}")))?;
    if status == 200 {
        return Ok(value);
    }
    let message = value["error"]["message"].as_str().map_or_else(|| value.to_string(), str::to_string);
    Err(Refusal { status, message, retry_after_seconds })
}
