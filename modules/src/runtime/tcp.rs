//! TCP beside the module's UDP socket, for the lab programs that speak it: a
//! module may serve HTTP (the ack lab's discovery, whose students' clients
//! use `requests` or `urllib`) or take streams of lines (the multicast lab's
//! comparison server, to which each peer connects once) on the TCP port of
//! the same number as its `MGR_ADDR`.
//!
//! This file owns the listener, the connections and their bounds; it hands
//! every request and every line to the event loop as an [`Incoming`] and
//! never touches a module's state, so handlers stay one at a time as on
//! UDP. It must not apply the network faults (they are the UDP links'; the
//! module's docs say TCP is outside them) and must not let a client hold
//! more than a bounded share of the process: at most [`MAX_CONNECTIONS`]
//! connections, [`MAX_LINE`] bytes a line or [`MAX_BODY`] a request body,
//! [`HEADER_TIMEOUT`] to send a request's head and [`IDLE_TIMEOUT`]
//! between lines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Connections open at once; a connection beyond is closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// The longest line a line stream may send; a longer one ends the connection.
pub const MAX_LINE: usize = 64 * 1024;
/// The largest HTTP request body; a larger one is answered 413.
pub const MAX_BODY: usize = 64 * 1024;
/// How long an HTTP client may take to send a request's head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a line stream may stay silent before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// What a module serves on its TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// HTTP/1.1: each request is one [`Module::upon_http`](super::Module::upon_http).
    Http,
    /// Streams of text lines: each line is one
    /// [`Module::upon_stream_line`](super::Module::upon_stream_line), the end
    /// of the stream one [`Module::upon_stream_end`](super::Module::upon_stream_end).
    Lines,
}

/// One HTTP request, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Where the connection came from.
    pub from: SocketAddr,
    /// `GET`, `POST`…
    pub method: String,
    /// The path without the query, e.g. `/receivers`.
    pub path: String,
    pub body: Vec<u8>,
}

/// The answer to an [`HttpRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl HttpResponse {
    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> HttpResponse {
        HttpResponse { status, content_type: "application/json", body: value.to_string() + "\n" }
    }

    /// A JSON `{"error": "..."}` answer.
    pub fn error(status: u16, message: impl std::fmt::Display) -> HttpResponse {
        HttpResponse::json(status, &serde_json::json!({ "error": message.to_string() }))
    }
}

/// What the connections hand to the event loop.
#[derive(Debug)]
pub enum Incoming {
    Http { request: HttpRequest, reply: oneshot::Sender<HttpResponse> },
    Line { conn: u64, from: SocketAddr, line: String },
    End { conn: u64, from: SocketAddr },
}

/// Accepts connections on `listener` forever, serving `service`; what they
/// bring goes to `tx`. Spawned by the runtime when the module asks for TCP.
pub async fn serve(listener: TcpListener, service: Service, tx: mpsc::Sender<Incoming>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut next_conn = 0u64;
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                eprintln!("tcp: accept: {err}");
                // Out of descriptors, most likely: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            eprintln!("tcp: refused a connection from {from}: {MAX_CONNECTIONS} connections are open");
            continue;
        };
        next_conn += 1;
        let (conn, tx) = (next_conn, tx.clone());
        tokio::spawn(async move {
            match service {
                Service::Http => serve_http(stream, from, tx).await,
                Service::Lines => read_lines(stream, conn, from, tx).await,
            }
            drop(slot);
        });
    }
}

async fn serve_http(stream: TcpStream, from: SocketAddr, tx: mpsc::Sender<Incoming>) {
    use hyper::service::service_fn;
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let tx = tx.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(request, from, tx).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
    if let Err(err) = served {
        eprintln!("http: {from}: {err}");
    }
}

/// Reads one request whole, hands it to the module and turns its answer
/// into a hyper response.
async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    from: SocketAddr,
    tx: mpsc::Sender<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let response = match Limited::new(body, MAX_BODY).collect().await {
        Err(_) => HttpResponse::error(413, format!("the body is over {MAX_BODY} bytes or was cut")),
        Ok(body) => {
            let request = HttpRequest {
                from,
                method: parts.method.as_str().to_owned(),
                path: parts.uri.path().to_owned(),
                body: body.to_bytes().to_vec(),
            };
            let (reply, answer) = oneshot::channel();
            match tx.send(Incoming::Http { request, reply }).await {
                Ok(()) => answer.await.unwrap_or_else(|_| HttpResponse::error(500, "the module gave no answer")),
                Err(_) => HttpResponse::error(503, "the module is stopping"),
            }
        }
    };
    hyper::Response::builder()
        .status(response.status)
        .header("content-type", response.content_type)
        .body(Full::new(Bytes::from(response.body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::from_static(b"bad status\n"))))
}

async fn read_lines(stream: TcpStream, conn: u64, from: SocketAddr, tx: mpsc::Sender<Incoming>) {
    let mut reader = tokio::io::BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // At most MAX_LINE + 1 bytes, so that an endless line is cut.
        let mut limited = (&mut reader).take(MAX_LINE as u64 + 1);
        let read = tokio::time::timeout(IDLE_TIMEOUT, limited.read_until(b'\n', &mut buf)).await;
        match read {
            Err(_) => {
                eprintln!("tcp: {from}: closed after {} s without a line", IDLE_TIMEOUT.as_secs());
                break;
            }
            Ok(Err(err)) => {
                eprintln!("tcp: {from}: {err}");
                break;
            }
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => {}
        }
        if buf.len() > MAX_LINE {
            eprintln!("tcp: {from}: closed: a line is longer than {MAX_LINE} bytes");
            break;
        }
        let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_owned();
        if tx.send(Incoming::Line { conn, from, line }).await.is_err() {
            return;
        }
    }
    let _ = tx.send(Incoming::End { conn, from }).await;
}
