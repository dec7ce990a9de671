//! The control plane's prediction gateway: a request for a service goes to a live agent that serves it (in turn
//! when there are several), and its answer comes back as it is.

use super::{Server, lock};
use crate::serving::Refusal;

impl Server {
    /// The gateway: a prediction goes to a live agent that runs the service (in turn when there are several), and
    /// its answer — predictions, or a refusal with its status and `Retry-After` — comes back as it is.
    pub(crate) async fn forward_prediction(
        &self,
        service: String,
        body: Vec<u8>,
    ) -> Result<serde_json::Value, Refusal> {
        let targets: Vec<String> = {
            let cluster = lock(&self.cluster);
            let services: Vec<&String> = cluster
                .deployed
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
                .filter_map(|agent| agent.join.api_address.clone())
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
        let target = &targets[turn % targets.len()];
        forward(&self.gateway, target, &self.options.join_token, &service, body).await
    }
}

/// Sends a prediction request to the agent at `target` and reads its answer back.
async fn forward(
    client: &reqwest::Client,
    target: &str,
    join_token: &str,
    service: &str,
    body: Vec<u8>,
) -> Result<serde_json::Value, Refusal> {
    let bad_gateway = |message: String| Refusal { status: 502, message, retry_after_seconds: None };
    let answer = client
        .post(format!("http://{target}/v1/services/{service}/predict"))
        .bearer_auth(join_token)
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
