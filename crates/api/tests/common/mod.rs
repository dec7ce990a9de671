//! What the API's tests share: the tokens they run with and a small client that answers (status, JSON).

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};

pub(crate) const OPERATOR: &str = "operator-token";
pub(crate) const VIEWER: &str = "viewer-token";

pub(crate) struct Api {
    pub base: String,
    pub http: Client,
}

impl Api {
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// `GET path` as a viewer, which must answer 200.
    pub(crate) async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, Some(VIEWER), None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Polls `path` until `condition` holds of its answer.
    #[allow(dead_code)] // Not every test binary polls.
    pub(crate) async fn wait_for(&self, what: &str, path: &str, condition: impl Fn(&Value) -> bool) -> Value {
        let began = Instant::now();
        loop {
            let answer = self.get(path).await;
            if condition(&answer) {
                return answer;
            }
            assert!(began.elapsed() < Duration::from_secs(30), "timed out waiting for {what}: {answer}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Asserts an error answer: its status and its JSON code.
pub(crate) fn assert_error(answer: (StatusCode, Value), status: u16, code: &str) {
    assert_eq!(answer.0.as_u16(), status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert!(answer.1["error"]["message"].as_str().is_some_and(|message| !message.is_empty()));
}
