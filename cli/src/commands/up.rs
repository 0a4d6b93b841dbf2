//! `mgrctl up FILE`: runs a scenario file (see [`crate::scenario`]) as one
//! run of several roles (the `Launch` RPC with `roles`), streams its output
//! as `launch` does, carries out its timeline (`Send`, `Signal`, `Fault`),
//! ends it when its end condition is met (`Ps`, then `Signal`), then checks
//! it (`Events`, and `Logs` for the expected lines), prints a summary and
//! exits 0 only when every check passed. `mgrctl down RUN` stops a run.
//!
//! This file composes RPCs the other verbs mirror; it must not parse
//! scenario files itself (that is [`crate::scenario`]'s) nor render output
//! differently from `launch`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use mgr_modules::check::{Verdict, is_crash_record};
use mgr_proto::{
    FaultRequest, LaunchRequest, LogsRequest, PsRequest, Role, Run, SendRequest, SignalKind, SignalRequest,
};
use tonic::Code;

use super::check::Declared;
use super::logs::{OnClose, layout_for, stream};
use crate::client::Client;
use crate::render::Style;
use crate::scenario::{self, Action, End, Scenario, Step};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples (see examples/README.md):
  mgrctl up examples/multicast.toml --local     on this machine, with an embedded manager
  mgrctl up examples/multicast.toml             on the group of the local mgr daemon
  mgrctl up examples/multicast.toml --scale peer=8 --diagram run.html
  mgrctl up examples/ack.toml --local --web     and watch it live in the browser

While it streams, type `@p2 text` to write `text` to p2's stdin, `@all text` for every instance.
Ctrl-C stops the run (the checks still run on what it did); a second Ctrl-C kills it.
A closed output (`| head`) only stops the printing: the scenario runs to its end, and its
summary still goes to stderr.
Exit status: 0 when the end condition was met and every check passed, 1 otherwise, 130 on Ctrl-C.")]
pub struct UpArgs {
    /// The scenario file (TOML: roles, timeline, end, checks).
    pub file: PathBuf,
    /// Another count for a role, e.g. --scale peer=8 (may be repeated).
    #[arg(long, value_name = "ROLE=N", value_parser = parse_scale)]
    pub scale: Vec<(String, u32)>,
    /// Name of the run [default: the file's `name` (with -2, -3… when
    /// taken), else r1, r2, …].
    #[arg(long)]
    pub name: Option<String>,
    /// One JSON object per output line, as `launch --json`.
    #[arg(long)]
    pub json: bool,
    /// At the end, write the run's space-time diagram to FILE (.svg, or
    /// .html for a page).
    #[arg(long, value_name = "FILE")]
    pub diagram: Option<PathBuf>,
    /// Watch the run live in the browser, as `mgrctl web --open --run RUN`
    /// (on 127.0.0.1:6180, or any free port when that is taken): the page
    /// stays after the summary, until Ctrl-C.
    #[arg(long)]
    pub web: bool,
}

fn parse_scale(text: &str) -> Result<(String, u32), String> {
    let (role, count) = text.split_once('=').ok_or_else(|| format!("'{text}' is not ROLE=N"))?;
    let count = count.parse().map_err(|_| format!("'{count}' is not a count of instances"))?;
    Ok((role.to_owned(), count))
}

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// The run (as printed by `mgrctl up`).
    pub run: String,
}

/// How many other names `up` tries when the scenario's name is taken.
const NAME_ATTEMPTS: u32 = 50;

/// How often the end condition looks at the run.
const END_POLL: Duration = Duration::from_millis(200);

pub async fn up(mut client: Client, args: UpArgs) -> anyhow::Result<u8> {
    // Refused before the run, not after it.
    if let Some(path) = &args.diagram {
        super::diagram::format_of(path)?;
    }
    let file = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {file}"))?;
    let mut scenario = scenario::parse(&file, &text, &args.scale)?;
    let folder = std::fs::canonicalize(&args.file)
        .ok()
        .and_then(|path| path.parent().map(std::path::Path::to_path_buf))
        .with_context(|| format!("cannot find the folder of {file}"))?;
    scenario.expand_dir(&folder);
    let (run, group) = launch(&mut client, &scenario, args.name.as_deref()).await?;
    let roles = roles_of(&run);
    let summary: Vec<String> =
        roles.iter().map(|(role, names)| format!("{role} × {} ({})", names.len(), names.join(","))).collect();
    crate::note!("run {}: {}", run.name, summary.join(", "));
    let web = match args.web {
        true => Some(live_view(client.clone(), &run.name).await?),
        false => None,
    };

    let began = Instant::now();
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stdin_task = tokio::spawn(super::launch::route_stdin(client.clone(), run.name.clone()));
    let signal_task =
        tokio::spawn(super::launch::stop_on_ctrl_c(client.clone(), run.name.clone(), interrupted.clone()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let timeline_task = tokio::spawn(timeline(
        client.clone(),
        run.name.clone(),
        scenario.timeline.clone(),
        roles.clone(),
        began,
        done.clone(),
    ));
    let ending = std::sync::Arc::new(std::sync::Mutex::new(None));
    let end_task =
        tokio::spawn(end(client.clone(), run.name.clone(), scenario.end.clone(), roles.clone(), began, ending.clone()));

    let (width, several) = layout_for(group.iter().map(String::as_str), run.instances.iter().map(|i| i.name.as_str()));
    let request = LogsRequest { target: run.name.clone(), since: 1, follow: true, tail: 0, local: false };
    // A closed output does not cut the scenario short: it runs to its end
    // condition, and its checks and summary (on stderr) are as they would be.
    let streamed =
        stream(&mut client, request, Style::detect(args.json, several), width, OnClose::Drain, Some(&run.name)).await;
    stdin_task.abort();
    signal_task.abort();
    timeline_task.abort();
    let took = began.elapsed();
    end_task.abort();
    // The run ended: by the end condition (which said so before stopping
    // it), or by itself before the condition was met.
    let ending = ending.lock().expect("the end task does not panic").take().unwrap_or(Ending::Ended);
    streamed?;

    let mut report = Report::default();
    match &ending {
        Ending::Reached(why) => report.pass(format!("end: {why} ({:.1} s)", took.as_secs_f64())),
        Ending::Ended => report.pass(format!("end: every instance ended by itself ({:.1} s)", took.as_secs_f64())),
        Ending::TimedOut(why) => report.fail(format!("end: {why}")),
    }
    if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        report.fail("end: interrupted (Ctrl-C)".to_owned());
    }
    let skipped = scenario.timeline.len() - done.load(std::sync::atomic::Ordering::SeqCst);
    if skipped > 0 {
        report.note(format!("timeline: the run ended before its last {skipped} step(s)"));
    }
    // From here on a failing call fails a line of the summary, not the
    // summary: what could be checked is still said.
    let ended = client.ps(PsRequest { run: run.name.clone(), local: false }).await.map(|r| r.into_inner().runs);
    let instances: Vec<mgr_proto::Instance> = ended.unwrap_or_default().into_iter().flat_map(|r| r.instances).collect();
    let restarts: u32 = instances.iter().map(|i| i.starts.saturating_sub(1)).sum();
    let lost = instances.iter().filter(|i| i.state == "lost").count();
    match crate::events::collect(&mut client, &run.name).await {
        Ok(mut events) => {
            events.quiesced = true;
            let crashes = events.all().filter(|e| is_crash_record(e)).count();
            let lost = if lost > 0 { format!(", {lost} lost with their member") } else { String::new() };
            let summary = if instances.is_empty() { summary.join(", ") } else { roles_summary(&instances) };
            report.note(format!("instances: {summary}; {crashes} crash(es) recorded, {restarts} restart(s){lost}"));
            for member in &events.missing {
                report.fail(format!("events: member {member}'s are missing (dead or out of reach)"));
            }
            if let Some(ids) = &scenario.check.properties {
                let declared = Declared::fetch(&mut client).await;
                check_properties(&mut report, &events, ids, &declared);
            }
        }
        Err(err) => report.fail(format!("events: {err:#}")),
    }
    for (role, line) in &scenario.check.expect {
        let names = roles.get(role).cloned().unwrap_or_default();
        match find_line(&mut client, &run.name, &names, line).await {
            Ok(Some(instance)) => report.pass(format!("expect {role} \"{line}\": printed by {instance}")),
            Ok(None) => report.fail(format!("expect {role} \"{line}\": printed by no instance of {role}")),
            Err(err) => report.fail(format!("expect {role} \"{line}\": cannot read the output: {err:#}")),
        }
    }
    if let Some(path) = &args.diagram {
        match super::diagram::draw(&mut client, &run.name, Some(path)).await {
            Ok(_) => report.note(format!("diagram: {}", path.display())),
            Err(err) => report.fail(format!("diagram: {err:#}")),
        }
    }
    report.print(&run.name, &file);
    // Ctrl-C during the run meant: stop and leave.
    if let Some((url, server)) = web.filter(|_| !interrupted.load(std::sync::atomic::Ordering::SeqCst)) {
        crate::note!("run {}: the live view stays at {url} until Ctrl-C", run.name);
        super::web::interrupted().await;
        server.abort();
    }
    if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(130);
    }
    Ok(u8::from(!report.passed()))
}

/// Serves the live view of `run` (`--web`) and asks the desktop to open
/// it; returns its URL and the server's task.
async fn live_view(client: Client, run: &str) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let default = super::web::DEFAULT_LISTEN.parse().expect("a valid address");
    let listener = match crate::web::bind(default).await {
        Ok(listener) => listener,
        // Another page is served there: any free port will do.
        Err(_) => crate::web::bind((std::net::Ipv4Addr::LOCALHOST, 0).into()).await?,
    };
    let token = crate::web::token();
    let url = crate::web::url(&listener, &token, Some(run))?;
    crate::note!("run {run}: live view at {url}");
    super::web::open(&url);
    let server = tokio::spawn(async move {
        if let Err(err) = crate::web::serve(client, listener, token, std::future::pending()).await {
            crate::note!("mgrctl: the live view stopped: {err:#}");
        }
    });
    Ok((url, server))
}

/// The verdicts of the scenario's properties, into the summary. An
/// undecided property fails only where a member's events are missing (it
/// could have been violated there); otherwise it is said, not counted.
fn check_properties(report: &mut Report, events: &mgr_modules::check::RunEvents, ids: &[String], declared: &Declared) {
    let (verdicts, notes) = match super::check::verdicts(events, ids, &[], declared) {
        Ok(verdicts) => verdicts,
        Err(err) => return report.fail(format!("check: {err}")),
    };
    for note in notes {
        report.note(format!("check: {note}"));
    }
    for checked in verdicts {
        let line = super::check::verdict_line(&checked, false);
        match checked.verdict {
            Verdict::Holds => report.pass(line),
            Verdict::Violated(_) => report.fail(line),
            Verdict::Undecided(_) if !events.missing.is_empty() => report.fail(line),
            Verdict::Undecided(_) => report.note(line),
        }
    }
}

pub async fn down(mut client: Client, args: DownArgs) -> anyhow::Result<u8> {
    let request = SignalRequest { target: args.run.clone(), kind: SignalKind::Stop.into(), local: false };
    let reply = match client.signal(request).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return Err(crate::suggest::target(&mut client, &args.run, status).await),
    };
    let mut out = crate::stdout::lock();
    writeln!(out, "run {}: {} instance(s) stopped", args.run, reply.instances.len())?;
    out.flush()?;
    Ok(0)
}

/// Launches the scenario's roles, under its name (or the next free
/// `name-2`, `name-3`…) unless `--name` says otherwise.
async fn launch(client: &mut Client, scenario: &Scenario, wanted: Option<&str>) -> anyhow::Result<(Run, Vec<String>)> {
    let roles: Vec<Role> = scenario
        .roles
        .iter()
        .map(|r| {
            let (restart, max_restarts, backoff) = match r.restart {
                Some((max, backoff)) => ("on-failure", max, backoff.as_millis().min(u32::MAX as u128) as u32),
                None => ("no", 0, 0),
            };
            Role {
                name: r.name.clone(),
                module: r.module.clone().unwrap_or_default(),
                command: r.command.clone(),
                count: r.count,
                args: r.args.clone(),
                env: r.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                placement: r.placement.clone(),
                on: r.on.clone(),
                restart: restart.to_owned(),
                max_restarts,
                restart_backoff_ms: backoff,
                instances: Vec::new(),
                max_log_bytes: r.max_log_bytes,
                memory_bytes: r.memory_bytes,
                cpus: r.cpus,
                pids: r.pids,
                socket: r.socket.clone(),
            }
        })
        .collect();
    let base = wanted.map(str::to_owned).or_else(|| scenario.name.clone());
    let mut attempt = 1;
    loop {
        let name = match (&base, attempt) {
            (None, _) => String::new(),
            (Some(base), 1) => base.clone(),
            (Some(base), n) => format!("{base}-{n}"),
        };
        let request = LaunchRequest { name, roles: roles.clone(), ..Default::default() };
        match client.launch(request).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                return Ok((reply.run.unwrap_or_default(), reply.members));
            }
            // A scenario run again on a long-lived daemon: take the next name.
            Err(status)
                if status.code() == Code::AlreadyExists
                    && base.is_some()
                    && wanted.is_none()
                    && attempt < NAME_ATTEMPTS =>
            {
                attempt += 1;
            }
            // A module no member knows: which one, and what it may have meant.
            Err(status) if status.code() == Code::NotFound => {
                for module in roles.iter().map(|r| &r.module).filter(|m| !m.is_empty()) {
                    let request = mgr_proto::ModulesRequest { name: module.clone() };
                    if client.modules(request).await.is_err() {
                        return Err(crate::suggest::module(client, module, status).await);
                    }
                }
                return Err(super::status(status));
            }
            Err(status) => return Err(super::status(status)),
        }
    }
}

/// Each role and its instances in the run as launched, in role order.
#[derive(Debug, Clone, Default)]
struct Roles(Vec<(String, Vec<String>)>);

impl Roles {
    fn get(&self, role: &str) -> Option<&Vec<String>> {
        self.0.iter().find(|(name, _)| name == role).map(|(_, names)| names)
    }

    fn iter(&self) -> impl Iterator<Item = &(String, Vec<String>)> {
        self.0.iter()
    }
}

/// `role × N (p1,p2)` for each role, in order, with how many a scale removed.
fn roles_summary(instances: &[mgr_proto::Instance]) -> String {
    let mut roles: Vec<(&str, Vec<&str>, usize)> = Vec::new();
    for i in instances {
        let removed = usize::from(i.detail == "removed by a scale");
        match roles.iter_mut().find(|(role, ..)| *role == i.role) {
            Some((_, names, gone)) => {
                names.push(&i.name);
                *gone += removed;
            }
            None => roles.push((&i.role, vec![&i.name], removed)),
        }
    }
    let shown: Vec<String> = roles
        .iter()
        .map(|(role, names, gone)| {
            let removed = if *gone > 0 { format!("; {gone} removed by a scale") } else { String::new() };
            format!("{role} × {} ({}{removed})", names.len(), names.join(","))
        })
        .collect();
    shown.join(", ")
}

/// The roles of `run` and their instances, but those a scale removed.
fn roles_of(run: &Run) -> Roles {
    let mut roles = Roles::default();
    for instance in run.instances.iter().filter(|i| i.detail != "removed by a scale") {
        match roles.0.iter_mut().find(|(name, _)| *name == instance.role) {
            Some((_, names)) => names.push(instance.name.clone()),
            None => roles.0.push((instance.role.clone(), vec![instance.name.clone()])),
        }
    }
    roles
}

/// The instances a step acts on, in the run as launched (or as the last
/// `scale` step left it).
fn targets(step: &Step, roles: &Roles) -> Vec<String> {
    if step.target == "all" {
        return roles.iter().flat_map(|(_, names)| names.clone()).collect();
    }
    roles.get(&step.target).cloned().unwrap_or_else(|| vec![step.target.clone()])
}

/// Carries out the timeline, each step at its time after `began`. A step
/// that fails is reported and the run goes on (an instance may have ended).
/// `done` counts the steps carried out.
async fn timeline(
    mut client: Client,
    run: String,
    steps: Vec<Step>,
    mut roles: Roles,
    began: Instant,
    done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    for step in steps {
        tokio::time::sleep_until((began + step.time).into()).await;
        let instances = targets(&step, &roles);
        let what = describe(&step, &instances);
        crate::note!("mgrctl: {:>6.1}s {what}", began.elapsed().as_secs_f64());
        match act(&mut client, &run, &step, &instances).await {
            Ok(Some(scaled)) => roles = roles_of(&scaled),
            Ok(None) => {}
            Err(err) => crate::note!("mgrctl: {what} (line {}): {err}", step.line),
        }
        done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn describe(step: &Step, instances: &[String]) -> String {
    let who =
        if instances.len() == 1 { instances[0].clone() } else { format!("{} ({})", step.target, instances.join(",")) };
    match &step.action {
        Action::Send { line } => format!("send to {who}: {line}"),
        Action::Stop => format!("stop {who}"),
        Action::Kill => format!("kill {who}"),
        Action::Pause => format!("pause {who}"),
        Action::Resume => format!("resume {who}"),
        Action::Restart => format!("restart {who}"),
        Action::Fault { loss, dup, delay, partition, heal } => {
            let mut parts = Vec::new();
            parts.extend(loss.map(|l| format!("loss={l}")));
            parts.extend(dup.map(|d| format!("dup={d}")));
            parts.extend(delay.as_ref().map(|d| format!("delay={d}")));
            parts.extend(partition.as_ref().map(|p| format!("partition={p}")));
            if *heal {
                parts.push("heal".into());
            }
            format!("fault {}", parts.join(" "))
        }
        Action::Scale { role, count } => format!("scale {role}={count}"),
    }
}

/// Carries out one step; a scale returns the run after it, whose roles the
/// next steps act on.
async fn act(client: &mut Client, run: &str, step: &Step, instances: &[String]) -> anyhow::Result<Option<Run>> {
    let kind = match &step.action {
        Action::Send { line } => {
            for instance in instances {
                let request = SendRequest {
                    target: format!("{run}/{instance}"),
                    line: line.clone().into_bytes().into(),
                    local: false,
                };
                client.send(request).await.map_err(super::status)?;
            }
            return Ok(None);
        }
        Action::Fault { loss, dup, delay, partition, heal } => {
            let request = FaultRequest {
                run: run.to_owned(),
                loss: *loss,
                dup: *dup,
                delay: delay.clone(),
                partition: partition.clone(),
                heal: *heal,
                local: false,
            };
            client.fault(request).await.map_err(super::status)?;
            return Ok(None);
        }
        Action::Scale { role, count } => {
            let request = mgr_proto::ScaleRequest { run: run.to_owned(), role: role.clone(), count: *count };
            let reply = client.scale(request).await.map_err(super::status)?.into_inner();
            let names: Vec<String> = reply.added.iter().map(|i| i.name.clone()).chain(reply.removed).collect();
            return Ok(Some(reply.run.unwrap_or_default()).filter(|_| !names.is_empty()));
        }
        Action::Stop => SignalKind::Stop,
        Action::Kill => SignalKind::Kill,
        Action::Pause => SignalKind::Pause,
        Action::Resume => SignalKind::Resume,
        Action::Restart => SignalKind::Restart,
    };
    for instance in instances {
        let request = SignalRequest { target: format!("{run}/{instance}"), kind: kind.into(), local: false };
        client.signal(request).await.map_err(super::status)?;
    }
    Ok(None)
}

/// How the run came to its end.
enum Ending {
    /// The end condition was met (and the run stopped), and why.
    Reached(String),
    /// Every instance ended by itself first.
    Ended,
    /// The end condition was not met in time (the run was stopped).
    TimedOut(String),
}

/// Waits for the end condition, then says how the run ends (in `outcome`)
/// and stops it.
async fn end(
    mut client: Client,
    run: String,
    end: End,
    roles: Roles,
    began: Instant,
    outcome: std::sync::Arc<std::sync::Mutex<Option<Ending>>>,
) {
    let ending = match end {
        End::After(after) => {
            tokio::time::sleep_until((began + after).into()).await;
            Ending::Reached(format!("{} elapsed", humantime::format_duration(after)))
        }
        End::Exited { role, timeout } => {
            let names = roles.get(&role).cloned().unwrap_or_default();
            loop {
                if let Some(limit) = timeout
                    && began.elapsed() >= limit
                {
                    break Ending::TimedOut(format!(
                        "role {role} had not exited after {} (timeout)",
                        humantime::format_duration(limit)
                    ));
                }
                let reply = client.ps(PsRequest { run: run.clone(), local: false }).await;
                if let Ok(reply) = reply {
                    let all_ended = reply
                        .into_inner()
                        .runs
                        .iter()
                        .flat_map(|r| &r.instances)
                        .filter(|i| names.contains(&i.name))
                        .all(|i| !crate::events::is_live(&i.state));
                    if all_ended {
                        break Ending::Reached(format!("every {role} exited"));
                    }
                }
                tokio::time::sleep(END_POLL).await;
            }
        }
    };
    *outcome.lock().expect("no panic while holding it") = Some(ending);
    let request = SignalRequest { target: run, kind: SignalKind::Stop.into(), local: false };
    if let Err(status) = client.signal(request).await {
        crate::note!("mgrctl: cannot stop the run at its end: {}", super::status(status));
    }
}

/// The first of `instances` whose output has a line containing `line`.
async fn find_line(client: &mut Client, run: &str, instances: &[String], line: &str) -> anyhow::Result<Option<String>> {
    for instance in instances {
        let request =
            LogsRequest { target: format!("{run}/{instance}"), since: 1, follow: false, tail: 0, local: false };
        let mut chunks = client.logs(request).await.map_err(super::status)?.into_inner();
        while let Some(chunk) = chunks.message().await.map_err(super::status)? {
            // Records are "o text\n" (stdout), "e text\n" (stderr), "m …"
            // (the manager's notes) and "t …" (time): only the process's own
            // output counts.
            let found = chunk.records.split(|b| *b == b'\n').any(|record| {
                matches!(record.first(), Some(b'o' | b'e'))
                    && String::from_utf8_lossy(record.get(2..).unwrap_or_default()).contains(line)
            });
            if found {
                return Ok(Some(instance.clone()));
            }
        }
    }
    Ok(None)
}

/// The summary that ends a run: what passed, what failed, what to know.
#[derive(Default)]
struct Report {
    lines: Vec<(Option<bool>, String)>,
}

impl Report {
    fn pass(&mut self, line: String) {
        self.lines.push((Some(true), line));
    }

    fn fail(&mut self, line: String) {
        self.lines.push((Some(false), line));
    }

    fn note(&mut self, line: String) {
        self.lines.push((None, line));
    }

    fn passed(&self) -> bool {
        self.lines.iter().all(|(ok, _)| *ok != Some(false))
    }

    /// On stderr, like the other notes of `mgrctl`, so that stdout holds
    /// only the instances' output.
    fn print(&self, run: &str, file: &str) {
        crate::note!("── run {run} ({file}) ──");
        for (ok, line) in &self.lines {
            let mark = match ok {
                Some(true) => "ok  ",
                Some(false) => "FAIL",
                None => "    ",
            };
            crate::note!("{mark} {line}");
        }
        let verdict = if self.passed() { "passed" } else { "FAILED" };
        crate::note!("run {run}: {verdict}");
    }
}
