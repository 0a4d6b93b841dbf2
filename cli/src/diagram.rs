//! A run's space-time diagram as SVG (and as a self-contained HTML page),
//! for `mgrctl diagram`.
//!
//! This module is pure: it turns [`RunEvents`] into text and never does
//! I/O, so the drawing is tested on events written by hand. It draws what
//! the events say and must not judge the run (that is `mgrctl check`'s).
//!
//! The picture: one horizontal line per process, time flowing left to
//! right. Each event gets a column by happens-before: after the event
//! before it on its process and after the send of the message it receives,
//! so every arrow points right. A link's `send` is paired with the
//! `receive` events (or, for a link that logs no receive, the `deliver`
//! events) with the same (sender, destination, id), or the same text when
//! the module gives no ids. A send without one is lost (a short arrow
//! ending in ×); a send with two or more is duplicated (each arrow marked
//! "dup"). A send to something that is not a process of the run (a
//! multicast group, as the chat's) is a multicast: it is paired with the
//! `receive` or `deliver` events, at any process, from its sender with its
//! id, and is duplicated only where one process got it twice. The manager's
//! crash records end a line's segment with a cross; a restarted process
//! goes on along its row from its next event, marked by a bar;
//! suspicions are triangles naming the suspect; every other event of an
//! upper layer (broadcast, deliver, decide, …) is a dot with a short label.
//! Each mark has a `<title>`, which viewers show as a tooltip: the event,
//! its Lamport clock, its vector clock and its text.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write;

use mgr_modules::check::{Event, RunEvents};

use crate::trace::{effective_lamports, is_crash_record, process_names};

/// What the events do not say but the drawing shows.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The member that hosts each process, for labels such as `p1@lab-01`.
    pub members: BTreeMap<String, String>,
}

/// Fixed sizes: fonts never scale, the width grows with the columns.
const LEFT: f64 = 130.0;
const RIGHT: f64 = 70.0;
const TOP: f64 = 60.0;
const ROW: f64 = 70.0;
const LEGEND: f64 = 50.0;
const MSG: &str = "#3465a4";
const DUP: &str = "#e07b00";
const LOST: &str = "#cc0000";

/// A message's identity on its link: the module's id, or its text when the
/// module numbers nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Id(u64),
    Text(String),
}

fn key(e: &Event) -> Key {
    match e.id {
        Some(id) => Key::Id(id),
        None => Key::Text(e.text.clone().unwrap_or_default()),
    }
}

/// (process index, event index).
type Node = (usize, usize);

/// The sends and the events that received them.
#[derive(Debug, Default)]
struct Pairs {
    /// For each send, its receives in the order they were found.
    receives: BTreeMap<Node, Vec<Node>>,
    /// For each paired receive, its send.
    send_of: HashMap<Node, Node>,
    /// The event kind that receives a link's message in this run.
    kind: &'static str,
    /// Sends to a multicast group rather than to a process.
    multicast: std::collections::HashSet<Node>,
}

impl Pairs {
    /// Whether a send was received more than once: by anyone for a send to
    /// a process, by one process for a multicast.
    fn duplicated(&self, send: Node) -> bool {
        let receives = self.receives.get(&send).map_or(&[][..], Vec::as_slice);
        if self.multicast.contains(&send) {
            receives.iter().enumerate().any(|(n, (q, _))| receives[..n].iter().any(|(r, _)| r == q))
        } else {
            receives.len() > 1
        }
    }
}

fn pair(names: &[String], events: &[&[Event]]) -> Pairs {
    // A module that logs `receive` logs its link's deliveries under that
    // name, and `deliver` is then an upper layer's; one that logs no
    // `receive` is a link whose `deliver` is the receipt.
    let kind = if events.iter().any(|es| es.iter().any(|e| e.event == "receive")) { "receive" } else { "deliver" };
    let mut pairs = Pairs { kind, ..Default::default() };
    let mut sends: HashMap<(&str, &str, Key), Vec<Node>> = HashMap::new();
    let mut multicasts: HashMap<(&str, Key), Node> = HashMap::new();
    for (p, es) in events.iter().enumerate() {
        for (i, e) in es.iter().enumerate() {
            if let (true, Some(peer)) = (e.event == "send", &e.peer) {
                if names.contains(peer) {
                    sends.entry((names[p].as_str(), peer.as_str(), key(e))).or_default().push((p, i));
                } else {
                    multicasts.insert((names[p].as_str(), key(e)), (p, i));
                    pairs.multicast.insert((p, i));
                }
                pairs.receives.insert((p, i), Vec::new());
            }
        }
    }
    for (q, es) in events.iter().enumerate() {
        for (j, e) in es.iter().enumerate() {
            let Some(peer) = &e.peer else { continue };
            let direct = sends.get(&(peer.as_str(), names[q].as_str(), key(e))).filter(|_| e.event == kind);
            let Some(candidates) = direct else {
                if matches!(e.event.as_str(), "receive" | "deliver")
                    && let Some(&send) = multicasts.get(&(peer.as_str(), key(e)))
                {
                    pairs.receives.entry(send).or_default().push((q, j));
                    pairs.send_of.insert((q, j), send);
                }
                continue;
            };
            // The first send of that message not yet received, or else the
            // last one (a duplicate).
            let send = candidates
                .iter()
                .find(|s| pairs.receives.get(s).is_some_and(Vec::is_empty))
                .or(candidates.last())
                .copied();
            if let Some(send) = send {
                pairs.receives.entry(send).or_default().push((q, j));
                pairs.send_of.insert((q, j), send);
            }
        }
    }
    pairs
}

/// Each event's column: one after the event before it on its process and
/// one after the send it receives (a Lamport clock over the drawn
/// messages). Should the pairing contradict the processes' orders (a cycle),
/// the receive that unblocks the rest loses its constraint.
fn columns(events: &[&[Event]], pairs: &Pairs) -> Vec<Vec<usize>> {
    let mut column: Vec<Vec<usize>> = events.iter().map(|es| vec![0; es.len()]).collect();
    let mut waiting: Vec<Vec<usize>> = events
        .iter()
        .enumerate()
        .map(|(p, es)| {
            (0..es.len()).map(|i| usize::from(i > 0) + usize::from(pairs.send_of.contains_key(&(p, i)))).collect()
        })
        .collect();
    let mut ready: VecDeque<Node> = VecDeque::new();
    for (p, w) in waiting.iter().enumerate() {
        if w.first() == Some(&0) {
            ready.push_back((p, 0));
        }
    }
    let lamports: Vec<Vec<u64>> = events.iter().map(|es| effective_lamports(es)).collect();
    let mut done: Vec<usize> = vec![0; events.len()];
    let total: usize = events.iter().map(|es| es.len()).sum();
    let mut placed = 0;
    while placed < total {
        let Some((p, i)) = ready.pop_front() else {
            // A cycle: free the earliest next event of a process.
            let next = (0..events.len())
                .filter(|&p| done[p] < events[p].len())
                .min_by_key(|&p| (lamports[p][done[p]], p))
                .map(|p| (p, done[p]));
            let Some((p, i)) = next else { break };
            waiting[p][i] = 0;
            ready.push_back((p, i));
            continue;
        };
        placed += 1;
        done[p] = i + 1;
        let mut successors: Vec<Node> = pairs.receives.get(&(p, i)).cloned().unwrap_or_default();
        if i + 1 < events[p].len() {
            successors.push((p, i + 1));
        }
        for (q, j) in successors {
            column[q][j] = column[q][j].max(column[p][i] + 1);
            if waiting[q][j] > 0 {
                waiting[q][j] -= 1;
                if waiting[q][j] == 0 {
                    ready.push_back((q, j));
                }
            }
        }
    }
    column
}

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The tooltip of an event: what happened, its clocks and its text.
fn tooltip(e: &Event) -> String {
    let mut tip = format!("{} {}", e.process, e.event);
    if let Some(peer) = &e.peer {
        tip.push_str(&format!(" {}{peer}", if e.event == "send" { "→ " } else { "← " }));
    }
    if let Some(id) = e.id {
        tip.push_str(&format!(" #{id}"));
    }
    if e.lamport > 0 {
        tip.push_str(&format!("\nlamport {}", e.lamport));
    }
    if !e.vc.is_empty() {
        let vc: Vec<String> = e.vc.iter().map(u64::to_string).collect();
        tip.push_str(&format!("\nvc [{}]", vc.join(",")));
    }
    if let Some(text) = &e.text {
        tip.push_str(&format!("\n{text}"));
    }
    if let Some(by) = &e.by {
        tip.push_str(&format!("\n(by {by})"));
    }
    escape(&tip)
}

/// A short label: at most `max` characters, with an ellipsis when cut.
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Whether `e` is a failure detector's suspicion of its peer.
fn is_suspicion(e: &Event) -> bool {
    e.peer.is_some() && (e.event == "suspect" || (e.event == "crash" && !is_crash_record(e)))
}

/// The run's space-time diagram as a standalone SVG document.
pub fn svg(run: &RunEvents, options: &Options) -> String {
    let names = process_names(run);
    let events: Vec<&[Event]> = names.iter().map(|n| run.of(n)).collect();
    let pairs = pair(&names, &events);
    let column = columns(&events, &pairs);
    let columns_used = column.iter().flatten().max().map_or(1, |m| m + 1);
    // Columns are wide when there are few and narrow when there are many,
    // within what keeps marks apart.
    let dx = (900.0 / columns_used as f64).clamp(18.0, 48.0);
    let x0 = LEFT + 30.0;
    let x = |c: usize| x0 + c as f64 * dx;
    let y = |p: usize| TOP + 20.0 + p as f64 * ROW;
    // The legend needs its room even for a short run.
    let width = (x0 + (columns_used.saturating_sub(1)) as f64 * dx + RIGHT + dx).max(680.0);
    let height = TOP + names.len() as f64 * ROW + LEGEND;
    let label = |p: usize| match options.members.get(&names[p]) {
        Some(member) if !member.is_empty() => format!("{}@{member}", names[p]),
        _ => names[p].clone(),
    };

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let mut heading = format!("run {}", run.run);
    if !run.module.is_empty() {
        heading.push_str(&format!(" · {}", run.module));
    }
    heading.push_str(&format!(" · {} processes", names.len()));
    if !run.missing.is_empty() {
        heading.push_str(&format!(" · events of member(s) {} missing", run.missing.join(", ")));
    }
    let _ = writeln!(out, "<title>{}</title>", escape(&heading));
    let _ = writeln!(
        out,
        r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{MSG}"/></marker><marker id="arrow-dup" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{DUP}"/></marker></defs>"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(out, r#"<text x="10" y="24" font-size="14" font-weight="bold">{}</text>"#, escape(&heading));

    // The process lines: one segment per incarnation, each ending at the
    // crash record that ended it; a restarted process goes on along its
    // row from its first event after the crash, marked by a bar.
    for (p, es) in events.iter().enumerate() {
        let mut segments = Vec::new();
        let mut start = Some(LEFT);
        for (i, e) in es.iter().enumerate() {
            if start.is_none() {
                start = Some(x(column[p][i]) - dx * 0.5);
            }
            if is_crash_record(e) {
                segments.push((start.take().expect("set above"), x(column[p][i])));
            }
        }
        if let Some(from) = start {
            segments.push((from, x(es.len().checked_sub(1).map_or(0, |i| column[p][i])) + dx));
        }
        for (n, (from, to)) in segments.into_iter().enumerate() {
            let (class, title) = match n {
                0 => ("process", label(p)),
                _ => ("process restarted", format!("{} (restarted)", label(p))),
            };
            let _ = writeln!(
                out,
                r##"<line class="{class}" x1="{from:.1}" y1="{y:.1}" x2="{to:.1}" y2="{y:.1}" stroke="#555" stroke-width="2"><title>{name}</title></line>"##,
                y = y(p),
                name = escape(&title),
            );
            if n > 0 {
                let _ = writeln!(
                    out,
                    r##"<line class="restart" x1="{from:.1}" y1="{a:.1}" x2="{from:.1}" y2="{b:.1}" stroke="#555" stroke-width="3"><title>{name}</title></line>"##,
                    a = y(p) - 7.0,
                    b = y(p) + 7.0,
                    name = escape(&title),
                );
            }
        }
        let _ = writeln!(
            out,
            r#"<text class="label" x="{:.1}" y="{:.1}" text-anchor="end" font-weight="bold">{}</text>"#,
            LEFT - 8.0,
            y(p) + 4.0,
            escape(&short(&label(p), 18))
        );
    }

    // The messages, under the marks.
    for (&(p, i), receives) in &pairs.receives {
        let send = &events[p][i];
        let (x1, y1) = (x(column[p][i]), y(p));
        if receives.is_empty() {
            let target = names.iter().position(|n| Some(n) == send.peer.as_ref());
            let (x2, y2) = match target {
                Some(q) if q != p => (x1 + dx * 0.8, y1 + (y(q) - y1) * 0.45),
                Some(_) => (x1 + dx * 0.8, y1 - 18.0),
                None => (x1 + dx * 0.8, y1 + ROW * 0.35),
            };
            let _ = writeln!(
                out,
                r#"<g class="lost"><title>lost: {tip}</title><line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{LOST}" stroke-width="1.5" stroke-dasharray="4 2"/><path class="x" d="M{a:.1},{b:.1} L{c:.1},{d:.1} M{a:.1},{d:.1} L{c:.1},{b:.1}" stroke="{LOST}" stroke-width="2"/></g>"#,
                tip = tooltip(send),
                a = x2 - 5.0,
                b = y2 - 5.0,
                c = x2 + 5.0,
                d = y2 + 5.0,
            );
            continue;
        }
        let dup = pairs.duplicated((p, i));
        let (class, color, marker) = if dup { ("msg dup", DUP, "arrow-dup") } else { ("msg", MSG, "arrow") };
        for (copy, &(q, j)) in receives.iter().enumerate() {
            let (x2, y2) = (x(column[q][j]), y(q));
            let tip = format!("{}\n⇒ {}", tooltip(send), tooltip(&events[q][j]));
            if q == p {
                // A message to itself: an arc above the line.
                let _ = writeln!(
                    out,
                    r#"<path class="{class}" d="M{x1:.1},{y1:.1} Q{xm:.1},{ym:.1} {x2:.1},{y2:.1}" fill="none" stroke="{color}" stroke-width="1.5" marker-end="url(#{marker})"><title>{tip}</title></path>"#,
                    xm = (x1 + x2) / 2.0,
                    ym = y1 - 28.0,
                );
            } else {
                let _ = writeln!(
                    out,
                    r#"<line class="{class}" x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{color}" stroke-width="1.5" marker-end="url(#{marker})"><title>{tip}</title></line>"#,
                );
            }
            if dup {
                // Each copy's label sits at its own place along its arrow,
                // so that copies sent together do not print over each other.
                let f = 0.3 + 0.2 * (copy % 3) as f64;
                let (lx, ly) =
                    if q == p { ((x1 + x2) / 2.0, y1 - 16.0) } else { (x1 + (x2 - x1) * f + 4.0, y1 + (y2 - y1) * f) };
                let _ = writeln!(
                    out,
                    r#"<text class="dup-label" x="{lx:.1}" y="{ly:.1}" fill="{DUP}" font-size="10" text-anchor="middle">dup</text>"#
                );
            }
        }
    }

    // The marks of the events.
    for (p, es) in events.iter().enumerate() {
        for (i, e) in es.iter().enumerate() {
            let (cx, cy) = (x(column[p][i]), y(p));
            let tip = tooltip(e);
            if is_crash_record(e) {
                let _ = writeln!(
                    out,
                    r#"<g class="crash"><title>{tip}</title><path d="M{a:.1},{b:.1} L{c:.1},{d:.1} M{a:.1},{d:.1} L{c:.1},{b:.1}" stroke="{LOST}" stroke-width="3"/></g>"#,
                    a = cx - 8.0,
                    b = cy - 8.0,
                    c = cx + 8.0,
                    d = cy + 8.0,
                );
            } else if is_suspicion(e) {
                let suspect = e.peer.as_deref().unwrap_or_default();
                let _ = writeln!(
                    out,
                    r##"<g class="suspect"><title>{tip}</title><polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="{DUP}" stroke="#333" stroke-width="0.5"/><text x="{cx:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="{DUP}">{}</text></g>"##,
                    cx - 6.0,
                    cy - 14.0,
                    cx + 6.0,
                    cy - 14.0,
                    cx,
                    cy - 3.0,
                    cy - 17.0,
                    escape(&short(suspect, 8)),
                );
            } else if e.event == "send" || e.event == pairs.kind {
                let _ = writeln!(
                    out,
                    r#"<circle class="event {kind}" cx="{cx:.1}" cy="{cy:.1}" r="3" fill="{MSG}"><title>{tip}</title></circle>"#,
                    kind = escape(&e.event),
                );
            } else {
                let (color, r, name) = match e.event.as_str() {
                    "deliver" => ("#2e8b32", 4.0, "dlv"),
                    "broadcast" => (MSG, 4.0, "bcast"),
                    "decide" => ("#7b2fa8", 5.5, "decide"),
                    other => ("#666", 4.0, other),
                };
                let text = match (&e.text, &e.peer) {
                    (Some(text), _) => format!("{name} {text}"),
                    (None, Some(peer)) => format!("{name} {peer}"),
                    (None, None) => name.to_owned(),
                };
                let _ = writeln!(
                    out,
                    r##"<g class="mark {kind}"><title>{tip}</title><circle cx="{cx:.1}" cy="{cy:.1}" r="{r}" fill="{color}" stroke="#fff" stroke-width="1"/><text x="{tx:.1}" y="{ty:.1}" font-size="10" fill="{color}" transform="rotate(-35 {tx:.1} {ty:.1})">{label}</text></g>"##,
                    kind = escape(&e.event),
                    tx = cx + 2.0,
                    ty = cy - 8.0,
                    label = escape(&short(&text, 16)),
                );
            }
        }
    }

    // The legend.
    let ly = TOP + names.len() as f64 * ROW + 20.0;
    let _ = writeln!(
        out,
        r##"<g class="legend" font-size="11"><line x1="10" y1="{ly:.1}" x2="40" y2="{ly:.1}" stroke="{MSG}" stroke-width="1.5" marker-end="url(#arrow)"/><text x="46" y="{t:.1}">message</text><line x1="110" y1="{ly:.1}" x2="134" y2="{ly:.1}" stroke="{LOST}" stroke-dasharray="4 2"/><path d="M134,{a:.1} L144,{b:.1} M134,{b:.1} L144,{a:.1}" stroke="{LOST}" stroke-width="2"/><text x="150" y="{t:.1}">lost</text><line x1="190" y1="{ly:.1}" x2="220" y2="{ly:.1}" stroke="{DUP}" stroke-width="1.5" marker-end="url(#arrow-dup)"/><text x="226" y="{t:.1}">duplicated</text><path d="M300,{a:.1} L310,{b:.1} M300,{b:.1} L310,{a:.1}" stroke="{LOST}" stroke-width="3"/><text x="316" y="{t:.1}">crash</text><polygon points="364,{a:.1} 376,{a:.1} 370,{b:.1}" fill="{DUP}"/><text x="382" y="{t:.1}">suspicion</text><circle cx="450" cy="{ly:.1}" r="4" fill="#2e8b32"/><text x="458" y="{t:.1}">delivery, decision, …</text><line x1="590" y1="{a2:.1}" x2="590" y2="{b2:.1}" stroke="#555" stroke-width="3"/><line x1="590" y1="{ly:.1}" x2="610" y2="{ly:.1}" stroke="#555" stroke-width="2"/><text x="616" y="{t:.1}">restart</text><text x="10" y="{u:.1}" fill="#666">columns follow happens-before (left to right); hover a mark for its event, clocks and text</text></g>"##,
        t = ly + 4.0,
        a = ly - 5.0,
        b = ly + 5.0,
        a2 = ly - 7.0,
        b2 = ly + 7.0,
        u = ly + 22.0,
    );
    out.push_str("</svg>\n");
    out
}

/// The diagram in a self-contained HTML page: no script, no network
/// resource; the `<title>` elements give the hover details.
pub fn html(run: &RunEvents, options: &Options) -> String {
    let title = escape(&format!("mgr run {}", run.run));
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>{title}</title>\n<style>body {{ font-family: sans-serif; margin: 1em; }} .scroll {{ overflow-x: auto; }}</style>\n</head>\n<body>\n<h1>{title}</h1>\n<p>Hover a mark or an arrow for its event, Lamport clock, vector clock and text.</p>\n<div class=\"scroll\">\n{}</div>\n</body>\n</html>\n",
        svg(run, options)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(process: &str, event: &str, peer: Option<&str>, id: Option<u64>, lamport: u64) -> Event {
        Event {
            process: process.into(),
            event: event.into(),
            peer: peer.map(Into::into),
            id,
            lamport,
            vc: vec![lamport],
            text: Some("a <b> & \"c\"".into()),
            ..Default::default()
        }
    }

    /// p1 broadcasts to p2, p3, p4: p2 gets it twice, p3's is lost, p4
    /// gets it and p3 crashes; p4 suspects p3 and decides.
    fn sample() -> RunEvents {
        let mut crash = ev("p3", "crash", None, None, 0);
        crash.by = Some("mgr".into());
        crash.vc.clear();
        RunEvents::from_events(
            4,
            [
                ev("p1", "broadcast", None, Some(1), 1),
                ev("p1", "send", Some("p2"), Some(1), 2),
                ev("p1", "send", Some("p3"), Some(2), 3),
                ev("p1", "send", Some("p4"), Some(3), 4),
                ev("p2", "receive", Some("p1"), Some(1), 3),
                ev("p2", "deliver", Some("p1"), Some(1), 4),
                ev("p2", "receive", Some("p1"), Some(1), 5),
                ev("p3", "receive", Some("p9"), Some(7), 1),
                crash,
                ev("p4", "receive", Some("p1"), Some(3), 5),
                ev("p4", "deliver", Some("p1"), Some(1), 6),
                ev("p4", "crash", Some("p3"), None, 7),
                ev("p4", "decide", None, None, 8),
            ],
        )
    }

    fn count(doc: &roxmltree::Document, class: &str) -> usize {
        doc.descendants().filter(|n| n.attribute("class").is_some_and(|c| c.split(' ').any(|w| w == class))).count()
    }

    #[test]
    fn a_send_to_a_multicast_group_is_paired_with_every_process_that_got_it() {
        // p1 multicasts m1 to the chat's group; p1, p2 and p3 deliver it
        // (p3 twice: a duplicate); p2's REQ to p3 goes to a process as
        // usual, and m2 reaches nobody (lost).
        let run = RunEvents::from_events(
            3,
            [
                ev("p1", "send", Some("239.255.1.2:20001"), Some(1), 1),
                ev("p1", "deliver", Some("p1"), Some(1), 2),
                ev("p2", "deliver", Some("p1"), Some(1), 2),
                ev("p2", "send", Some("p3"), Some(9), 3),
                ev("p3", "deliver", Some("p1"), Some(1), 2),
                ev("p3", "receive", Some("p2"), Some(9), 4),
                ev("p3", "deliver", Some("p1"), Some(1), 5),
                ev("p1", "send", Some("239.255.1.2:20001"), Some(2), 3),
            ],
        );
        let text = svg(&run, &Options::default());
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        assert_eq!(count(&doc, "msg"), 5, "m1 to p1, p2 and p3 twice; the REQ to p3");
        assert_eq!(count(&doc, "dup"), 4, "m1 reached p3 twice: its copies are all marked");
        assert_eq!(count(&doc, "lost"), 1, "m2 reached nobody");
    }

    #[test]
    fn svg_is_well_formed_with_lines_arrows_losses_and_marks() {
        let mut options = Options::default();
        options.members.insert("p1".into(), "lab-01".into());
        let text = svg(&sample(), &options);
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert_eq!(count(&doc, "process"), 4, "one line per process");
        assert_eq!(count(&doc, "msg"), 3, "one arrow per received message: p2 twice, p4 once");
        assert_eq!(count(&doc, "dup"), 2, "both of p2's copies are marked");
        assert_eq!(count(&doc, "dup-label"), 2);
        assert_eq!(count(&doc, "lost"), 1, "the send to p3");
        assert_eq!(count(&doc, "crash"), 1);
        assert_eq!(count(&doc, "suspect"), 1);
        assert!(count(&doc, "mark") >= 4, "broadcast, two deliveries, a decision");
        assert!(text.contains("p1@lab-01"));
        assert!(text.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
        // Every arrow points right: a receive is right of its send.
        for node in doc.descendants().filter(|n| n.has_tag_name("line") && n.attribute("class") == Some("msg")) {
            let x1: f64 = node.attribute("x1").unwrap().parse().unwrap();
            let x2: f64 = node.attribute("x2").unwrap().parse().unwrap();
            assert!(x2 > x1, "an arrow goes left");
        }
        // Every mark has its tooltip.
        for class in ["crash", "suspect", "lost", "mark"] {
            for node in doc.descendants().filter(|n| n.attribute("class").is_some_and(|c| c.starts_with(class))) {
                assert!(node.children().any(|c| c.has_tag_name("title")), "{class} without a title");
            }
        }
        // p3's line stops at its crash: it is shorter than p4's.
        let ends: Vec<f64> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("process"))
            .map(|n| n.attribute("x2").unwrap().parse().unwrap())
            .collect();
        assert!(ends[2] < ends[3]);
    }

    #[test]
    fn a_restarted_process_line_goes_on_after_its_crash() {
        let mut crash = ev("p1", "crash", None, None, 0);
        crash.by = Some("mgr".into());
        crash.vc.clear();
        let run = RunEvents::from_events(
            2,
            [
                ev("p1", "send", Some("p2"), Some(1), 1),
                ev("p2", "receive", Some("p1"), Some(1), 2),
                crash,
                ev("p1", "send", Some("p2"), Some(2), 1),
                ev("p2", "receive", Some("p1"), Some(2), 3),
            ],
        );
        let svg = svg(&run, &Options::default());
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let x = |n: &roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
        let first: Vec<_> = doc.descendants().filter(|n| n.attribute("class") == Some("process")).collect();
        let again: Vec<_> = doc.descendants().filter(|n| n.attribute("class") == Some("process restarted")).collect();
        assert_eq!((first.len(), again.len()), (2, 1), "p1 has a second segment, p2 one");
        let crash_x = doc.descendants().find(|n| n.attribute("class") == Some("crash")).map(|n| {
            let d = n.children().find(|c| c.has_tag_name("path")).unwrap().attribute("d").unwrap().to_owned();
            d[1..].split(',').next().unwrap().parse::<f64>().unwrap()
        });
        assert!(x(&first[0], "x2") <= crash_x.unwrap() + 8.0, "the first segment ends at the crash");
        assert!(x(&again[0], "x1") > x(&first[0], "x2"), "the second starts after it");
        let last_send =
            doc.descendants().filter(|n| n.attribute("class") == Some("msg")).map(|n| x(&n, "x1")).fold(0.0, f64::max);
        assert!(last_send > x(&again[0], "x1") && x(&again[0], "x2") > last_send, "and carries the later send");
        assert_eq!(count(&doc, "restart"), 1, "the restart is marked");
        assert!(again[0].children().any(|c| c.has_tag_name("title") && c.text() == Some("p1 (restarted)")));
        assert_eq!(count(&doc, "msg"), 2, "the sends of both incarnations are arrows");
        assert!(svg.contains(">restart</text>"), "the legend names it");
    }

    #[test]
    fn messages_without_ids_pair_by_text_and_layout_follows_happens_before() {
        // A fair-loss link: no ids, `deliver` is the receipt, and the
        // receiver's clock knows nothing of the sender's.
        let mut events = Vec::new();
        for (i, text) in ["m1", "m2", "m3"].into_iter().enumerate() {
            let mut send = ev("p1", "send", Some("p2"), None, i as u64 + 5);
            send.text = Some(text.into());
            events.push(send);
        }
        for (i, text) in ["m1", "m1", "m3"].into_iter().enumerate() {
            let mut deliver = ev("p2", "deliver", Some("p1"), None, i as u64 + 1);
            deliver.text = Some(text.into());
            events.push(deliver);
        }
        let run = RunEvents::from_events(2, events);
        let text = svg(&run, &Options::default());
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        assert_eq!(count(&doc, "msg"), 3);
        assert_eq!(count(&doc, "dup"), 2, "m1 came twice");
        assert_eq!(count(&doc, "lost"), 1, "m2 never came");
        for node in doc.descendants().filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("msg"))) {
            let x1: f64 = node.attribute("x1").unwrap().parse().unwrap();
            let x2: f64 = node.attribute("x2").unwrap().parse().unwrap();
            assert!(x2 > x1, "an arrow goes left");
        }
    }

    #[test]
    fn html_page_embeds_the_svg_without_scripts_or_network() {
        let page = html(&sample(), &Options::default());
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(!page.contains("<script"));
        assert!(!page.contains("src=") && !page.contains("href=\"http"));
        // The page is well-formed XML apart from its doctype.
        let body = page.trim_start_matches("<!DOCTYPE html>\n");
        roxmltree::Document::parse(body).expect("well-formed");
    }

    #[test]
    fn wide_runs_scale_the_width_not_the_fonts() {
        let mut events = Vec::new();
        for i in 0..300u64 {
            events.push(ev("p1", "send", Some("p2"), Some(i), 2 * i + 1));
            events.push(ev("p2", "receive", Some("p1"), Some(i), 2 * i + 2));
        }
        let text = svg(&RunEvents::from_events(8, events), &Options::default());
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        let width: f64 = doc.root_element().attribute("width").unwrap().parse().unwrap();
        assert!(width > 300.0 * 18.0, "columns keep their room: {width}");
        assert_eq!(count(&doc, "process"), 8);
        assert_eq!(count(&doc, "msg"), 300);
        assert!(!text.contains("font-size=\"0"));
    }
}
