//! HTTP: a push source that takes `POST`s of JSON (an object, an array of objects, or JSON lines) on a path, and
//! a webhook sink that `POST`s records as JSON arrays, trying again with backoff when the receiver fails.
//!
//! Sources on the same port share one server, each on its own path. A push is answered 200 only once its records
//! are durable wherever they go — synced by every sink, in a path's log, in a stream's synced checkpoint (see
//! [`crate::ack`]) — with how many were accepted; 503 when they may not be, and the client sends them again. A
//! full pipeline makes the client wait: backpressure reaches the sender. Records that do not fit the schema go to
//! the dead letters and are listed in the answer.

use crate::Error;
use crate::ack::{Ack, Acks, Settled};
use crate::component::{BoxFuture, BuildContext, Context, Output, Sink, Source};
use crate::record::{Batch, Record, from_json_object, into_records, to_json_object};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use stratum_core::ir::{DEFAULT_HTTP_PORT, Sink as SinkItem, SinkKind, Source as SourceItem, SourceKind};
use stratum_core::sync::lock;
use stratum_core::types::Field;
use tokio::sync::{mpsc, oneshot};

/// The largest body a push may have.
const MAX_BODY: usize = 16 << 20;
/// Records a webhook sends in one request at most.
const WEBHOOK_BATCH: usize = 1000;
/// How long one webhook request may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// The first pause before trying a webhook again; it doubles with each attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The longest `Retry-After` a webhook sink honours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The answer to a push whose records may not be durable: nothing of it counts, and the client sends it again.
const STOPPED: &str = "the records were not stored (the pipeline failed or is stopping); send them again";
/// Errors listed in the answer to a push at most (all go to the dead letters).
const ERRORS_ANSWERED: usize = 10;

/// Builds an `http` source.
pub fn build_source(source: &SourceItem, context: &BuildContext) -> Result<Box<dyn Source>, Error> {
    let SourceKind::Http { path, port, tls } = &source.kind else {
        return Err(Error::Build { component: source.name.clone(), message: "not an HTTP source".into() });
    };
    let failed = |message: String| Error::Build { component: source.name.clone(), message };
    if !path.starts_with('/') {
        return Err(failed(format!("path `{path}` must start with /")));
    }
    let tls = match tls {
        Some(files) => {
            let read = |file: &str, what: &str| {
                let path = context.resolve(file);
                std::fs::read_to_string(&path)
                    .map_err(|error| failed(format!("cannot read its {what} `{}`: {error}", path.display())))
            };
            let identity = crate::tls::Identity {
                certificate_pem: read(&files.certificate, "certificate")?,
                key_pem: read(&files.private_key, "private key")?,
            };
            let fingerprint = crate::tls::certificate_sha256(&identity.certificate_pem)
                .map_err(|error| failed(format!("its certificate `{}`: {error}", files.certificate)))?;
            let server = crate::tls::ServerTls::new(&identity).map_err(|error| {
                failed(format!("its certificate `{}` and key `{}`: {error}", files.certificate, files.private_key))
            })?;
            Some(IngestTls { server, fingerprint })
        }
        None => None,
    };
    Ok(Box::new(HttpSource {
        port: port.unwrap_or(DEFAULT_HTTP_PORT),
        path: path.clone(),
        fields: source.fields.clone(),
        tls,
    }))
}

/// An HTTP push source: takes `POST`s on its path.
pub struct HttpSource {
    /// The port it listens on (shared with the sources on the same port).
    pub port: u16,
    /// The path it takes pushes on.
    pub path: String,
    /// The fields of its records.
    pub fields: Vec<Field>,
    /// HTTPS, when the source names a certificate.
    pub tls: Option<IngestTls>,
}

/// The TLS an HTTP source serves, with its certificate's sha256: the sources sharing a port must agree on it.
#[derive(Clone)]
pub struct IngestTls {
    /// The server side of TLS.
    pub server: crate::tls::ServerTls,
    /// The sha256 of its certificate.
    pub fingerprint: String,
}

/// One push waiting for its source.
struct Push {
    body: Bytes,
    answer: oneshot::Sender<(StatusCode, Value)>,
}

/// A server shared by the sources listening on one port.
struct IngestServer {
    routes: Mutex<HashMap<String, mpsc::Sender<Push>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The sha256 of the certificate it serves HTTPS with; `None` for plain HTTP.
    certificate: Option<String>,
}

/// The servers of this process, by port.
static SERVERS: LazyLock<Mutex<BTreeMap<u16, Arc<IngestServer>>>> = LazyLock::new(Default::default);

/// Adds a path to the server on `port`, starting the server if it is the first.
fn register(port: u16, path: &str, pushes: mpsc::Sender<Push>, tls: Option<&IngestTls>) -> Result<(), String> {
    let mut servers = lock(&SERVERS);
    let certificate = tls.map(|tls| tls.fingerprint.clone());
    if let Some(server) = servers.get(&port) {
        if server.certificate != certificate {
            let served = if server.certificate.is_some() { "HTTPS with another certificate" } else { "plain HTTP" };
            return Err(format!("another source on port {port} serves {served}: sources on one port share one server"));
        }
        let mut routes = lock(&server.routes);
        if routes.contains_key(path) {
            return Err(format!("another source already takes pushes on port {port} at {path}"));
        }
        routes.insert(path.into(), pushes);
        return Ok(());
    }
    let listener = std::net::TcpListener::bind(("0.0.0.0", port))
        .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(|error| format!("cannot listen on port {port}: {error}"))?;
    let server = Arc::new(IngestServer {
        routes: Mutex::new(HashMap::from([(path.to_string(), pushes)])),
        task: Mutex::new(None),
        certificate,
    });
    let router = axum::Router::new().fallback(ingest).layer(DefaultBodyLimit::max(MAX_BODY)).with_state(server.clone());
    let acceptor = tls.map(|tls| tls.server.clone());
    let task = tokio::spawn(serve(listener, router, HEADER_TIMEOUT, acceptor, std::future::pending()));
    *lock(&server.task) = Some(task);
    servers.insert(port, server);
    tracing::info!(port, path, https = tls.is_some(), "HTTP source listening");
    Ok(())
}

/// Removes a path; the last path on a port stops its server.
fn unregister(port: u16, path: &str) {
    let mut servers = lock(&SERVERS);
    let Some(server) = servers.get(&port) else { return };
    let empty = {
        let mut routes = lock(&server.routes);
        routes.remove(path);
        routes.is_empty()
    };
    if empty {
        if let Some(task) = lock(&server.task).take() {
            task.abort();
        }
        servers.remove(&port);
    }
}

async fn ingest(
    State(server): State<Arc<IngestServer>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> (StatusCode, String) {
    let path = uri.path();
    let route = lock(&server.routes).get(path).cloned();
    let (status, answer) = match route {
        None => {
            let mut paths: Vec<String> = lock(&server.routes).keys().cloned().collect();
            paths.sort();
            (
                StatusCode::NOT_FOUND,
                json!({ "error": format!("no source takes pushes at {path}; paths here: {}", paths.join(", ")) }),
            )
        }
        Some(_) if method != Method::POST => {
            (StatusCode::METHOD_NOT_ALLOWED, json!({ "error": format!("{path} takes POST, not {method}") }))
        }
        Some(route) => {
            let (answer, answered) = oneshot::channel();
            if route.send(Push { body, answer }).await.is_err() {
                (StatusCode::SERVICE_UNAVAILABLE, json!({ "error": "the source is stopping" }))
            } else {
                answered
                    .await
                    .unwrap_or((StatusCode::SERVICE_UNAVAILABLE, json!({ "error": "the source is stopping" })))
            }
        }
    };
    (status, answer.to_string())
}

/// The records of a push body: one JSON object, an array of objects, or JSON lines. Each item that does not fit
/// comes back as an error with its position.
pub fn decode_push(body: &[u8], fields: &[Field]) -> (Vec<Record>, Vec<(String, String)>) {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let mut take = |item: Result<Value, String>, position: String, raw: &dyn Fn() -> String| match item {
        Ok(Value::Object(object)) => match from_json_object(&object, fields) {
            Ok(record) => records.push(record),
            Err(reason) => errors.push((format!("{position}: {reason}"), raw())),
        },
        Ok(other) => errors.push((format!("{position}: expected a JSON object"), other.to_string())),
        Err(reason) => errors.push((format!("{position}: {reason}"), raw())),
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => {
            for (index, item) in items.into_iter().enumerate() {
                let raw = item.to_string();
                take(Ok(item), format!("item {index}"), &|| raw.clone());
            }
        }
        Ok(object @ Value::Object(_)) => {
            let raw = object.to_string();
            take(Ok(object), "body".into(), &|| raw.clone());
        }
        // Not one JSON value: JSON lines (or not JSON at all, which every line then says).
        _ => {
            let text = String::from_utf8_lossy(body);
            for (index, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
                let parsed = serde_json::from_str::<Value>(line).map_err(|error| format!("not JSON: {error}"));
                take(parsed, format!("line {}", index + 1), &|| line.to_string());
            }
        }
    }
    (records, errors)
}

impl Source for HttpSource {
    fn run(self: Box<Self>, output: Output, mut context: Context) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async move {
            let (sender, mut pushes) = mpsc::channel::<Push>(64);
            register(self.port, &self.path, sender, self.tls.as_ref())
                .map_err(|message| Error::Build { component: context.component.clone(), message })?;
            loop {
                let push = tokio::select! {
                    push = pushes.recv() => push,
                    _ = context.stopped() => None,
                };
                let Some(push) = push else { break };
                let (records, errors) = decode_push(&push.body, &self.fields);
                context.metrics.count_in(records.len() + errors.len(), push.body.len());
                context.dead_letter_all(errors.iter().cloned());
                let accepted = records.len();
                let reasons: Vec<String> =
                    errors.iter().take(ERRORS_ANSWERED).map(|(reason, _)| reason.clone()).collect();
                if accepted == 0 {
                    let answer = if errors.is_empty() {
                        json!({ "error": "the body holds no records" })
                    } else {
                        json!({ "accepted": 0, "rejected": errors.len(), "errors": reasons })
                    };
                    let _ = push.answer.send((StatusCode::BAD_REQUEST, answer));
                    continue;
                }
                let (ack, settlement) = Ack::new();
                if output.send_acked(records, ack.into()).await.is_err() {
                    let _ = push.answer.send((StatusCode::SERVICE_UNAVAILABLE, json!({ "error": STOPPED })));
                    continue;
                }
                // Answered once the records are durable, while the next push goes in: waiting here would let one
                // client's sink latency hold up every other.
                let rejected = errors.len();
                tokio::spawn(async move {
                    let answer = match settlement.await {
                        Settled::Durable => {
                            (StatusCode::OK, json!({ "accepted": accepted, "rejected": rejected, "errors": reasons }))
                        }
                        Settled::Failed => (StatusCode::SERVICE_UNAVAILABLE, json!({ "error": STOPPED })),
                    };
                    let _ = push.answer.send(answer);
                });
            }
            unregister(self.port, &self.path);
            Ok(())
        })
    }
}

/// Builds an `http` (webhook) sink.
pub fn build_sink(sink: &SinkItem, _context: &BuildContext) -> Result<Box<dyn Sink>, Error> {
    let SinkKind::Http { url, retries } = &sink.kind else {
        return Err(Error::Build { component: sink.name.clone(), message: "not an HTTP sink".into() });
    };
    Ok(Box::new(WebhookSink { url: url.clone(), retries: *retries, fields: sink.fields.clone(), client: None }))
}

/// A webhook sink: `POST`s batches as JSON arrays, trying again with backoff.
pub struct WebhookSink {
    url: String,
    retries: u32,
    fields: Vec<Field>,
    /// Made on first use.
    client: Option<reqwest::Client>,
}

/// Why a request failed, and whether trying again may help.
struct Failure {
    message: String,
    retry: bool,
    retry_after: Option<Duration>,
}

fn client(component: &str) -> Result<reqwest::Client, Error> {
    // reqwest's TLS comes without a crypto provider, so that the whole program shares one: ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .user_agent(concat!("stratum/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| Error::Connect {
            component: component.into(),
            what: "HTTP client".into(),
            source: error.into(),
        })
}

impl WebhookSink {
    async fn post(&self, client: &reqwest::Client, body: String) -> Result<(), Failure> {
        let response =
            client.post(&self.url).header("content-type", "application/json").body(body).send().await.map_err(
                |error| Failure { message: stratum_core::error_chain(&error), retry: true, retry_after: None },
            )?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(|seconds| Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
        let text = response.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(200).collect();
        Err(Failure {
            message: format!("{status}{}{excerpt}", if excerpt.is_empty() { "" } else { ": " }),
            // Timeouts, rate limits and server errors pass; other client errors will fail the same way again.
            retry: status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429),
            retry_after,
        })
    }

    /// Posts one request, trying again with exponential backoff; the error says why it finally failed.
    async fn deliver(&self, client: &reqwest::Client, body: String, context: &Context) -> Result<(), String> {
        let mut attempt = 0;
        loop {
            match self.post(client, body.clone()).await {
                Ok(()) => return Ok(()),
                Err(failure) if failure.retry && attempt < self.retries => {
                    let backoff = FIRST_BACKOFF.saturating_mul(1 << attempt.min(16)).min(MAX_BACKOFF);
                    let pause = failure.retry_after.unwrap_or(backoff);
                    context.metrics.count_error();
                    tracing::warn!(
                        component = context.component,
                        url = self.url,
                        attempt,
                        error = failure.message,
                        ?pause,
                        "webhook failed; trying again"
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(failure) => {
                    return Err(if failure.retry {
                        format!("gave up after {} attempts: {}", attempt + 1, failure.message)
                    } else {
                        failure.message
                    });
                }
            }
        }
    }
}

impl Sink for WebhookSink {
    fn write<'a>(&'a mut self, batch: Batch, acks: Acks, context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if self.client.is_none() {
                self.client = Some(client(&context.component)?);
            }
            let Some(client) = self.client.clone() else { return Ok(()) };
            for chunk in into_records(batch).chunks(WEBHOOK_BATCH) {
                let objects: Vec<Value> =
                    chunk.iter().map(|record| Value::Object(to_json_object(record, &self.fields))).collect();
                let body = Value::Array(objects).to_string();
                context.metrics.count_in(chunk.len(), body.len());
                if let Err(reason) = self.deliver(&client, body, context).await {
                    // The receiver refused them for good: keep them, with the reason, rather than stop the pipeline.
                    context.metrics.count_error();
                    tracing::warn!(
                        component = context.component,
                        url = self.url,
                        records = chunk.len(),
                        reason,
                        "webhook records sent to dead letters"
                    );
                    for record in chunk {
                        let raw = Value::Object(to_json_object(record, &self.fields)).to_string();
                        context.dead_letter(&format!("webhook {}: {reason}", self.url), &raw);
                    }
                }
            }
            // Taken by the receiver (2xx), or kept in the dead letters.
            acks.done();
            Ok(())
        })
    }
}

/// How long a client may take to send a request's headers — the first request's, or the next one on a connection
/// kept alive — before the connection is closed: slow or silent clients must not hold connections, and with them
/// descriptors, for ever.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections one server serves at once; further clients wait in the kernel's backlog until one closes.
pub const MAX_CONNECTIONS: usize = 1024;

/// Serves `router` on `listener` until `stop` resolves — every HTTP server of Stratum (the API, an agent's API,
/// the ingest servers) serves through this: over TLS when given `tls`, connections without Nagle's delay (an answer
/// written in more than one piece must not wait for the client's delayed acknowledgement), closed when the TLS
/// handshake or the headers do not arrive within `header_timeout`, at most [`MAX_CONNECTIONS`] at once, and a
/// failed accept (no descriptors left) waited out rather than ending the server.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    header_timeout: Duration,
    tls: Option<crate::tls::ServerTls>,
    stop: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let acceptor = tls.map(|tls| tls.acceptor());
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = &mut stop => return,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection; trying again shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => return,
        };
        // A socket that refuses the option still serves, only with the delay.
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(stream, service, header_timeout).await,
                Some(acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve_connection(stream, service, header_timeout).await,
                    Ok(Err(error)) => tracing::debug!(%error, "a TLS handshake failed"),
                    Err(_) => tracing::debug!("a TLS handshake took too long"),
                },
            }
            drop(permit);
        });
    }
}

async fn serve_connection<S>(
    stream: S,
    service: hyper_util::service::TowerToHyperService<axum::Router>,
    header_timeout: Duration,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).with_upgrades();
    if let Err(error) = connection.await {
        tracing::debug!(%error, "an HTTP connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_that_sends_no_headers_is_disconnected() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, Duration::from_millis(300), None, async move {
            let _ = stopped.await;
        }));
        // A client that asks is answered.
        let mut asking = tokio::net::TcpStream::connect(address).await.unwrap();
        asking.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        asking.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"), "{answer}");
        // A silent one, and one that stops half-way through its headers, are closed: reading ends, not hangs.
        for sent in [&b""[..], b"GET / HTTP/1.1\r\nHost:"] {
            let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
            silent.write_all(sent).await.unwrap();
            let mut rest = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut rest)).await;
            assert!(read.is_ok(), "the server still holds a connection that sent {sent:?}");
        }
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), server).await.expect("the server stops").unwrap();
    }
    use stratum_core::eval::Datum;
    use stratum_core::types::DataType;

    fn fields() -> Vec<Field> {
        vec![Field::new("camera", DataType::String), Field::new("count", DataType::Int)]
    }

    #[test]
    fn a_push_is_an_object_an_array_or_json_lines() {
        let (records, errors) = decode_push(br#"{"camera": "a", "count": 1}"#, &fields());
        assert_eq!((records.len(), errors.len()), (1, 0));
        let (records, errors) =
            decode_push(br#"[{"camera": "a", "count": 1}, {"camera": "b", "count": "x"}, 3]"#, &fields());
        assert_eq!(records, vec![vec![Datum::Text("a".into()), Datum::Int(1)]]);
        assert_eq!(errors.len(), 2);
        assert!(errors[0].0.starts_with("item 1: field `count`"), "{errors:?}");
        assert!(errors[1].0.starts_with("item 2: expected a JSON object"), "{errors:?}");
        let (records, errors) =
            decode_push(b"{\"camera\": \"a\", \"count\": 1}\n\n{\"camera\": \"b\", \"count\": 2}\nnope\n", &fields());
        assert_eq!(records.len(), 2);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].0.starts_with("line 4: not JSON"), "{errors:?}");
    }
}
