//! Stratum's HTTP API and web interface over a running application. The API is versioned (`/v1/…`) and
//! described by an OpenAPI document generated from its route table ([`routes`]); callers present an operator's
//! token (read and change) or a viewer's (read only). The web interface — topology, editor, live views, models,
//! the file's dashboards — is a single page shipped inside the binary (`assets.rs`) that reads the same API.
//!
//! Start at [`serve`]: it takes an [`ApiState`], which the runner (`stratum up`) keeps pointed at the
//! application running now and which hands versions applied from the editor back to the runner.

#![warn(missing_docs)]

mod answer;
mod assets;
mod describe;
mod editor;
pub mod openapi;
mod plane;
pub mod routes;
mod series;
pub mod table;
pub mod views;

pub use plane::{ApiConfig, ApiState, Phase, Reload, Tokens};

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Everything that can go wrong while serving the API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API's address cannot be listened on.
    #[error("cannot serve the API on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No randomness for a token.
    #[error("cannot make a random token: {0}")]
    Token(#[source] getrandom::Error),
}

/// Serves the API and the web interface on `listener` (over TLS when given `tls`), and samples the metric series
/// every second, until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    plane: Arc<ApiState>,
    tls: Option<stratum_dataplane::tls::ServerTls>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let sampler = plane.clone();
    let mut sampler_stop = stop.clone();
    let sampling = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => sampler.sample(),
                _ = sampler_stop.wait_for(|stopped| *stopped) => return,
            }
        }
    });
    use stratum_dataplane::connectors::http::{HEADER_TIMEOUT, serve as serve_http};
    serve_http(listener, routes::router(plane), HEADER_TIMEOUT, tls, async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    })
    .await;
    sampling.abort();
    Ok(())
}
