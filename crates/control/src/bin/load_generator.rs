//! A load generator for the serving benchmarks: `CONNECTIONS` clients, each sending the same POST one after
//! another over a kept-alive connection for `SECONDS`, then one JSON line with the requests per second and the
//! latency percentiles. The same program drives Stratum and the Python stack it is compared with.
//!
//! Usage: load_generator URL BODY_FILE CONNECTIONS SECONDS

use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().collect();
    let [_, url, body_file, connections, seconds] = arguments.as_slice() else {
        return Err("usage: load_generator URL BODY_FILE CONNECTIONS SECONDS".into());
    };
    let body = std::fs::read(body_file)?;
    let connections: usize = connections.parse()?;
    let duration = Duration::from_secs_f64(seconds.parse()?);
    let _ = rustls::crypto::ring::default_provider().install_default();
    // No Nagle delay on small requests: a client that waited for ACKs would measure the TCP stack, not the servers.
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).tcp_nodelay(true).build()?;
    // Warm up: connections opened, caches filled.
    for _ in 0..connections.min(50) {
        client
            .post(url.as_str())
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?
            .bytes()
            .await?;
    }
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                while started.elapsed() < duration {
                    let sent = Instant::now();
                    match client
                        .post(url.as_str())
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                    {
                        Ok(response) if response.status().is_success() => {
                            if response.bytes().await.is_err() {
                                errors += 1;
                            }
                        }
                        _ => errors += 1,
                    }
                    latencies.push(sent.elapsed().as_secs_f64() * 1e6);
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (mut part, failed) = worker.await?;
        latencies.append(&mut part);
        errors += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let percentile = |fraction: f64| {
        latencies.get(((latencies.len() as f64 - 1.0) * fraction).round() as usize).copied().unwrap_or(f64::NAN)
    };
    println!(
        "{{\"requests\": {}, \"errors\": {errors}, \"seconds\": {elapsed:.3}, \"requests_per_second\": {:.1}, \"p50_us\": {:.1}, \"p99_us\": {:.1}}}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        percentile(0.5),
        percentile(0.99)
    );
    Ok(())
}
