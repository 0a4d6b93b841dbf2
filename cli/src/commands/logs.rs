//! `mgrctl logs TARGET`: mirrors the `Logs` RPC, one stream per instance,
//! merged by the lines' stored times ([`crate::merge`]). Also the live
//! output loop ([`stream`]) that `launch`, `exec`, `attach` and `up` share,
//! which prints chunks as they come.

use std::io::BufWriter;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mgr_proto::{Instance, LogsRequest, OutputChunk, PsRequest, record};
use regex::bytes::Regex;
use tokio::sync::{Notify, mpsc};
use tonic::Status;

use crate::client::Client;
use crate::merge::{self, Filter, Source};
use crate::render::{Renderer, Style};
use crate::stdout::{self, Closed, Out};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  mgrctl logs r1                             every line of r1, its instances merged in time order
  mgrctl logs r1/p2 -f                       p2's lines, then new ones as they come
  mgrctl logs r1 --since 30s --timestamps    the last 30 seconds, each line with its time
  mgrctl logs r1 --since 10:42 --grep 'deliver|decide'
  mgrctl logs r1 --json | jq -r .text

Lines of several instances are merged by the time the manager stored each
(--timestamps shows it, in local time); with -f, new lines show at most
0.1 s after they were stored. Ctrl-C or a closed pipe (`| head`) ends the
viewing, never the run.")]
pub struct LogsArgs {
    /// RUN for every instance of a run, RUN/p1 for one.
    pub target: String,
    /// Keep following new lines until the instances end.
    #[arg(short, long)]
    pub follow: bool,
    /// Start at a line number (per instance, from 1; --json shows each
    /// line's as "seq"), a time ago (30s, 5m, 2h) or a local time today
    /// (10:42, 10:42:30).
    #[arg(long, value_name = "SEQ|AGO|HH:MM", default_value = "1", value_parser = parse_since)]
    pub since: Since,
    /// Start at the last N lines of each instance instead.
    #[arg(long, value_name = "N", conflicts_with = "since")]
    pub tail: Option<u64>,
    /// Show the time each line was stored (local time) before it.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only the lines whose text matches this regular expression (as
    /// grep -E; start it with (?i) to ignore case).
    #[arg(long, value_name = "PATTERN", value_parser = parse_grep)]
    pub grep: Option<Regex>,
    /// One JSON object per line: run, instance, member, stream, seq, time, text.
    #[arg(long)]
    pub json: bool,
}

/// Where `--since` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// At this line number of each instance.
    Seq(u64),
    /// At the first line stored at or after this time (Unix ms).
    Time(u64),
}

/// `120` (a line number), `30s`/`5m`/`1h30m` (that long ago) or `10:42`,
/// `10:42:30` (a local time today).
pub fn parse_since(text: &str) -> Result<Since, String> {
    since_at(text, &jiff::ZonedDateTime::now())
}

fn since_at(text: &str, now: &jiff::ZonedDateTime) -> Result<Since, String> {
    let bad = || {
        format!("'{text}' is neither a line number (120), a time ago (30s, 5m, 2h) nor a time today (10:42, 10:42:30)")
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map(Since::Seq).map_err(|_| bad());
    }
    let at = if text.contains(':') {
        let time: jiff::civil::Time = text.parse().map_err(|_| bad())?;
        now.date().to_datetime(time).to_zoned_datetime(now.time_zone().clone()).map_err(|_| bad())?.timestamp()
    } else {
        let ago = humantime::parse_duration(text).map_err(|_| bad())?;
        let ago = jiff::SignedDuration::try_from(ago).map_err(|_| bad())?;
        now.timestamp().checked_sub(ago).map_err(|_| bad())?
    };
    Ok(Since::Time(at.as_millisecond().max(0) as u64))
}

fn parse_grep(text: &str) -> Result<Regex, String> {
    Regex::new(text).map_err(|err| err.to_string())
}

/// How long a line waits for a quiet instance while following: another
/// instance might still send an older one.
const PATIENCE: Duration = Duration::from_millis(100);

pub async fn logs(mut client: Client, args: LogsArgs) -> anyhow::Result<u8> {
    let (run, wanted) = match args.target.split_once('/') {
        Some((run, instance)) => (run.to_owned(), Some(instance.to_owned())),
        None => (args.target.clone(), None),
    };
    let reply = match client.ps(PsRequest { run: run.clone(), local: false }).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return Err(crate::suggest::target(&mut client, &args.target, status).await),
    };
    let mut instances: Vec<Instance> = reply.runs.into_iter().flat_map(|r| r.instances).collect();
    if let Some(name) = &wanted {
        instances.retain(|i| i.name == *name);
        if instances.is_empty() {
            let unknown = crate::suggest::unknown(&mut client, &run, Some(name)).await;
            anyhow::bail!(unknown.unwrap_or_else(|| format!("run '{run}' has no instance '{name}'")));
        }
    }
    let (width, members) = layout(&mut client, instances.iter().map(|i| i.name.as_str())).await?;
    let (since, filter) = match args.since {
        Since::Seq(seq) => (seq, Filter { since_ms: 0, grep: args.grep }),
        Since::Time(ms) => (1, Filter { since_ms: ms, grep: args.grep }),
    };
    let notify = Arc::new(Notify::new());
    let feeds = instances.iter().map(|i| feed(&client, &run, i, (since, args.tail), args.follow, &notify)).collect();
    // Following a whole run that can change size: instances a scale adds
    // join the merge, from their first line.
    let (new_tx, new_feeds) = mpsc::channel::<Feed>(16);
    // A run of built-in modules whose processes are fixed (the book's)
    // never changes size: no need to look.
    let fixed = |module: &str| {
        !mgr_modules::apps::DYNAMIC.contains(&module) && mgr_modules::catalog::all().any(|m| m.name == module)
    };
    if args.follow && wanted.is_none() && !instances.iter().all(|i| fixed(&i.module)) {
        let mut known: std::collections::BTreeSet<String> = instances.iter().map(|i| i.name.clone()).collect();
        let (mut client, run, notify) = (client.clone(), run.clone(), notify.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(NEW_INSTANCES_EVERY).await;
                if new_tx.is_closed() {
                    return;
                }
                let Ok(reply) = client.ps(PsRequest { run: run.clone(), local: false }).await else { continue };
                for i in reply.into_inner().runs.iter().flat_map(|r| &r.instances) {
                    if !known.insert(i.name.clone()) {
                        continue;
                    }
                    if new_tx.send(feed(&client, &run, i, (1, None), true, &notify)).await.is_err() {
                        return;
                    }
                    notify.notify_one();
                }
            }
        });
    }
    let clock = args.timestamps.then(Clock::new);
    let style = Style::detect(args.json, members);
    merge_feeds(feeds, new_feeds, &filter, args.follow, notify, style, width, clock).await?;
    Ok(0)
}

/// The feed of one instance, from line `since` (or its last `tail` lines).
fn feed(
    client: &Client,
    run: &str,
    i: &Instance,
    (since, tail): (u64, Option<u64>),
    follow: bool,
    notify: &Arc<Notify>,
) -> Feed {
    let request =
        LogsRequest { target: format!("{run}/{}", i.name), since, follow, tail: tail.unwrap_or(0), local: false };
    // Caught up once it has sent what the log held when ps answered: from
    // then on, when it sends nothing it may just be quiet.
    let first = match tail {
        Some(tail) => i.last_seq.saturating_sub(tail) + 1,
        None => since.max(1),
    };
    Feed {
        lines: open(client.clone(), request, notify.clone()),
        source: Source::default(),
        ended: false,
        until: i.last_seq,
        caught_up: i.last_seq < first,
        arrived: Instant::now(),
        slot: None,
    }
}

/// How often `logs -f RUN` looks for instances a scale added.
const NEW_INSTANCES_EVERY: Duration = Duration::from_millis(500);

/// One instance's stream in the merge.
struct Feed {
    lines: mpsc::Receiver<Result<OutputChunk, Status>>,
    source: Source,
    ended: bool,
    /// The last line number its log had when the merge began.
    until: u64,
    /// It has sent every line up to `until`.
    caught_up: bool,
    /// When the chunk it holds came.
    arrived: Instant,
    /// Its prefix in the renderer.
    slot: Option<usize>,
}

impl Feed {
    fn take(&mut self, chunk: OutputChunk) {
        let numbered = chunk.records.split(|b| *b == b'\n').filter(|r| r.first().is_some_and(|t| *t != record::TIME));
        let last = chunk.first_seq + numbered.count() as u64;
        self.caught_up |= last > self.until;
        self.arrived = Instant::now();
        self.source.push(chunk);
    }

    /// Waiting for a chunk: it holds no line and has not ended.
    fn starved(&self) -> bool {
        self.source.chunk().is_none() && !self.ended
    }
}

/// Streams the instance's chunks into a channel of one: the merge reads
/// each instance at its own pace, and an instance ahead of the others
/// waits in the manager's log file (and the HTTP/2 window), not in memory.
/// Ends when the stream ends, on the stream's error (sent on), or as soon
/// as the merge is gone.
fn open(mut client: Client, request: LogsRequest, notify: Arc<Notify>) -> mpsc::Receiver<Result<OutputChunk, Status>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let result = async {
            let mut stream = client.logs(request).await?.into_inner();
            loop {
                let chunk = tokio::select! {
                    chunk = stream.message() => chunk?,
                    _ = tx.closed() => return Ok(()),
                };
                let Some(chunk) = chunk else { return Ok(()) };
                if tx.send(Ok(chunk)).await.is_err() {
                    return Ok(());
                }
                notify.notify_one();
            }
        }
        .await;
        if let Err(status) = result {
            let _ = tx.send(Err(status)).await;
        }
        drop(tx);
        notify.notify_one();
    });
    rx
}

/// The k-way merge: prints the oldest line at the head of any feed, until
/// every feed has ended. A feed that holds no line is waited for, except,
/// when following, a feed that is caught up (it may stay quiet for hours):
/// then a line waits at most [`PATIENCE`] for it.
#[allow(clippy::too_many_arguments)]
async fn merge_feeds(
    mut feeds: Vec<Feed>,
    mut new_feeds: mpsc::Receiver<Feed>,
    filter: &Filter,
    follow: bool,
    notify: Arc<Notify>,
    style: Style,
    width: usize,
    mut clock: Option<Clock>,
) -> anyhow::Result<()> {
    let out = BufWriter::with_capacity(256 * 1024, Out::new(std::io::stdout().lock()));
    let mut renderer = Renderer::new(out, style, width);
    let gone = stdout::gone();
    tokio::pin!(gone);
    loop {
        while let Ok(feed) = new_feeds.try_recv() {
            feeds.push(feed);
        }
        for feed in &mut feeds {
            while !feed.ended && feed.source.head(filter).is_none() {
                match feed.lines.try_recv() {
                    Ok(Ok(chunk)) => feed.take(chunk),
                    Ok(Err(status)) => return Err(super::status(status)),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => feed.ended = true,
                }
            }
        }
        let starved: Vec<&Feed> = feeds.iter().filter(|f| f.starved()).collect();
        let exact = !follow || starved.iter().any(|f| !f.caught_up);
        let any_starved = !starved.is_empty();
        let mut due = None;
        match merge::next(feeds.iter_mut().map(|f| f.source.head(filter))) {
            None if !any_starved => break,
            Some((i, bound)) if !any_starved || (!exact && feeds[i].arrived + PATIENCE <= Instant::now()) => {
                let feed = &mut feeds[i];
                let slot = match feed.slot {
                    Some(slot) => slot,
                    None => *feed.slot.insert(renderer.slot(feed.source.chunk().expect("a chunk at the head"))),
                };
                while let Some(time) = feed.source.head(filter).filter(|t| merge::before(*t, i, bound)) {
                    let stamp = clock.as_mut().map(|c| c.stamp(time).to_owned());
                    feed.source.take(|_, line| renderer.line(slot, &line, stamp.as_deref())).transpose()?;
                }
                continue;
            }
            Some((i, _)) if !exact => due = Some(feeds[i].arrived + PATIENCE),
            _ => {}
        }
        renderer.flush()?;
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {}
            _ = &mut gone => return Err(Closed.into()),
        }
    }
    renderer.flush()?;
    Ok(())
}

/// Local wall-clock times of lines, for `--timestamps`: `10:42:07.123`
/// today, with the date before it on other days.
struct Clock {
    zone: jiff::tz::TimeZone,
    today: jiff::civil::Date,
    last: Option<(u64, String)>,
}

impl Clock {
    fn new() -> Clock {
        let now = jiff::ZonedDateTime::now();
        Clock { zone: now.time_zone().clone(), today: now.date(), last: None }
    }

    fn stamp(&mut self, ms: u64) -> &str {
        if self.last.as_ref().is_none_or(|(at, _)| *at != ms) {
            let text = match jiff::Timestamp::from_millisecond(ms as i64) {
                Ok(at) => {
                    let at = at.to_zoned_datetime(self.zone.clone());
                    let format = if at.date() == self.today { "%H:%M:%S%.3f" } else { "%Y-%m-%d %H:%M:%S%.3f" };
                    at.strftime(format).to_string()
                }
                Err(_) => "?".to_owned(),
            };
            self.last = Some((ms, text));
        }
        self.last.as_ref().map_or("", |(_, text)| text.as_str())
    }
}

/// Prefix width for these instance names, and whether to show members
/// (only once the group has several).
pub async fn layout<'a>(client: &mut Client, names: impl Iterator<Item = &'a str>) -> anyhow::Result<(usize, bool)> {
    let members =
        client.members(mgr_proto::MembersRequest::default()).await.map_err(super::status)?.into_inner().members;
    Ok(layout_for(members.iter().map(|m| m.name.as_str()), names))
}

/// [`layout`] when the member names are known already.
pub fn layout_for<'m, 'n>(
    members: impl Iterator<Item = &'m str>,
    names: impl Iterator<Item = &'n str>,
) -> (usize, bool) {
    let members: Vec<&str> = members.collect();
    let several = members.len() > 1;
    let widest_member = members.iter().map(|m| m.len() + 1).max().unwrap_or(0);
    let widest = names.map(str::len).max().unwrap_or(0) + if several { widest_member } else { 0 };
    (widest, several)
}

/// Whether a run is over but for instances lost with their member: none
/// of it live, and some lost or out of reach.
async fn run_is_over(client: &mut Client, run: &str) -> bool {
    let request = mgr_proto::PsRequest { run: run.to_owned(), local: false };
    let Ok(reply) = client.ps(request).await else { return false };
    let instances: Vec<&mgr_proto::Instance> = reply.get_ref().runs.iter().flat_map(|r| &r.instances).collect();
    let lost = |i: &&mgr_proto::Instance| {
        matches!(i.state.as_str(), "lost" | "unreachable") && i.detail != "manager restarted"
    };
    instances.iter().any(lost) && instances.iter().all(|i| lost(i) || !crate::events::is_live(&i.state))
}

/// What the live stream does once stdout's reader has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnClose {
    /// Stop streaming at once.
    Stop,
    /// Read on, printing nothing, until the stream ends: for a command
    /// that still has work to do when its run ends (`up`'s checks,
    /// `launch --timeout`'s stop).
    Drain,
}

/// How the live stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streamed {
    /// Every instance ended.
    Ended,
    /// Stdout's reader went away.
    Closed,
}

/// Prints the stream of a `Logs` request as it comes, until it ends or,
/// by `on_close`, until stdout's reader has gone. With `run`, also once
/// that run is over: no instance of it live, and some lost with their
/// member. (The manager's stream waits for a lost member to come back and
/// goes on where it left; `launch` and `up` wait for that only while
/// something else of their run still runs.)
pub async fn stream(
    client: &mut Client,
    request: LogsRequest,
    style: Style,
    width: usize,
    on_close: OnClose,
    run: Option<&str>,
) -> anyhow::Result<Streamed> {
    let mut chunks = client.logs(request).await.map_err(super::status)?.into_inner();
    let out = BufWriter::with_capacity(256 * 1024, Out::new(std::io::stdout().lock()));
    let mut renderer = Renderer::new(out, style, width);
    let gone = stdout::gone();
    tokio::pin!(gone);
    let mut closed = false;
    let mut looks = tokio::time::interval(std::time::Duration::from_secs(1));
    looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut over_since_last_look = false;
    loop {
        let chunk = tokio::select! {
            chunk = chunks.message() => chunk.map_err(super::status)?,
            _ = looks.tick(), if run.is_some() => {
                // Twice in a row, so that the last lines of instances that
                // just ended still arrive.
                let over = run_is_over(client, run.unwrap_or_default()).await;
                if over && over_since_last_look {
                    break;
                }
                over_since_last_look = over;
                continue;
            }
            _ = &mut gone, if !closed => {
                closed = true;
                if on_close == OnClose::Stop {
                    return Ok(Streamed::Closed);
                }
                continue;
            }
        };
        let Some(chunk) = chunk else { break };
        if closed {
            continue;
        }
        match renderer.chunk(&chunk).and_then(|_| renderer.flush()) {
            Ok(()) => {}
            Err(err) if stdout::closed_io(&err) => {
                closed = true;
                if on_close == OnClose::Stop {
                    return Ok(Streamed::Closed);
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(if closed { Streamed::Closed } else { Streamed::Ended })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_line_number_a_time_ago_or_a_time_today() {
        let now: jiff::ZonedDateTime = "2024-05-03T10:45:00+02:00[+02:00]".parse().unwrap();
        let ms = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64;
        assert_eq!(since_at("120", &now), Ok(Since::Seq(120)));
        assert_eq!(since_at("30s", &now), Ok(Since::Time(ms("2024-05-03T08:44:30Z"))));
        assert_eq!(since_at("1h 30m", &now), Ok(Since::Time(ms("2024-05-03T07:15:00Z"))));
        assert_eq!(since_at("10:42", &now), Ok(Since::Time(ms("2024-05-03T08:42:00Z"))));
        assert_eq!(since_at("10:42:30", &now), Ok(Since::Time(ms("2024-05-03T08:42:30Z"))));
        for bad in ["", "yesterday", "25:00", "-5", "10:42pm"] {
            assert!(since_at(bad, &now).unwrap_err().contains("neither a line number"), "{bad}");
        }
    }
}
