//! `mgrctl check RUN`: checks a run against the properties its modules
//! declare (or those named with `--property`, on the roles named with
//! `--role`), each verdict naming the processes it covered, from the run's events
//! merged over the group (the `Events` RPC) and its crash records.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use mgr_modules::check::{self, Property, RunEvents, Verdict};
use mgr_proto::ModulesRequest;

use crate::client::Client;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  mgrctl check r1\n  mgrctl check r1 --quiesce 2 --property RB4 --json\n  mgrctl check demo --property BEB2 --role peer\nEach verdict names the processes it covered: BEB2   holds     No duplication [p1-p3].\nA property that applies to no process is an error, not a pass.\nExit status: 0 when every decided property holds, 1 on a violation.\nLiveness properties are decided once the run has quiesced: its instances ended, or no new event for --quiesce SECS."
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
    /// Check on the processes of these roles only (a run of several
    /// roles), e.g. a property their modules do not declare; several roles
    /// are checked together, as one group (a Python link and a Rust one
    /// sending to each other).
    #[arg(long, value_name = "ROLE,ROLE", value_delimiter = ',')]
    pub role: Vec<String>,
    /// One JSON object per property: id, verdict, detail, statement and the
    /// processes it covered.
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
    let declared = Declared::fetch(&mut client).await;
    let (verdicts, notes) = verdicts(&run, &args.property, &args.role, &declared)?;
    for note in &notes {
        crate::note!("mgrctl: {note}");
    }
    if run.bad_lines > 0 {
        crate::note!("mgrctl: {} line(s) of the events files are not events and were skipped", run.bad_lines);
    }
    for member in &run.missing {
        crate::note!("mgrctl: the events of member {member} are missing: it is dead or out of reach");
    }
    let mut violated = false;
    let mut out = crate::stdout::lock();
    for checked in &verdicts {
        violated |= matches!(checked.verdict, Verdict::Violated(_));
        writeln!(out, "{}", verdict_line(checked, args.json))?;
    }
    out.flush()?;
    Ok(u8::from(violated))
}

/// One property checked on some processes.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub property: Property,
    pub verdict: Verdict,
    /// The processes the verdict speaks of: a verdict says what it covered.
    pub processes: Vec<String>,
}

/// The properties each module declares: a built-in's own, and for a module
/// of a manifest those it names or those of the abstraction it implements
/// (from the manager's catalog).
#[derive(Debug, Default)]
pub(crate) struct Declared(BTreeMap<String, Vec<Property>>);

impl Declared {
    /// Asks the manager's catalog; without it (an old manager), only the
    /// built-ins are known.
    pub(crate) async fn fetch(client: &mut Client) -> Declared {
        let Ok(reply) = client.modules(ModulesRequest { name: String::new() }).await else {
            return Declared::default();
        };
        let mut declared = BTreeMap::new();
        for m in reply.into_inner().modules.into_iter().filter(|m| m.error.is_empty()) {
            let properties: Vec<Property> = if m.properties.is_empty() {
                check::properties_of(&m.implements)
            } else {
                m.properties.iter().filter_map(|id| check::property(id)).collect()
            };
            declared.insert(m.name, properties);
        }
        Declared(declared)
    }

    fn of(&self, module: &str) -> Vec<Property> {
        self.0.get(module).cloned().unwrap_or_else(|| check::properties_of(module))
    }
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
/// properties its modules declare (see [`Declared`]). A run of several
/// roles is checked one role at a time, each on its own processes (each
/// role is its own group). A property named by id is checked on every role
/// whose module declares it, or on the roles named in `roles` (together,
/// as one group, when there are several), or on the
/// whole run when it has one role (a best-effort broadcast against RB4); a
/// property that applies to no process is an error, never a pass. Returns
/// the verdicts and notes on the processes nothing was checked on.
pub(crate) fn verdicts(
    run: &RunEvents,
    ids: &[String],
    roles: &[String],
    declared: &Declared,
) -> anyhow::Result<(Vec<Checked>, Vec<String>)> {
    let parts = run.by_role();
    for role in roles {
        if !parts.iter().any(|(name, _, _)| name == role) {
            let known: Vec<&str> = parts.iter().map(|(name, _, _)| name.as_str()).filter(|n| !n.is_empty()).collect();
            if known.is_empty() {
                anyhow::bail!("run {} has no roles: --role {role} names none", run.run);
            }
            anyhow::bail!("run {} has no role '{role}' (its roles: {})", run.run, known.join(", "));
        }
    }
    let mut chosen: Vec<(String, String, RunEvents)> =
        parts.iter().filter(|(name, _, _)| roles.is_empty() || roles.contains(name)).cloned().collect();
    if roles.len() > 1 {
        // Roles named together are checked together, as one group: a
        // student's link beside the Rust one, sending to each other.
        let mine: Vec<String> = chosen.iter().flat_map(|(_, _, part)| part.processes.clone()).collect();
        let mut modules: Vec<String> = Vec::new();
        for (_, module, _) in &chosen {
            if !modules.contains(module) {
                modules.push(module.clone());
            }
        }
        chosen = vec![(roles.join("+"), modules.join("+"), run.only(&mine))];
    }
    let checked = |property: Property, part: &RunEvents| Checked {
        property,
        verdict: (property.check)(part),
        processes: part.processes.clone(),
    };
    let mut verdicts = Vec::new();
    let mut notes = Vec::new();
    if ids.is_empty() {
        for (role, module, part) in &chosen {
            // Roles checked together take the properties of all their modules.
            let mut properties: Vec<Property> = Vec::new();
            for module in module.split('+') {
                for property in declared.of(module) {
                    if !properties.iter().any(|p| p.id == property.id) {
                        properties.push(property);
                    }
                }
            }
            if properties.is_empty() {
                let whom = if role.is_empty() { String::new() } else { format!("role {role}, ") };
                notes.push(format!(
                    "nothing checked on {} ({whom}module {module}, which declares no property: say implements = \"…\" in its manifest, or name some with --property)",
                    processes(&part.processes)
                ));
            }
            verdicts.extend(properties.into_iter().map(|p| checked(p, part)));
        }
        if verdicts.is_empty() {
            anyhow::bail!("module {} declares no property to check (name some with --property)", run.module);
        }
        return Ok((verdicts, notes));
    }
    for id in ids {
        let property =
            check::property(id).ok_or_else(|| anyhow::anyhow!("unknown property '{id}' (see: mgrctl modules NAME)"))?;
        let declaring: Vec<&(String, String, RunEvents)> =
            chosen.iter().filter(|(_, module, _)| declared.of(module).iter().any(|p| p.id == property.id)).collect();
        if !roles.is_empty() || chosen.len() == 1 {
            // The roles the user named, or the one role there is.
            for (_, _, part) in &chosen {
                verdicts.push(checked(property, part));
            }
        } else if declaring.is_empty() {
            let modules: Vec<String> = chosen.iter().map(|(role, module, _)| format!("{role}: {module}")).collect();
            anyhow::bail!(
                "property {} applies to no process of run {}: none of its roles' modules declares it ({}); name the roles to check it on with --role",
                property.id,
                run.run,
                modules.join(", ")
            );
        } else {
            for (_, _, part) in declaring {
                verdicts.push(checked(property, part));
            }
        }
    }
    Ok((verdicts, notes))
}

/// Processes as a short list: `p1-p3,p5`.
pub(crate) fn processes(names: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut span: Option<(u64, u64)> = None;
    let flush = |span: &mut Option<(u64, u64)>, out: &mut Vec<String>| {
        if let Some((a, b)) = span.take() {
            out.push(if a == b { format!("p{a}") } else { format!("p{a}-p{b}") });
        }
    };
    for name in names {
        match name.strip_prefix('p').and_then(|n| n.parse::<u64>().ok()) {
            Some(n) => match span {
                Some((a, b)) if n == b + 1 => span = Some((a, n)),
                _ => {
                    flush(&mut span, &mut out);
                    span = Some((n, n));
                }
            },
            None => {
                flush(&mut span, &mut out);
                out.push(name.clone());
            }
        }
    }
    flush(&mut span, &mut out);
    out.join(",")
}

/// One property's verdict as `check` prints it (or as a JSON object),
/// with the processes it covered.
pub(crate) fn verdict_line(checked: &Checked, json: bool) -> String {
    let Checked { property, verdict, processes: covered } = checked;
    let (word, detail) = match verdict {
        Verdict::Holds => ("holds", String::new()),
        Verdict::Violated(why) => ("violated", why.clone()),
        Verdict::Undecided(why) => ("undecided", why.clone()),
    };
    let clause = first_clause(property.statement);
    if json {
        serde_json::json!({
            "property": property.id,
            "verdict": word,
            "detail": detail,
            "statement": property.statement,
            "processes": covered,
        })
        .to_string()
    } else if detail.is_empty() {
        format!("{:<6} {word:<9} {clause} [{}]", property.id, processes(covered))
    } else {
        format!("{:<6} {word:<9} {clause} [{}]: {detail}", property.id, processes(covered))
    }
}

/// "Reliable delivery: if …" → "Reliable delivery".
fn first_clause(statement: &str) -> &str {
    statement.split(':').next().unwrap_or(statement)
}
