//! `mgrctl check RUN`: checks a run against the properties its module
//! declares (or those named with `--property`), from the run's events
//! merged over the group (the `Events` RPC) and its crash records.

use std::io::Write;
use std::time::{Duration, Instant};

use mgr_modules::check::{self, Property, RunEvents, Verdict};

use crate::client::Client;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  mgrctl check r1\n  mgrctl check r1 --quiesce 2 --property RB4 --json\nExit status: 0 when every decided property holds, 1 on a violation.\nLiveness properties are decided once the run has quiesced: its instances ended, or no new event for --quiesce SECS."
)]
pub struct CheckArgs {
    /// The run.
    pub run: String,
    /// Wait until no new event (other than link sends and receives, such as
    /// heartbeats) came for this many seconds, or the run ended, then decide
    /// liveness properties as of then.
    #[arg(long, value_name = "SECS")]
    pub quiesce: Option<f64>,
    /// Check these properties instead of the module's own (book labels,
    /// comma-separated, e.g. RB4 to check a best-effort broadcast for
    /// agreement).
    #[arg(long, value_name = "ID,ID", value_delimiter = ',')]
    pub property: Vec<String>,
    /// One JSON object per property: id, verdict, detail.
    #[arg(long)]
    pub json: bool,
}

pub async fn check(mut client: Client, args: CheckArgs) -> anyhow::Result<u8> {
    let mut run = crate::events::collect(&mut client, &args.run).await?;
    if let Some(secs) = args.quiesce {
        if !secs.is_finite() || secs < 0.0 {
            anyhow::bail!("--quiesce must be a number of seconds, not {secs}");
        }
        run = quiesce(&mut client, &args.run, run, Duration::from_secs_f64(secs), None).await?;
    }
    let verdicts = verdicts(&run, &args.property)?;
    if run.bad_lines > 0 {
        crate::note!("mgrctl: {} line(s) of the events files are not events and were skipped", run.bad_lines);
    }
    for member in &run.missing {
        crate::note!("mgrctl: the events of member {member} are missing: it is dead or out of reach");
    }
    let mut violated = false;
    let mut out = crate::stdout::lock();
    for (property, verdict) in &verdicts {
        violated |= matches!(verdict, Verdict::Violated(_));
        writeln!(out, "{}", verdict_line(property, verdict, args.json))?;
    }
    out.flush()?;
    Ok(u8::from(violated))
}

/// Waits until no new event at the abstractions' interfaces came for
/// `quiet`, or the run ended, then returns its events (`run`, as fetched
/// last) marked quiesced. With a `limit`, gives up once that long has
/// passed: the events are returned as they are then, not quiesced, so that
/// liveness properties stay undecided.
pub(super) async fn quiesce(
    client: &mut Client,
    name: &str,
    mut run: RunEvents,
    quiet: Duration,
    limit: Option<Duration>,
) -> anyhow::Result<RunEvents> {
    // Link traffic does not count: failure detectors exchange heartbeats
    // for as long as they run.
    let interface = |run: &RunEvents| run.all().filter(|e| !matches!(e.event.as_str(), "send" | "receive")).count();
    let mut count = interface(&run);
    let began = Instant::now();
    let mut since = began;
    // Each look fetches every event of the run from the group: a few
    // looks per quiet period are enough, not one every 100 ms.
    let every = (quiet / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    while !run.quiesced && since.elapsed() < quiet {
        if limit.is_some_and(|limit| began.elapsed() >= limit) {
            return Ok(run);
        }
        tokio::time::sleep(every.min(quiet)).await;
        run = crate::events::collect(client, name).await?;
        let now = interface(&run);
        if now != count {
            count = now;
            since = Instant::now();
        }
    }
    run.quiesced = true;
    Ok(run)
}

/// Checks `run` against the properties named in `ids`, or, with none, the
/// properties of the modules it ran. A run of several roles is checked one
/// module at a time, each on its own processes; a property named by id is
/// checked on the processes of the modules that declare it, or on the whole
/// run when none does (a best-effort broadcast against RB4).
pub(super) fn verdicts(run: &RunEvents, ids: &[String]) -> anyhow::Result<Vec<(Property, Verdict)>> {
    let parts = run.by_module();
    let mut verdicts = Vec::new();
    if ids.is_empty() {
        for (module, part) in &parts {
            verdicts.extend(check::check(part, &check::properties_of(module)));
        }
        if verdicts.is_empty() {
            anyhow::bail!("module {} declares no property to check (name some with --property)", run.module);
        }
        return Ok(verdicts);
    }
    for id in ids {
        let property =
            check::property(id).ok_or_else(|| anyhow::anyhow!("unknown property '{id}' (see: mgrctl modules NAME)"))?;
        let declaring: Vec<&RunEvents> = parts
            .iter()
            .filter(|(module, _)| check::properties_of(module).iter().any(|p| p.id == property.id))
            .map(|(_, part)| part)
            .collect();
        if declaring.is_empty() || parts.len() == 1 {
            verdicts.extend(check::check(run, &[property]));
        } else {
            for part in declaring {
                verdicts.extend(check::check(part, &[property]));
            }
        }
    }
    Ok(verdicts)
}

/// One property's verdict as `check` prints it (or as a JSON object).
pub(super) fn verdict_line(property: &Property, verdict: &Verdict, json: bool) -> String {
    let (word, detail) = match verdict {
        Verdict::Holds => ("holds", String::new()),
        Verdict::Violated(why) => ("violated", why.clone()),
        Verdict::Undecided(why) => ("undecided", why.clone()),
    };
    if json {
        serde_json::json!({"property": property.id, "verdict": word, "detail": detail, "statement": property.statement})
            .to_string()
    } else if detail.is_empty() {
        format!("{:<6} {word:<9} {}", property.id, first_clause(property.statement))
    } else {
        format!("{:<6} {word:<9} {}: {detail}", property.id, first_clause(property.statement))
    }
}

/// "Reliable delivery: if …" → "Reliable delivery".
fn first_clause(statement: &str) -> &str {
    statement.split(':').next().unwrap_or(statement)
}
