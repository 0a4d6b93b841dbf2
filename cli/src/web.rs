//! The live view of `mgrctl web`: a small HTTP server on loopback that
//! serves one page (built into the binary: no CDN, no network) and the
//! streams and controls behind it.
//!
//! It talks to the manager exactly as the other verbs do: the same
//! [`Client`] (Unix socket, or `--host` with the group key), the same RPCs
//! and the same error messages. It owns no state of the group: every view
//! is fetched from the manager while a page watches it, and each stream
//! ends with its page. It must not bind anything but loopback, and must not
//! answer any request that lacks the token printed with the URL (as
//! Jupyter's): another local user, or a web page open in the user's own
//! browser, cannot read the terminal and so cannot reach the manager
//! through it.
//!
//! Streams are server-sent events: `/api/state` (members and runs, sent
//! when they change), `/api/runs/RUN/view` (the run's diagram, drawn by
//! [`crate::diagram`] as for `mgrctl diagram`, its instances, faults and
//! check verdicts, sent when its events change) and `/api/runs/RUN/output`
//! (its instances' lines, as `logs -f --json` prints them). Controls are
//! POSTs that make one RPC each: `send`, `signal`, `fault`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mgr_proto::{FaultRequest, LogsRequest, MembersRequest, PsRequest, SignalKind};
use serde::Deserialize;
use serde_json::{Value, json};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::client::Client;
use crate::commands::check::{Declared, verdict_line, verdicts};
use crate::diagram::{self, Options};
use crate::render::{Renderer, Style};

/// How often a page's views are refreshed from the manager.
const STATE_EVERY: Duration = Duration::from_secs(1);
const VIEW_EVERY: Duration = Duration::from_millis(400);
const ENDED_EVERY: Duration = Duration::from_secs(2);

/// A run with no new event at its abstractions' interfaces for this long
/// is taken as quiesced, and its liveness properties are decided (as
/// `mgrctl check --quiesce 5` would); a new event undoes it.
const QUIET: Duration = Duration::from_secs(5);

/// Lines of each instance's output a page gets when it opens a run (the
/// rest is in `mgrctl logs`).
const OUTPUT_TAIL: u64 = 2000;

/// What every handler shares: the connection to the manager and the token.
#[derive(Clone)]
struct Web {
    client: Client,
    token: Arc<str>,
}

/// A fresh random token: 128 bits, as hex.
pub fn token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Binds `listen`, which must be a loopback address: the page controls
/// the manager, and only this machine may reach it.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    if !listen.ip().is_loopback() {
        anyhow::bail!(
            "mgrctl web listens on loopback only (127.0.0.1 or ::1), not {}: the page controls the manager; from another machine, use an ssh tunnel (ssh -L)",
            listen.ip()
        );
    }
    TcpListener::bind(listen).await.map_err(|err| {
        anyhow::anyhow!(
            "cannot listen on {listen}: {err} (choose another port with --listen 127.0.0.1:PORT, or :0 for any)"
        )
    })
}

/// The URL that opens the page at `listener`, with its token; `run`
/// opens that run's view.
pub fn url(listener: &TcpListener, token: &str, run: Option<&str>) -> anyhow::Result<String> {
    let address = listener.local_addr()?;
    let fragment = run.map(|r| format!("#run={r}")).unwrap_or_default();
    Ok(format!("http://{address}/?token={token}{fragment}"))
}

/// Serves the page and its API on `listener` until `shutdown` completes.
pub async fn serve(
    client: Client,
    listener: TcpListener,
    token: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let web = Web { client, token: token.into() };
    let app = Router::new()
        .route("/", get(page))
        .route("/api/state", get(state))
        .route("/api/runs/{run}/view", get(view))
        .route("/api/runs/{run}/output", get(output))
        .route("/api/send", post(send))
        .route("/api/signal", post(signal))
        .route("/api/fault", post(fault))
        .layer(middleware::from_fn_with_state(web.clone(), guard))
        .with_state(web);
    let listener = Bounded { listener, permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)) };
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

/// Connections served at once: a page holds three (its streams), a few
/// tabs a dozen; more wait in the kernel's backlog until one closes. Only
/// the token's holder can keep one: a connection must send its first
/// request within [`FIRST_REQUEST`], and one refused is closed.
const MAX_CONNECTIONS: usize = 128;

/// How long a new connection has to send the head of its first request.
const FIRST_REQUEST: Duration = Duration::from_secs(3);

/// The listener, with at most [`MAX_CONNECTIONS`] connections open.
struct Bounded {
    listener: TcpListener,
    permits: Arc<Semaphore>,
}

impl axum::serve::Listener for Bounded {
    type Io = Held;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Held, SocketAddr) {
        let permit = self.permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (stream, address) = axum::serve::Listener::accept(&mut self.listener).await;
        let deadline = Some(Box::pin(tokio::time::sleep(FIRST_REQUEST)));
        (Held { stream, deadline, seen: 0, _permit: permit }, address)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A connection holding its place among [`MAX_CONNECTIONS`] until dropped,
/// cut when the head of its first request has not come by its deadline.
struct Held {
    stream: TcpStream,
    /// Until the end of the first request's head (`\r\n\r\n`) is read.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// How many bytes of `\r\n\r\n` the bytes read so far end with.
    seen: usize,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Held {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let held = self.get_mut();
        if let Some(deadline) = &mut held.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut held.stream).poll_read(cx, buf);
        if held.deadline.is_some() {
            for &byte in &buf.filled()[before..] {
                held.seen = match (held.seen, byte) {
                    (0 | 2, b'\r') => held.seen + 1,
                    (1 | 3, b'\n') => held.seen + 1,
                    (_, b'\r') => 1,
                    _ => 0,
                };
                if held.seen == 4 {
                    held.deadline = None;
                    break;
                }
            }
        }
        read
    }
}

impl AsyncWrite for Held {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Refuses every request without the token (in the query, as the page
/// sends it) or addressed to a host name other than loopback's (a DNS
/// rebinding page would name its own), and keeps every answer out of
/// caches and referrers, where the token could leak.
async fn guard(State(web): State<Web>, request: Request, next: Next) -> Response {
    let host_ok = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).is_some_and(is_loopback_host);
    let given = request.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    let refused = !host_ok || !given.is_some_and(|g| same(g.as_bytes(), web.token.as_bytes()));
    let mut response = if !host_ok {
        (StatusCode::FORBIDDEN, "forbidden: mgrctl web answers only requests to 127.0.0.1, ::1 or localhost\n")
            .into_response()
    } else if !given.is_some_and(|g| same(g.as_bytes(), web.token.as_bytes())) {
        (StatusCode::FORBIDDEN, "forbidden: open the URL with the token that `mgrctl web` printed\n").into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if refused {
        // A stranger keeps no connection: only the token's holder may hold
        // one of the few there are.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Whether an HTTP Host header names loopback.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => {
            host.rsplit_once(':').map_or(host, |(name, port)| if port.parse::<u16>().is_ok() { name } else { host })
        }
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Compares in time independent of where the first difference lies.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The page: HTML with its style and script inlined, and a policy that
/// lets it load nothing and connect nowhere but here.
async fn page() -> Response {
    let html = include_str!("web/page.html")
        .replace("/*STYLE*/", include_str!("web/page.css"))
        .replace("/*SCRIPT*/", include_str!("web/page.js"));
    let mut response = Html(html).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; form-action 'none'; base-uri 'none'",
        ),
    );
    response
}

type Events = Sse<axum::response::sse::KeepAliveStream<ReceiverStream<Result<Event, Infallible>>>>;

/// A stream of server-sent events fed by `feed` until it returns or the
/// page goes away (then `feed` is dropped where it waits).
fn stream<F, Fut>(feed: F) -> Events
where
    F: FnOnce(Feed) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(8);
    let closed = tx.clone();
    let work = feed(Feed(tx));
    tokio::spawn(async move {
        tokio::select! {
            () = work => {}
            () = closed.closed() => {}
        }
    });
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default())
}

/// The sending end of a page's stream.
struct Feed(mpsc::Sender<Result<Event, Infallible>>);

impl Feed {
    /// Sends one event named `name`; false once the page has gone.
    async fn send(&self, name: &str, data: &Value) -> bool {
        self.0.send(Ok(Event::default().event(name).data(data.to_string()))).await.is_ok()
    }
}

/// Members and runs, sent whenever they change.
async fn state(State(web): State<Web>) -> Events {
    stream(move |feed| async move {
        let mut client = web.client;
        let mut last = Value::Null;
        loop {
            let now = snapshot(&mut client).await;
            if now != last {
                if !feed.send("state", &now).await {
                    return;
                }
                last = now;
            }
            tokio::time::sleep(STATE_EVERY).await;
        }
    })
}

async fn snapshot(client: &mut Client) -> Value {
    // This manager's view of the members, without asking each of them
    // every second; their instances are counted from the runs instead.
    let members = match client.members(MembersRequest { local: true }).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return json!({ "error": crate::commands::status(status).to_string() }),
    };
    let runs = match client.ps(PsRequest { run: String::new(), local: false }).await {
        Ok(reply) => reply.into_inner().runs,
        Err(status) => return json!({ "error": crate::commands::status(status).to_string() }),
    };
    let live_on = |member: &str| {
        runs.iter()
            .flat_map(|r| &r.instances)
            .filter(|i| i.member == member && crate::events::is_live(&i.state))
            .count()
    };
    let members: Vec<Value> = members
        .members
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "name": m.name, "address": m.address, "state": m.state,
                "instances": live_on(&m.name), "me": m.me,
            })
        })
        .collect();
    let runs: Vec<Value> = runs
        .iter()
        .map(|r| json!({ "name": r.name, "module": r.module, "created_ms": r.created_ms, "instances": instances(&r.instances) }))
        .collect();
    json!({ "members": members, "runs": runs })
}

/// The roles of a run's instances, each once, in the order they come.
fn roles_of(list: &[mgr_proto::Instance]) -> Vec<&str> {
    let mut roles: Vec<&str> = Vec::new();
    for role in list.iter().map(|i| i.role.as_str()).filter(|r| !r.is_empty()) {
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    roles
}

fn instances(list: &[mgr_proto::Instance]) -> Vec<Value> {
    list.iter()
        .map(|i| {
            json!({
                "name": i.name, "member": i.member, "address": i.address, "state": i.state,
                "restarts": i.starts.saturating_sub(1), "role": i.role, "module": i.module,
                "exit_code": i.exit_code, "signal": i.signal, "detail": i.detail,
            })
        })
        .collect()
}

/// A run's live view: its diagram, instances, faults and verdicts, sent
/// whenever its events, its instances' states or its faults change.
async fn view(State(web): State<Web>, Path(run): Path<String>) -> Events {
    stream(move |feed| async move {
        let mut client = web.client;
        let declared = Declared::fetch(&mut client).await;
        let mut last = Value::Null;
        let mut interface = usize::MAX;
        let mut moved = Instant::now();
        loop {
            let now = match look(&mut client, &run, &declared, &mut interface, &mut moved).await {
                Ok(now) => now,
                Err(err) => json!({ "error": format!("{err:#}") }),
            };
            // A run that has ended changes only when restarted: looked at
            // less often.
            let every = if now["ended"] == Value::Bool(true) { ENDED_EVERY } else { VIEW_EVERY };
            if now != last {
                if !feed.send("view", &now).await {
                    return;
                }
                last = now;
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// One look at a run. `interface` and `moved` carry, from look to look, how
/// many events it had at its abstractions' interfaces and since when.
async fn look(
    client: &mut Client,
    name: &str,
    declared: &Declared,
    interface: &mut usize,
    moved: &mut Instant,
) -> anyhow::Result<Value> {
    let mut run = crate::events::collect(client, name).await?;
    let count = run.all().filter(|e| !matches!(e.event.as_str(), "send" | "receive")).count();
    if count != *interface {
        *interface = count;
        *moved = Instant::now();
    }
    let ended = run.quiesced;
    let quiet = !ended && moved.elapsed() >= QUIET;
    run.quiesced |= quiet;
    let info = client
        .ps(PsRequest { run: name.to_owned(), local: false })
        .await
        .map_err(crate::commands::status)?
        .into_inner()
        .runs
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("unknown run '{name}'"))?;
    // A run with no live instance has no faults to tell (the manager keeps
    // them with its instances).
    let faults = if ended {
        None
    } else {
        client
            .fault(FaultRequest { run: name.to_owned(), ..Default::default() })
            .await
            .ok()
            .map(|r| r.into_inner().faults)
    };
    let members: BTreeMap<String, String> = info.instances.iter().map(|i| (i.name.clone(), i.member.clone())).collect();
    let svg = diagram::svg(&run, &Options { members });
    let (checked, notes) = match verdicts(&run, &[], &[], declared) {
        Ok((checked, notes)) => (checked, notes),
        Err(err) => (Vec::new(), vec![format!("{err:#}")]),
    };
    let verdicts: Vec<Value> =
        checked.iter().map(|c| serde_json::from_str(&verdict_line(c, true)).unwrap_or(Value::Null)).collect();
    let roles = roles_of(&info.instances);
    Ok(json!({
        "run": name, "module": info.module, "instances": instances(&info.instances), "roles": roles,
        "events": run.all().count(), "ended": ended, "quiet": quiet, "faults": faults,
        "missing": run.missing, "verdicts": verdicts, "notes": notes, "svg": svg,
    }))
}

/// The output of every instance of a run, as `logs -f --json` prints it:
/// the last [`OUTPUT_TAIL`] lines of each, then new ones as they come, in
/// batches of a chunk.
async fn output(State(web): State<Web>, Path(run): Path<String>) -> Events {
    stream(move |feed| async move {
        let mut client = web.client;
        let request = LogsRequest { target: run.clone(), since: 1, follow: true, tail: OUTPUT_TAIL, local: false };
        let mut chunks = match client.logs(request).await {
            Ok(stream) => stream.into_inner(),
            Err(status) => {
                let err = crate::suggest::target(&mut client, &run, status).await;
                feed.send("failed", &json!({ "error": format!("{err:#}") })).await;
                return;
            }
        };
        loop {
            match chunks.message().await {
                Ok(Some(chunk)) => {
                    let mut text = Vec::new();
                    let style = Style { json: true, colour: false, members: true };
                    if Renderer::new(&mut text, style, 0).chunk(&chunk).is_err() {
                        continue;
                    }
                    let lines: Vec<Value> =
                        text.split(|b| *b == b'\n').filter_map(|l| serde_json::from_slice(l).ok()).collect();
                    if !feed.send("lines", &Value::Array(lines)).await {
                        return;
                    }
                }
                Ok(None) => {
                    feed.send("end", &Value::Null).await;
                    return;
                }
                Err(status) => {
                    feed.send("failed", &json!({ "error": crate::commands::status(status).to_string() })).await;
                    return;
                }
            }
        }
    })
}

/// A control that failed: 400 and `{"error": …}`, with the message mgrctl
/// would print.
struct Failed(anyhow::Error);

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, Json(json!({ "error": format!("{:#}", self.0) }))).into_response()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    /// The run.
    run: String,
    /// One instance (`p1`), or the instances of a role (`role:NAME`);
    /// empty for every instance of the run.
    #[serde(default)]
    to: String,
    line: String,
}

/// Writes a line to an instance, to a role's instances or to the whole run.
async fn send(State(web): State<Web>, Json(body): Json<SendBody>) -> Result<Json<Value>, Failed> {
    let mut client = web.client;
    let targets: Vec<String> = match body.to.strip_prefix("role:") {
        Some(role) => {
            let info = client
                .ps(PsRequest { run: body.run.clone(), local: false })
                .await
                .map_err(|s| Failed(crate::commands::status(s)))?
                .into_inner();
            let names: Vec<String> = info
                .runs
                .iter()
                .flat_map(|r| &r.instances)
                .filter(|i| i.role == role)
                .map(|i| format!("{}/{}", body.run, i.name))
                .collect();
            if names.is_empty() {
                let all: Vec<mgr_proto::Instance> = info.runs.iter().flat_map(|r| r.instances.clone()).collect();
                let roles = roles_of(&all);
                let known = if roles.is_empty() { "none".to_owned() } else { roles.join(", ") };
                return Err(Failed(anyhow::anyhow!("run {} has no role '{role}' (its roles: {known})", body.run)));
            }
            names
        }
        None if body.to.is_empty() => vec![body.run.clone()],
        None => vec![format!("{}/{}", body.run, body.to)],
    };
    let mut delivered = Vec::new();
    for target in targets {
        let request = mgr_proto::SendRequest {
            target: target.clone(),
            line: body.line.clone().into_bytes().into(),
            local: false,
        };
        match client.send(request).await {
            Ok(reply) => delivered.extend(reply.into_inner().delivered),
            Err(status) => return Err(Failed(crate::suggest::target(&mut client, &target, status).await)),
        }
    }
    Ok(Json(json!({ "delivered": delivered })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalBody {
    /// RUN or RUN/p1, as mgrctl takes it.
    target: String,
    /// stop, kill, pause, resume or restart.
    kind: String,
}

/// Stops, kills, pauses, resumes or restarts a run or an instance.
async fn signal(State(web): State<Web>, Json(body): Json<SignalBody>) -> Result<Json<Value>, Failed> {
    let kind = match body.kind.as_str() {
        "stop" => SignalKind::Stop,
        "kill" => SignalKind::Kill,
        "pause" => SignalKind::Pause,
        "resume" => SignalKind::Resume,
        "restart" => SignalKind::Restart,
        other => {
            return Err(Failed(anyhow::anyhow!("unknown signal '{other}': stop, kill, pause, resume or restart")));
        }
    };
    let mut client = web.client;
    let request = mgr_proto::SignalRequest { target: body.target.clone(), kind: kind.into(), local: false };
    match client.signal(request).await {
        Ok(reply) => {
            let lines: Vec<String> =
                reply.into_inner().instances.iter().map(|i| format!("{}/{}: {}", i.run, i.name, i.state)).collect();
            Ok(Json(json!({ "instances": lines })))
        }
        Err(status) => Err(Failed(crate::suggest::target(&mut client, &body.target, status).await)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    run: String,
    loss: Option<f64>,
    dup: Option<f64>,
    delay: Option<String>,
    partition: Option<String>,
    #[serde(default)]
    heal: bool,
}

/// Changes a run's faults, as `mgrctl fault` does.
async fn fault(State(web): State<Web>, Json(body): Json<FaultBody>) -> Result<Json<Value>, Failed> {
    let mut client = web.client;
    let request = FaultRequest {
        run: body.run.clone(),
        loss: body.loss,
        dup: body.dup,
        delay: body.delay.filter(|d| !d.is_empty()),
        partition: body.partition.filter(|p| !p.is_empty()),
        heal: body.heal,
        local: false,
    };
    match client.fault(request).await {
        Ok(reply) => {
            let reply = reply.into_inner();
            Ok(Json(json!({ "faults": reply.faults, "told": reply.told })))
        }
        Err(status) => Err(Failed(crate::suggest::target(&mut client, &body.run, status).await)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_host_names_are_answered() {
        for host in ["127.0.0.1:6180", "localhost:6180", "LOCALHOST", "[::1]:6180", "127.3.4.5", "[::1]"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["evil.example:6180", "10.0.0.1:6180", "[fe80::1]:80", "localhost.evil.example", ""] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn tokens_are_fresh_and_compared_whole() {
        let (a, b) = (token(), token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(same(a.as_bytes(), a.as_bytes()));
        assert!(!same(a.as_bytes(), b.as_bytes()));
        assert!(!same(&a.as_bytes()[..31], a.as_bytes()));
    }
}
