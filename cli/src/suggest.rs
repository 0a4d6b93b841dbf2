//! Did-you-mean: a name the manager does not know (a module, a run, an
//! instance), told with the closest one it does know.
//!
//! The manager answers `NotFound` with a message of its own; when a name
//! close enough exists, the message becomes `unknown module 'X': did you
//! mean Y?`. The candidates are fetched only on that error path (`Modules`,
//! `Ps`), so a call that succeeds costs nothing more. Misspelled commands
//! and options are clap's (it suggests by itself).

use mgr_proto::{ModulesRequest, PsRequest};
use tonic::{Code, Status};

use crate::client::Client;

/// How alike two names must be (Jaro-Winkler, compared without case) to
/// be suggested: close enough for a typo, a dropped or swapped letter or
/// another case, not so loose that `r1` suggests `r2`.
const ALIKE: f64 = 0.8;

/// The candidate most like `word`, if any is alike enough.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&word, &c.to_lowercase()), c))
        .filter(|(score, _)| *score >= ALIKE)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The error for a failed call that named module `name`: a `NotFound`
/// whose module the manager does not list gets its did-you-mean.
pub async fn module(client: &mut Client, name: &str, status: Status) -> anyhow::Error {
    if status.code() != Code::NotFound {
        return crate::commands::status(status);
    }
    let listed = client.modules(ModulesRequest { name: String::new() }).await.map(|r| r.into_inner().modules);
    let names: Vec<String> = listed.unwrap_or_default().into_iter().map(|m| m.name).collect();
    if names.iter().any(|n| n == name) {
        return crate::commands::status(status);
    }
    match closest(name, names.iter().map(String::as_str)) {
        Some(like) => anyhow::anyhow!("unknown module '{name}': did you mean {like}?"),
        None => crate::commands::status(status),
    }
}

/// The error for a failed call on `target` (RUN or RUN/pN): a run or an
/// instance the group does not have (`NotFound`, or `InvalidArgument` for
/// a name that cannot be one, such as `P2`) gets its did-you-mean.
pub async fn target(client: &mut Client, target: &str, status: Status) -> anyhow::Error {
    if !matches!(status.code(), Code::NotFound | Code::InvalidArgument) {
        return crate::commands::status(status);
    }
    let (run, instance) = match target.split_once('/') {
        Some((run, instance)) => (run, Some(instance)),
        None => (target, None),
    };
    match unknown(client, run, instance).await {
        Some(message) => anyhow::anyhow!("{message}"),
        None => crate::commands::status(status),
    }
}

/// What is unknown in RUN[/INSTANCE], with the closest known name; `None`
/// when both are known or nothing is alike.
pub async fn unknown(client: &mut Client, run: &str, instance: Option<&str>) -> Option<String> {
    let runs = client.ps(PsRequest { run: String::new(), local: false }).await.ok()?.into_inner().runs;
    let Some(found) = runs.iter().find(|r| r.name == run) else {
        let like = closest(run, runs.iter().map(|r| r.name.as_str()))?;
        return Some(format!("unknown run '{run}': did you mean {like}?"));
    };
    let instance = instance?;
    let names: Vec<&str> = found.instances.iter().map(|i| i.name.as_str()).collect();
    if names.contains(&instance) {
        return None;
    }
    match closest(instance, names.iter().copied()) {
        Some(like) => Some(format!("run '{run}' has no instance '{instance}': did you mean {like}?")),
        // Instances are p1..pN: saying which there are is the better hint.
        None => Some(format!("run '{run}' has no instance '{instance}' (it has {})", span(&names))),
    }
}

/// The names, or `p1…pN` for more than three numbered in order.
fn span(names: &[&str]) -> String {
    let numbered = names.iter().enumerate().all(|(i, n)| *n == format!("p{}", i + 1));
    match names {
        [] => "none".to_owned(),
        [first, .., last] if numbered && names.len() > 3 => format!("{first}…{last}"),
        _ => names.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::{closest, span};

    #[test]
    fn a_typo_or_another_case_finds_the_name_and_a_stranger_finds_none() {
        let modules = ["FairLossPointToPointLink", "PerfectPointToPointLink", "StubbornPointToPointLink"];
        assert_eq!(closest("FairLossPointToPointLnk", modules), Some("FairLossPointToPointLink"));
        assert_eq!(closest("perfectpointtopointlink", modules), Some("PerfectPointToPointLink"));
        assert_eq!(closest("Consensus", modules), None);
        assert_eq!(closest("P2", ["p1", "p2", "p3"]), Some("p2"));
        assert_eq!(closest("demo", ["deom", "r1"]), Some("deom"));
        assert_eq!(closest("r7", ["r1", "r2"]), None, "another run's number is not a typo");
    }

    #[test]
    fn instances_are_told_as_a_span() {
        assert_eq!(span(&["p1", "p2", "p3", "p4"]), "p1…p4");
        assert_eq!(span(&["p1", "p2", "p3"]), "p1, p2, p3");
        assert_eq!(span(&["p1"]), "p1");
        assert_eq!(span(&["p2", "p4", "p5", "p6"]), "p2, p4, p5, p6");
    }
}
