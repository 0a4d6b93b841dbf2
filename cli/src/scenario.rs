//! Scenario files: a lab exercise as one TOML file that `mgrctl up` runs
//! (the runner is `commands/up.rs`; the lab's examples are in `examples/`).
//!
//! ```toml
//! name = "mcast"                      # the run's name (optional)
//!
//! [[role]]                            # roles, in order: their instances are
//! name = "peer"                       # p1..pN across roles, in this order
//! module = "MulticastPeer"            # or: command = ["python3", "{dir}/peer.py"]
//! count = 4
//! args = ["--msgs", "20", "--jitter", "5"]
//! placement = "spread"                # spread | each | pack (default spread)
//! on = ["lab-01"]                     # members (optional)
//! restart = "on-failure"              # no | on-failure (default no)
//! max_restarts = 3
//! restart_backoff = "500ms"
//! max_log_bytes = "16M"               # each instance's log keeps at most this (default: the member's, 64M)
//! memory = "256M"                     # limits of each instance (where the member has cgroups)
//! cpus = 0.5
//! pids = 64
//!
//! [[role]]
//! name = "comparator"
//! module = "MulticastComparator"
//! args = ["--peers", "4"]             # count defaults to 1
//!
//! [[at]]                              # the timeline: one action per step
//! time = "2s"
//! send = { to = "peer", line = "hello" }   # to: an instance (p2), a role or "all"
//! [[at]]
//! time = "5s"
//! kill = "p3"                         # also stop, pause, resume, restart: an instance or a role
//! [[at]]
//! time = "6s"
//! fault = { loss = 0.2, partition = "p1,p2/p3,p4" }   # or heal = true
//! [[at]]
//! time = "8s"
//! scale = { role = "peer", count = 6 }   # mgrctl scale: grow or shrink a role while it runs
//!
//! [end]
//! exited = "peer"                     # all of a role exited; or: after = "30s"
//! timeout = "60s"                     # give up (a failure) after this long
//!
//! [check]
//! properties = true                   # the modules' own properties (or a list of ids)
//! expect = [{ role = "comparator", line = "verdict agree" }]
//! ```
//!
//! In a role's `command` and `args`, `{dir}` stands for the folder of the
//! scenario file (as in a module's manifest), so that a scenario runs a
//! program beside it from wherever `mgrctl up` is typed.
//!
//! A role placed `each` has `count` instances on every member, so the
//! names from its first instance on depend on the group: the timeline names
//! roles (or all) there, not instances.
//!
//! This module owns parsing and validation, with errors that name the line
//! and the field; it must not talk to a manager.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: Option<String>,
    pub roles: Vec<Role>,
    pub timeline: Vec<Step>,
    pub end: End,
    pub check: Check,
}

impl Scenario {
    /// Puts `dir` (the scenario file's folder) for `{dir}` in the roles'
    /// commands and arguments.
    pub fn expand_dir(&mut self, dir: &std::path::Path) {
        let dir = dir.display().to_string();
        for role in &mut self.roles {
            for word in role.command.iter_mut().chain(role.args.iter_mut()) {
                *word = word.replace("{dir}", &dir);
            }
        }
    }
}

/// One role: `count` instances of a module or command.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub name: String,
    /// A module name, or `None` for `command`.
    pub module: Option<String>,
    pub command: Vec<String>,
    pub count: u32,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub placement: String,
    pub on: Vec<String>,
    /// `Some((max, backoff))` for `restart = "on-failure"`.
    pub restart: Option<(u32, Duration)>,
    /// The names of its instances (`p3`, `p4`, …).
    pub instances: Vec<String>,
    /// Most bytes each instance's log keeps; 0 for the member's default.
    pub max_log_bytes: u64,
    /// Limits of each instance (0: none, or the member's default).
    pub memory_bytes: u64,
    pub cpus: f64,
    pub pids: u32,
    /// For a command: "bind" or "inherit" (see `mgrctl exec --socket`);
    /// empty for the default.
    pub socket: String,
}

/// What a step of the timeline does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A line to the stdin of the target's instances.
    Send {
        line: String,
    },
    Stop,
    Kill,
    Pause,
    Resume,
    Restart,
    Fault {
        loss: Option<f64>,
        dup: Option<f64>,
        delay: Option<String>,
        partition: Option<String>,
        heal: bool,
    },
    /// `mgrctl scale`: the role grows or shrinks to `count` instances.
    Scale {
        role: String,
        count: u32,
    },
}

/// One step of the timeline: at `time` after the start, `action` on the
/// instances named by `target` (an instance, a role's instances, or all).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub time: Duration,
    pub action: Action,
    /// The instances acted on (every instance for faults), as numbered
    /// from the file's counts.
    pub instances: Vec<String>,
    /// As written: an instance, a role or "all" ("all" for faults). A role
    /// placed `each` has a count per member, so the runner resolves roles
    /// on the run as launched.
    pub target: String,
    /// The file's line, for messages while running.
    pub line: usize,
}

/// When the run ends.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// After a fixed time.
    After(Duration),
    /// When every instance of a role has exited.
    Exited { role: String, timeout: Option<Duration> },
}

/// What is checked at the end.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Check {
    /// `None`: no property check; `Some(empty)`: the modules' own.
    pub properties: Option<Vec<String>>,
    /// Lines that must appear in the output of an instance of a role.
    pub expect: Vec<(String, String)>,
}

/// A scenario that cannot be run, with the line and field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ScenarioError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Option<String>,
    #[serde(default)]
    role: Vec<Spanned<RawRole>>,
    #[serde(default)]
    at: Vec<Spanned<RawStep>>,
    end: Option<Spanned<RawEnd>>,
    #[serde(default)]
    check: Option<RawCheck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: String,
    module: Option<String>,
    command: Option<Vec<String>>,
    count: Option<u32>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    placement: Option<String>,
    #[serde(default)]
    on: Vec<String>,
    restart: Option<String>,
    max_restarts: Option<u32>,
    restart_backoff: Option<String>,
    max_log_bytes: Option<String>,
    memory: Option<String>,
    cpus: Option<f64>,
    pids: Option<u32>,
    socket: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSend {
    to: String,
    line: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    loss: Option<f64>,
    dup: Option<f64>,
    delay: Option<String>,
    partition: Option<String>,
    #[serde(default)]
    heal: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScale {
    role: String,
    count: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    time: String,
    scale: Option<RawScale>,
    send: Option<RawSend>,
    stop: Option<String>,
    kill: Option<String>,
    pause: Option<String>,
    resume: Option<String>,
    restart: Option<String>,
    fault: Option<RawFault>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnd {
    after: Option<String>,
    exited: Option<String>,
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawProperties {
    All(bool),
    These(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    role: String,
    line: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    properties: Option<RawProperties>,
    #[serde(default)]
    expect: Vec<RawExpect>,
}

/// Parses and validates a scenario. `file` names it in errors; `scale`
/// overrides role counts (`--scale peer=8`).
pub fn parse(file: &str, text: &str, scale: &[(String, u32)]) -> Result<Scenario, ScenarioError> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let fail = |offset: usize, message: String| ScenarioError { file: file.to_owned(), line: line_of(offset), message };
    let raw: RawFile = toml::from_str(text).map_err(|err| {
        let offset = err.span().map_or(0, |s| s.start);
        fail(offset, err.message().trim().to_owned())
    })?;

    // Roles, and the instance names they get, in file order.
    if raw.role.is_empty() {
        return Err(fail(0, "no [[role]]: a scenario needs at least one role".into()));
    }
    let mut roles: Vec<Role> = Vec::new();
    let mut next = 1;
    for spanned in &raw.role {
        let at = spanned.span().start;
        let r = spanned.get_ref();
        let what = format!("role '{}'", r.name);
        if r.name.is_empty() || !r.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(fail(at, format!("role name '{}' is not valid (letters, digits, '-' or '_')", r.name)));
        }
        if is_instance_name(&r.name) || r.name == "all" {
            return Err(fail(at, format!("role name '{}' would read as an instance or as all", r.name)));
        }
        if roles.iter().any(|o| o.name == r.name) {
            return Err(fail(at, format!("{what} is defined twice")));
        }
        let (module, command) = match (&r.module, &r.command) {
            (Some(module), None) => (Some(module.clone()), Vec::new()),
            (None, Some(command)) if !command.is_empty() => (None, command.clone()),
            (None, Some(_)) => return Err(fail(at, format!("{what}: command is empty"))),
            (Some(_), Some(_)) => return Err(fail(at, format!("{what}: give module or command, not both"))),
            (None, None) => return Err(fail(at, format!("{what}: needs module (or command)"))),
        };
        let mut count = r.count.unwrap_or(1);
        if let Some((_, n)) = scale.iter().find(|(name, _)| name == &r.name) {
            count = *n;
        }
        if count == 0 {
            return Err(fail(at, format!("{what}: count must be at least 1")));
        }
        let placement = r.placement.clone().unwrap_or_else(|| "spread".into());
        if !matches!(placement.as_str(), "spread" | "each" | "pack") {
            return Err(fail(at, format!("{what}: placement '{placement}' is not spread, each or pack")));
        }
        let restart = match r.restart.as_deref() {
            None | Some("no") => None,
            Some("on-failure") => {
                let backoff = match &r.restart_backoff {
                    Some(text) => duration(text).map_err(|e| fail(at, format!("{what}: restart_backoff: {e}")))?,
                    None => Duration::from_millis(500),
                };
                Some((r.max_restarts.unwrap_or(3), backoff))
            }
            Some(other) => return Err(fail(at, format!("{what}: restart '{other}' is not no or on-failure"))),
        };
        let size = |field: &str, text: &Option<String>| -> Result<u64, ScenarioError> {
            match text {
                Some(text) => {
                    mgr_daemon::units::parse_size(text).map_err(|e| fail(at, format!("{what}: {field}: {e}")))
                }
                None => Ok(0),
            }
        };
        let max_log_bytes = size("max_log_bytes", &r.max_log_bytes)?;
        let memory_bytes = size("memory", &r.memory)?;
        let cpus = r.cpus.unwrap_or(0.0);
        if !cpus.is_finite() || cpus < 0.0 {
            return Err(fail(at, format!("{what}: cpus must be a number of CPUs such as 0.5, not {cpus}")));
        }
        let socket = match (r.socket.as_deref(), &module) {
            (None, _) => String::new(),
            (Some(_), Some(_)) => {
                return Err(fail(at, format!("{what}: socket is for a command; a module's manifest says it")));
            }
            (Some(mode @ ("bind" | "inherit")), None) => mode.to_owned(),
            (Some(other), None) => return Err(fail(at, format!("{what}: socket '{other}' is not bind or inherit"))),
        };
        let instances = (next..next + count).map(|i| format!("p{i}")).collect();
        next += count;
        roles.push(Role {
            name: r.name.clone(),
            module,
            command,
            count,
            args: r.args.clone(),
            env: r.env.clone(),
            placement,
            on: r.on.clone(),
            restart,
            instances,
            max_log_bytes,
            memory_bytes,
            cpus,
            pids: r.pids.unwrap_or(0),
            socket,
        });
    }
    for (name, _) in scale {
        if !roles.iter().any(|r| &r.name == name) {
            return Err(fail(0, format!("--scale names role '{name}', which the scenario does not have")));
        }
    }
    let every: Vec<String> = roles.iter().flat_map(|r| r.instances.clone()).collect();
    let known = || {
        roles
            .iter()
            .map(|r| format!("{} {}", r.name, r.instances.first().cloned().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let target = |text: &str, at: usize| -> Result<Vec<String>, ScenarioError> {
        if text == "all" {
            return Ok(every.clone());
        }
        if let Some(role) = roles.iter().find(|r| r.name == text) {
            return Ok(role.instances.clone());
        }
        if every.iter().any(|i| i == text) {
            // A role placed `each` has `count` instances per member, so the
            // names from its first on depend on the group's size.
            let number = |name: &str| name[1..].parse::<u32>().unwrap_or(0);
            if let Some(each) = roles.iter().find(|r| {
                r.placement == "each" && r.instances.first().is_some_and(|first| number(first) <= number(text))
            }) {
                return Err(fail(
                    at,
                    format!(
                        "'{text}' depends on the group's size (role '{}' is placed each): name a role or all",
                        each.name
                    ),
                ));
            }
            return Ok(vec![text.to_owned()]);
        }
        Err(fail(at, format!("no role or instance named '{text}' (roles, with their first instance: {})", known())))
    };

    // The timeline, in time order (steps at the same time in file order).
    let mut timeline = Vec::new();
    for (n, spanned) in raw.at.iter().enumerate() {
        let at = spanned.span().start;
        let s = spanned.get_ref();
        let step = format!("timeline step {}", n + 1);
        let time = duration(&s.time).map_err(|e| fail(at, format!("{step}: time: {e}")))?;
        let mut actions = Vec::new();
        if let Some(send) = &s.send {
            actions.push((Action::Send { line: send.line.clone() }, send.to.clone(), target(&send.to, at)?));
        }
        for (field, action) in [
            (&s.stop, Action::Stop),
            (&s.kill, Action::Kill),
            (&s.pause, Action::Pause),
            (&s.resume, Action::Resume),
            (&s.restart, Action::Restart),
        ] {
            if let Some(name) = field {
                actions.push((action, name.clone(), target(name, at)?));
            }
        }
        if let Some(f) = &s.fault {
            if f.loss.is_none() && f.dup.is_none() && f.delay.is_none() && f.partition.is_none() && !f.heal {
                return Err(fail(at, format!("{step}: fault changes nothing (loss, dup, delay, partition or heal)")));
            }
            for p in [f.loss, f.dup].into_iter().flatten() {
                if !(0.0..=1.0).contains(&p) {
                    return Err(fail(at, format!("{step}: fault: {p} is not a probability between 0 and 1")));
                }
            }
            let fault = Action::Fault {
                loss: f.loss,
                dup: f.dup,
                delay: f.delay.clone(),
                partition: f.partition.clone(),
                heal: f.heal,
            };
            actions.push((fault, "all".to_owned(), every.clone()));
        }
        if let Some(scale) = &s.scale {
            if !roles.iter().any(|r| r.name == scale.role) {
                return Err(fail(at, format!("{step}: scale: no role named '{}'", scale.role)));
            }
            if scale.count == 0 {
                return Err(fail(at, format!("{step}: scale: count must be at least 1")));
            }
            let action = Action::Scale { role: scale.role.clone(), count: scale.count };
            actions.push((action, scale.role.clone(), Vec::new()));
        }
        match actions.len() {
            0 => {
                return Err(fail(
                    at,
                    format!("{step}: no action (send, stop, kill, pause, resume, restart, fault or scale)"),
                ));
            }
            1 => {}
            _ => return Err(fail(at, format!("{step}: one action per step ([[at]] again for the next)"))),
        }
        let (action, target, instances) = actions.pop().expect("one action");
        timeline.push(Step { time, action, instances, target, line: line_of(at) });
    }
    timeline.sort_by_key(|s| s.time);

    let end = match raw.end {
        None => return Err(fail(text.len(), "no [end]: say after = \"30s\" or exited = \"ROLE\"".into())),
        Some(spanned) => {
            let at = spanned.span().start;
            let e = spanned.into_inner();
            let timeout = match &e.timeout {
                Some(t) => Some(duration(t).map_err(|err| fail(at, format!("end: timeout: {err}")))?),
                None => None,
            };
            match (e.after, e.exited) {
                (Some(after), None) => {
                    if timeout.is_some() {
                        return Err(fail(at, "end: timeout goes with exited, not after".into()));
                    }
                    End::After(duration(&after).map_err(|err| fail(at, format!("end: after: {err}")))?)
                }
                (None, Some(role)) => {
                    if !roles.iter().any(|r| r.name == role) {
                        return Err(fail(at, format!("end: exited names role '{role}', which is not defined")));
                    }
                    End::Exited { role, timeout }
                }
                (Some(_), Some(_)) => return Err(fail(at, "end: give after or exited, not both".into())),
                (None, None) => return Err(fail(at, "end: needs after = \"30s\" or exited = \"ROLE\"".into())),
            }
        }
    };

    let check = match raw.check {
        None => Check::default(),
        Some(c) => {
            let properties = match c.properties {
                None | Some(RawProperties::All(false)) => None,
                Some(RawProperties::All(true)) => Some(Vec::new()),
                Some(RawProperties::These(ids)) => Some(ids),
            };
            for expect in &c.expect {
                if !roles.iter().any(|r| r.name == expect.role) {
                    return Err(fail(
                        text.find("[check]").unwrap_or(0),
                        format!("check: expect names role '{}', which is not defined", expect.role),
                    ));
                }
            }
            Check { properties, expect: c.expect.into_iter().map(|e| (e.role, e.line)).collect() }
        }
    };
    Ok(Scenario { name: raw.name, roles, timeline, end, check })
}

fn is_instance_name(name: &str) -> bool {
    name.strip_prefix('p').is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("'{text}' is not a duration such as 500ms or 2s ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTICAST: &str = r#"
name = "mcast"

[[role]]
name = "peer"
module = "MulticastPeer"
count = 4
args = ["--msgs", "20"]
restart = "on-failure"

[[role]]
name = "comparator"
module = "MulticastComparator"
args = ["--peers", "4"]

[[at]]
time = "5s"
kill = "p3"

[[at]]
time = "2s"
send = { to = "peer", line = "hello" }

[[at]]
time = "6s"
fault = { loss = 0.2, partition = "p1,p2/p3,p4" }

[end]
exited = "peer"
timeout = "60s"

[check]
properties = true
expect = [{ role = "comparator", line = "verdict agree" }]
"#;

    #[test]
    fn a_whole_scenario_reads_with_instances_numbered_across_roles() {
        let s = parse("m.toml", MULTICAST, &[]).unwrap();
        assert_eq!(s.name.as_deref(), Some("mcast"));
        assert_eq!(s.roles[0].instances, ["p1", "p2", "p3", "p4"]);
        assert_eq!(s.roles[1].instances, ["p5"]);
        assert_eq!(s.roles[0].restart, Some((3, Duration::from_millis(500))));
        // The timeline is in time order, each step knowing its line.
        assert_eq!(s.timeline[0].time, Duration::from_secs(2));
        assert_eq!(s.timeline[0].instances, ["p1", "p2", "p3", "p4"]);
        assert_eq!(s.timeline[0].action, Action::Send { line: "hello".into() });
        assert_eq!((s.timeline[1].action.clone(), s.timeline[1].instances.clone()), (Action::Kill, vec!["p3".into()]));
        assert_eq!(s.timeline[1].line, 16, "the line of its [[at]]");
        assert_eq!(s.end, End::Exited { role: "peer".into(), timeout: Some(Duration::from_secs(60)) });
        assert_eq!(s.check.properties, Some(Vec::new()));
        assert_eq!(s.check.expect, [("comparator".to_owned(), "verdict agree".to_owned())]);
    }

    #[test]
    fn scale_changes_a_roles_count_and_the_numbering_after_it() {
        let s = parse("m.toml", MULTICAST, &[("peer".into(), 8)]).unwrap();
        assert_eq!(s.roles[0].count, 8);
        assert_eq!(s.roles[1].instances, ["p9"]);
        let err = parse("m.toml", MULTICAST, &[("nobody".into(), 2)]).unwrap_err();
        assert!(err.message.contains("--scale names role 'nobody'"), "{err}");
    }

    fn error(text: &str) -> String {
        parse("s.toml", text, &[]).unwrap_err().to_string()
    }

    #[test]
    fn bad_files_name_the_line_and_the_field() {
        let role = "[[role]]\nname = \"peer\"\nmodule = \"M\"\n";
        let end = "\n[end]\nafter = \"1s\"\n";
        assert!(
            error(&format!("{role}cont = 3\n{end}")).starts_with("s.toml:4: unknown field `cont`"),
            "{}",
            error(&format!("{role}cont = 3\n{end}"))
        );
        assert!(error(&format!("{role}count = \"three\"\n{end}")).starts_with("s.toml:4:"));
        let e = error(&format!("{role}{end}\n[[at]]\ntime = \"2s\"\nkill = \"p9\"\n"));
        assert!(
            e.starts_with("s.toml:8:") && e.contains("no role or instance named 'p9'") && e.contains("peer p1"),
            "{e}"
        );
        let e = error(&format!("{role}{end}\n[[at]]\ntime = \"soon\"\nkill = \"p1\"\n"));
        assert!(e.contains("timeline step 1: time: 'soon' is not a duration"), "{e}");
        let e = error(&format!("{role}{end}\n[[at]]\ntime = \"1s\"\nkill = \"p1\"\nstop = \"p1\"\n"));
        assert!(e.contains("one action per step"), "{e}");
        let e = error(&format!("{role}{end}\n[[at]]\ntime = \"1s\"\n"));
        assert!(e.contains("no action"), "{e}");
        assert!(error(role).contains("no [end]"));
        assert!(error(&format!("{role}\n[end]\nexited = \"client\"\n")).contains("exited names role 'client'"));
        assert!(error(&format!("{role}\n[end]\nafter = \"1s\"\nexited = \"peer\"\n")).contains("not both"));
        assert!(error(&format!("{role}placement = \"everywhere\"\n{end}")).starts_with("s.toml:1:"));
        assert!(error(&format!("{role}count = 0\n{end}")).contains("count must be at least 1"));
        assert!(error(&format!("{role}command = [\"x\"]\n{end}")).contains("module or command, not both"));
        let scale = |body: &str| error(&format!("{role}{end}\n[[at]]\ntime = \"1s\"\nscale = {body}\n"));
        assert!(scale("{ role = \"nope\", count = 2 }").contains("scale: no role named 'nope'"));
        assert!(scale("{ role = \"peer\", count = 0 }").contains("scale: count must be at least 1"));
        assert!(scale("{ role = \"peer\" }").contains("missing field `count`"));
        assert!(error(&format!("{role}{role}{end}")).contains("defined twice"));
        assert!(
            error(&format!("[[role]]\nname = \"p2\"\nmodule = \"M\"\n{end}")).contains("would read as an instance")
        );
        assert!(error(end).contains("no [[role]]"));
        let e = error(&format!("{role}{end}\n[[at]]\ntime = \"1s\"\nfault = {{ loss = 2.0 }}\n"));
        assert!(e.contains("not a probability"), "{e}");
        let e = error(&format!("{role}{end}\n[check]\nexpect = [{{ role = \"x\", line = \"y\" }}]\n"));
        assert!(e.contains("expect names role 'x'"), "{e}");
    }

    /// Every scenario of the workspace's `examples/` parses with the real
    /// parser into the roles, timeline, end and checks its comments and
    /// `examples/README.md` describe, naming modules, properties and
    /// instances that exist.
    #[test]
    fn the_examples_parse_into_the_runs_they_describe() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".toml"))
            .collect();
        files.sort();
        assert_eq!(files, ["ack.toml", "chat.toml", "multicast-ordered.toml", "multicast.toml"]);
        let roles = |s: &Scenario| -> Vec<(String, String, Vec<String>)> {
            s.roles
                .iter()
                .map(|r| (r.name.clone(), r.module.clone().unwrap_or_default(), r.instances.clone()))
                .collect()
        };
        let role = |name: &str, module: &str, instances: &[&str]| {
            (name.to_owned(), module.to_owned(), instances.iter().map(|i| (*i).to_owned()).collect::<Vec<_>>())
        };
        let expect = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(role, line)| ((*role).to_owned(), (*line).to_owned())).collect()
        };
        let ids = |list: &[&str]| Some(list.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>());
        let secs = |s: f64| Duration::from_secs_f64(s);
        for file in &files {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            let s = parse(file, &text, &[]).unwrap_or_else(|err| panic!("{err}"));
            assert_eq!(s.name, None, "{file}: no fixed run name, so that it can run again on the same manager");
            // Every module exists and every property is one of the run's modules'.
            let modules: Vec<&str> = s.roles.iter().filter_map(|r| r.module.as_deref()).collect();
            for module in &modules {
                assert!(mgr_modules::catalog::all().any(|m| m.name == *module), "{file}: no module {module}");
            }
            for id in s.check.properties.iter().flatten() {
                let declared = modules.iter().flat_map(|m| mgr_modules::check::properties_of(m)).any(|p| p.id == id);
                assert!(declared, "{file}: no module of the run declares {id}");
            }
            // Every example ends by itself, well before CI's patience runs out.
            let End::Exited { timeout: Some(timeout), .. } = &s.end else { panic!("{file}: {:?}", s.end) };
            assert!(*timeout <= secs(20.0), "{file}: {timeout:?}");
            match file.as_str() {
                "multicast.toml" | "multicast-ordered.toml" => {
                    assert_eq!(
                        roles(&s),
                        [
                            role("peer", "MulticastPeer", &["p1", "p2", "p3", "p4"]),
                            role("comparator", "MulticastComparator", &["p5"])
                        ]
                    );
                    // No --comparator and no --peers: the roles say it all.
                    assert!(s.roles.iter().flat_map(|r| &r.args).all(|a| a != "--comparator" && a != "--peers"));
                    assert_eq!(s.end, End::Exited { role: "comparator".into(), timeout: Some(secs(20.0)) });
                    assert_eq!(s.check.properties, None);
                }
                _ => {}
            }
            match file.as_str() {
                "multicast.toml" => {
                    assert_eq!(s.roles[0].args, ["--msgs", "40", "--jitter", "5"]);
                    assert!(s.timeline.is_empty());
                    assert_eq!(s.check.expect, expect(&[("comparator", "verdict diverge")]));
                }
                "multicast-ordered.toml" => {
                    assert!(s.roles[0].args.iter().any(|a| a == "--ordered"));
                    let faults: Vec<(Duration, Action)> =
                        s.timeline.iter().map(|t| (t.time, t.action.clone())).collect();
                    let fault = |loss, dup, partition: Option<&str>, heal| Action::Fault {
                        loss,
                        dup,
                        delay: None,
                        partition: partition.map(str::to_owned),
                        heal,
                    };
                    assert_eq!(
                        faults,
                        [
                            (secs(0.0), fault(Some(0.1), Some(0.05), None, false)),
                            (secs(0.5), fault(None, None, Some("p1,p2,p5/p3,p4"), false)),
                            (secs(1.5), fault(None, None, None, true)),
                        ]
                    );
                    assert_eq!(
                        s.check.expect,
                        expect(&[
                            ("comparator", "agree: all 4 peers delivered the same 160 messages in the same order"),
                            ("comparator", "verdict agree"),
                        ])
                    );
                }
                "chat.toml" => {
                    assert_eq!(roles(&s), [role("chat", "ChatNode", &["p1", "p2", "p3"])]);
                    // The run's multicast group, not a fixed one.
                    assert!(!s.roles[0].args.iter().any(|a| a == "--group"));
                    let steps: Vec<(Duration, Action, Vec<String>)> =
                        s.timeline.iter().map(|t| (t.time, t.action.clone(), t.instances.clone())).collect();
                    let send = |at: f64, line: &str, to: &[&str]| {
                        (secs(at), Action::Send { line: line.into() }, to.iter().map(|i| (*i).to_owned()).collect())
                    };
                    let all = ["p1", "p2", "p3"];
                    assert_eq!(
                        steps,
                        [
                            send(1.0, "hello from p1", &["p1"]),
                            send(1.0, "hello from p2", &["p2"]),
                            send(1.0, "hello from p3", &["p3"]),
                            send(1.5, "all at once", &all),
                            (secs(5.0), Action::Restart, vec!["p2".to_owned()]),
                            send(6.0, "p2 is back", &["p2"]),
                            send(6.0, "welcome back, p2", &["p3"]),
                            (secs(6.5), Action::Scale { role: "chat".into(), count: 4 }, Vec::new()),
                            send(7.0, "sync", &all),
                            send(8.0, "sair", &all),
                        ]
                    );
                    assert_eq!(s.end, End::Exited { role: "chat".into(), timeout: Some(secs(20.0)) });
                    assert_eq!(s.check.properties, ids(&["ME1", "EC"]));
                    assert_eq!(
                        s.check.expect,
                        expect(&[
                            ("chat", "restored 6 messages (6 from the checkpoint, 0 more from the replicas)"),
                            ("chat", "checkpoint saved (8 messages); bye"),
                        ])
                    );
                }
                "ack.toml" => {
                    assert_eq!(
                        roles(&s),
                        [
                            role("discovery", "AckDiscovery", &["p1"]),
                            role("receiver", "AckReceiver", &["p2", "p3", "p4"]),
                            role("client", "AckClient", &["p5"]),
                            role("pyreceiver", "", &["p6"]),
                        ]
                    );
                    // The Python receiver beside the file, wherever it is run from.
                    let python = &s.roles[3];
                    assert_eq!(python.command[..3], ["python3", "-u", "{dir}/ack_receiver.py"]);
                    assert_eq!(python.socket, "inherit");
                    let mut expanded = s.clone();
                    expanded.expand_dir(std::path::Path::new("/labs/examples"));
                    assert_eq!(expanded.roles[3].command[2], "/labs/examples/ack_receiver.py");
                    // No --discovery: the receivers and the client find it by its role.
                    assert!(s.roles.iter().flat_map(|r| &r.args).all(|a| a != "--discovery"));
                    let receiver = &s.roles[1];
                    assert_eq!(receiver.restart, Some((5, Duration::from_millis(300))));
                    for arg in ["--crash-prob", "0.5", "--seed"] {
                        assert!(receiver.args.iter().any(|a| a == arg), "{arg}");
                    }
                    let scales: Vec<(Duration, &Action)> = s.timeline.iter().map(|t| (t.time, &t.action)).collect();
                    assert_eq!(
                        scales,
                        [
                            (secs(0.3), &Action::Scale { role: "receiver".into(), count: 5 }),
                            (secs(1.2), &Action::Scale { role: "receiver".into(), count: 2 }),
                        ]
                    );
                    assert_eq!(s.end, End::Exited { role: "client".into(), timeout: Some(secs(20.0)) });
                    assert_eq!(s.check.properties, ids(&["ACK1", "ACK2"]));
                    assert_eq!(s.check.expect, expect(&[("client", "all 5 requests acked")]));
                }
                other => panic!("{other}: an example without a test"),
            }
        }
    }

    #[test]
    fn instances_after_a_role_placed_each_cannot_be_named() {
        let text = "[[role]]\nname = \"a\"\nmodule = \"M\"\n[[role]]\nname = \"b\"\nmodule = \"M\"\nplacement = \"each\"\n[[role]]\nname = \"c\"\nmodule = \"M\"\n[[at]]\ntime = \"1s\"\nkill = \"TARGET\"\n[end]\nafter = \"2s\"\n";
        for fine in ["p1", "a", "b", "c", "all"] {
            assert!(parse("f", &text.replace("TARGET", fine), &[]).is_ok(), "{fine}");
        }
        let err = parse("f", &text.replace("TARGET", "p3"), &[]).unwrap_err();
        assert_eq!(err.line, 11, "the line of its [[at]]");
        assert!(err.message.contains("'p3' depends on the group's size (role 'b' is placed each)"), "{}", err.message);
        assert!(parse("f", &text.replace("TARGET", "p2"), &[]).is_err());
    }
}
