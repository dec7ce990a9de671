//! A load generator for the serving benchmarks: `CONNECTIONS` clients, each sending the same POST one after
//! another over a kept-alive connection for `SECONDS`, then one JSON line with the requests per second and the
//! latency percentiles. The same program drives Stratum and the Python stack it is compared with.
//!
//! Usage: load_generator URL BODY_FILE CONNECTIONS SECONDS
//!        load_generator --answer-fixed PORT
//!
//! The second form is the yardstick: a server that answers every request with the same small JSON and does
//! nothing else (a thread per connection, blocking reads), so a run against it measures the loopback round trip
//! alone, what no HTTP server on the machine can beat.
//!
//! Like wrk, it is as light as it can be, so that it measures the servers and not itself: every connection is a
//! task on one thread, the request's bytes are rendered once, and an answer is read only as far as its status
//! line and `Content-Length` (a general client such as reqwest spent more of the shared cores than some servers).

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let arguments: Vec<String> = std::env::args().collect();
    if let [_, flag, port] = arguments.as_slice()
        && flag == "--answer-fixed"
    {
        return answer_fixed(port.parse()?);
    }
    let [_, url, body_file, connections, seconds] = arguments.as_slice() else {
        return Err(
            "usage: load_generator URL BODY_FILE CONNECTIONS SECONDS | load_generator --answer-fixed PORT".into()
        );
    };
    let (address, request) = render_request(url, &std::fs::read(body_file)?)?;
    let connections: usize = connections.parse()?;
    let duration = Duration::from_secs_f64(seconds.parse()?);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (latencies, errors, elapsed) = runtime.block_on(drive(address, request, connections, duration))?;
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

/// The server's address and the whole request, from an `http://host:port/path` URL and a JSON body.
fn render_request(url: &str, body: &[u8]) -> Result<(String, Vec<u8>), Failure> {
    let rest = url.strip_prefix("http://").ok_or("the URL must start with http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let address = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    Ok((address, request))
}

/// Runs every connection until `duration` is over: every request's latency in µs (sorted), the failed requests, and
/// the seconds it took.
async fn drive(
    address: String,
    request: Vec<u8>,
    connections: usize,
    duration: Duration,
) -> Result<(Vec<f64>, u64, f64), Failure> {
    // Warm up: every connection opened and one request answered before the clock starts.
    let mut streams = Vec::new();
    for _ in 0..connections {
        let mut stream = TcpStream::connect(&address).await?;
        // No Nagle delay on small requests: a client that waited for ACKs would measure the TCP stack.
        stream.set_nodelay(true)?;
        let mut buffer = Vec::with_capacity(4096);
        exchange(&mut stream, &request, &mut buffer).await?;
        streams.push((stream, buffer));
    }
    let started = Instant::now();
    let request = std::rc::Rc::new(request);
    let local = tokio::task::LocalSet::new();
    let workers: Vec<_> = streams
        .into_iter()
        .map(|(mut stream, mut buffer)| {
            let request = request.clone();
            local.spawn_local(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                while started.elapsed() < duration {
                    let sent = Instant::now();
                    match exchange(&mut stream, &request, &mut buffer).await {
                        Ok(true) => {}
                        Ok(false) => errors += 1,
                        // A broken connection ends this client; what it measured so far still counts.
                        Err(_) => {
                            errors += 1;
                            break;
                        }
                    }
                    latencies.push(sent.elapsed().as_secs_f64() * 1e6);
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    local
        .run_until(async {
            for worker in workers {
                let (mut part, failed) = worker.await?;
                latencies.append(&mut part);
                errors += failed;
            }
            Ok::<_, tokio::task::JoinError>(())
        })
        .await?;
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok((latencies, errors, elapsed))
}

/// Sends the request and reads its whole answer; whether the status was 2xx.
async fn exchange(stream: &mut TcpStream, request: &[u8], buffer: &mut Vec<u8>) -> std::io::Result<bool> {
    stream.write_all(request).await?;
    buffer.clear();
    let invalid = |message: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string());
    loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end]).map_err(|_| invalid("the answer's head is not UTF-8"))?;
            let status = head.get(9..12).and_then(|code| code.parse::<u16>().ok()).ok_or_else(|| invalid(head))?;
            let length = content_length(head).ok_or_else(|| invalid("the answer has no Content-Length"))?;
            let whole = end + 4 + length;
            while buffer.len() < whole {
                read_more(stream, buffer).await?;
            }
            // One request at a time per connection: nothing may follow the answer.
            return Ok((200..300).contains(&status));
        }
        read_more(stream, buffer).await?;
    }
}

/// The `Content-Length` of a message's head, if it has one.
fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
    })
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    let read = stream.read(&mut chunk).await?;
    if read == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    buffer.extend_from_slice(&chunk[..read]);
    Ok(())
}

/// Answers every request on `port` with `{"prediction":true}` until killed.
fn answer_fixed(port: u16) -> Result<(), Failure> {
    use std::io::{Read, Write};
    const ANSWER: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 19\r\n\r\n{\"prediction\":true}";
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    for stream in listener.incoming() {
        let mut stream = stream?;
        stream.set_nodelay(true)?;
        std::thread::spawn(move || {
            let mut buffer = Vec::with_capacity(4096);
            let mut chunk = [0u8; 4096];
            loop {
                // A request ends with its head and `Content-Length` bytes of body.
                let whole = buffer.windows(4).position(|window| window == b"\r\n\r\n").and_then(|end| {
                    let head = std::str::from_utf8(&buffer[..end]).ok()?;
                    Some(end + 4 + content_length(head).unwrap_or(0))
                });
                match whole {
                    Some(whole) if buffer.len() >= whole => {
                        buffer.drain(..whole);
                        if stream.write_all(ANSWER).is_err() {
                            return;
                        }
                    }
                    _ => match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                    },
                }
            }
        });
    }
    Ok(())
}
