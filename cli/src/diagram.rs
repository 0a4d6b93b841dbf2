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

/// How much earlier (by the wall clock) an event must be written for a
/// process's first event to be drawn after it: more than the clocks of a
/// lab's machines differ, less than a run's events are apart.
const LATE_MS: u64 = 100;

/// Fixed sizes: fonts never scale, the width grows with the columns.
const LEFT: f64 = 130.0;
const RIGHT: f64 = 70.0;
const TOP: f64 = 60.0;
const ROW: f64 = 70.0;
const LEGEND: f64 = 70.0;
/// The narrowest column: marks (r ≤ 5.5) stay apart.
const NARROW: f64 = 12.0;
/// The narrowest column that holds a label: parallel labels rotated by 35°
/// are 22 · sin 35° ≈ 12.6 px apart, more than a 10 px font's height.
const LABELLED: f64 = 22.0;
/// The longest label, in characters; longer texts are cut at a word, and
/// the mark's tooltip has them whole.
const LABEL_CHARS: usize = 18;
const MSG: &str = "#3465a4";
const DELIVER: &str = "#2e8b32";
const DECIDE: &str = "#7b2fa8";
const OTHER: &str = "#666";
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
    /// Answers and announcements paired by [`pair_replies`].
    replies: std::collections::HashSet<Node>,
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
    pair_replies(names, events, &mut pairs);
    pairs
}

/// Events that are no link's and no failure detector's, but one process's
/// answer or announcement to another, named as in the past tense on the
/// side that got it: the ack lab's `ack` → `acked`, a receiver's `register`
/// → discovery's `registered`, a multicast peer's `report` → the
/// comparator's `reported`. An event X at p naming q is paired with the
/// first event X-ed (or X-d) at q naming p with the same id (or both
/// without), each once, and drawn as a message from X to X-ed.
fn pair_replies(names: &[String], events: &[&[Event]], pairs: &mut Pairs) {
    let replyish = |e: &Event| {
        !matches!(e.event.as_str(), "send" | "receive" | "deliver" | "broadcast" | "decide" | "propose")
            && !is_crash_record(e)
            && !is_suspicion(e)
            && e.peer.as_ref().is_some_and(|peer| names.contains(peer))
            && e.peer.as_deref() != Some(e.process.as_str())
    };
    let mut used: std::collections::HashSet<Node> = std::collections::HashSet::new();
    for (p, es) in events.iter().enumerate() {
        for (i, e) in es.iter().enumerate() {
            if !replyish(e) {
                continue;
            }
            let Some(q) = names.iter().position(|n| Some(n) == e.peer.as_ref()) else { continue };
            let (past, past_d) = (format!("{}ed", e.event), format!("{}d", e.event));
            let answer = events[q].iter().enumerate().position(|(j, f)| {
                !used.contains(&(q, j))
                    && replyish(f)
                    && (f.event == past || f.event == past_d)
                    && f.peer.as_deref() == Some(names[p].as_str())
                    && f.id == e.id
            });
            let Some(j) = answer else { continue };
            used.insert((q, j));
            pairs.receives.insert((p, i), vec![(q, j)]);
            pairs.send_of.insert((q, j), (p, i));
            pairs.replies.insert((p, i));
        }
    }
}

/// Each event's column: one after the event before it on its process and
/// one after the send it receives (a Lamport clock over the drawn
/// messages). Should the pairing contradict the processes' orders (a cycle),
/// the receive that unblocks the rest loses its constraint.
fn columns(events: &[&[Event]], pairs: &Pairs) -> Vec<Vec<usize>> {
    // A process whose first event depends on nothing (no message received)
    // would start in column 0 however late it came: it starts after every
    // event written [`LATE_MS`] or more before it, by the wall clock. Moving
    // one start may move others' events: repeat until nothing moves (the
    // starts only grow, so this ends; a few rounds do in practice).
    let mut starts = vec![0; events.len()];
    let mut column = columns_from(events, pairs, &starts);
    for _ in 0..8 {
        let next = late_starts(events, pairs, &column);
        if next.iter().zip(&starts).all(|(n, s)| n <= s) {
            break;
        }
        starts = next.iter().zip(&starts).map(|(n, s)| *n.max(s)).collect();
        column = columns_from(events, pairs, &starts);
    }
    column
}

/// The column each process's first event must not come before, by the
/// wall clock, given the columns so far (see [`columns`]).
fn late_starts(events: &[&[Event]], pairs: &Pairs, column: &[Vec<usize>]) -> Vec<usize> {
    events
        .iter()
        .enumerate()
        .map(|(p, es)| {
            let Some(e) = es.first().filter(|e| e.time_ms > 0 && !pairs.send_of.contains_key(&(p, 0))) else {
                return 0;
            };
            let before = |(q, f): (usize, &&[Event])| {
                f.iter()
                    .zip(&column[q])
                    .filter(|(g, _)| g.time_ms > 0 && g.time_ms + LATE_MS < e.time_ms)
                    .map(|(_, c)| c + 1)
                    .max()
            };
            events.iter().enumerate().filter(|(q, _)| *q != p).filter_map(before).max().unwrap_or(0)
        })
        .collect()
}

/// [`columns`], with the first event of process p in column `starts[p]` at
/// the earliest.
fn columns_from(events: &[&[Event]], pairs: &Pairs, starts: &[usize]) -> Vec<Vec<usize>> {
    let mut column: Vec<Vec<usize>> =
        events.iter().zip(starts).map(|(es, &s)| (0..es.len()).map(|i| if i == 0 { s } else { 0 }).collect()).collect();
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
            column[q][j] = column[q][j].max(column[p][i] + step(events, (p, i), (q, j)));
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

/// How many columns `to` comes after `from`: one, but for the sends of a
/// burst (a send after a send of the same process, to another process),
/// which leave from one point, as a broadcast's copies do.
fn step(events: &[&[Event]], from: Node, to: Node) -> usize {
    let (a, b) = (&events[from.0][from.1], &events[to.0][to.1]);
    let burst = from.0 == to.0
        && a.event == "send"
        && b.event == "send"
        && a.peer != b.peer
        && a.peer.as_deref() != Some(a.process.as_str())
        && b.peer.as_deref() != Some(b.process.as_str());
    usize::from(!burst)
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

/// A short label: at most `max` characters, with an ellipsis when cut;
/// cut after a whole word when one ends in its second half.
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    let next = text.chars().nth(max.saturating_sub(1));
    let at_word = match next {
        Some(' ') => None,
        _ => cut.rfind(' ').filter(|&i| cut[..i].chars().count() >= max / 2),
    };
    let mut cut = match at_word {
        Some(i) => cut[..i].to_owned(),
        None => cut,
    };
    cut.push('…');
    cut
}

/// Whether the mark of `e` carries a text label.
fn has_label(e: &Event, pairs: &Pairs) -> bool {
    !is_crash_record(e) && (is_suspicion(e) || (e.event != "send" && e.event != pairs.kind))
}

/// The colour, radius and short name of an upper layer's event; the
/// legend shows the same.
fn mark_style(event: &str) -> (&'static str, f64, Option<&'static str>) {
    match event {
        "deliver" => (DELIVER, 4.0, Some("dlv")),
        "broadcast" => (MSG, 4.0, Some("bcast")),
        "decide" => (DECIDE, 5.5, Some("decide")),
        _ => (OTHER, 4.0, None),
    }
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
    // Columns are wide when there are few and narrow when there are many:
    // a column that holds only the ends of arrows is as narrow as marks
    // allow, one that holds a label is wide enough that the next label on
    // its row (rotated, parallel) cannot touch it. A long run is wide and
    // scrolls; its labels never overlap.
    let dx = (900.0 / columns_used as f64).clamp(NARROW, 48.0);
    let mut labelled = vec![false; columns_used];
    for (p, es) in events.iter().enumerate() {
        for (i, e) in es.iter().enumerate() {
            if has_label(e, &pairs) {
                labelled[column[p][i]] = true;
            }
        }
    }
    let x0 = LEFT + 30.0;
    let mut xs = Vec::with_capacity(columns_used + 1);
    let mut at = x0;
    for &wide in &labelled {
        xs.push(at);
        at += if wide { dx.max(LABELLED) } else { dx };
    }
    let x = |c: usize| xs[c];
    let y = |p: usize| TOP + 20.0 + p as f64 * ROW;
    // The legend needs its room even for a short run.
    let width = (at + RIGHT).max(760.0);
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
            r#"<text class="label" x="{:.1}" y="{:.1}" text-anchor="end" font-weight="bold"><title>{}</title>{}</text>"#,
            LEFT - 8.0,
            y(p) + 4.0,
            escape(&label(p)),
            escape(&short(&label(p), 18))
        );
    }

    // The messages, under the marks.
    for (&(p, i), receives) in &pairs.receives {
        let send = &events[p][i];
        let (x1, y1) = (x(column[p][i]), y(p));
        if receives.is_empty() {
            let target = names.iter().position(|n| Some(n) == send.peer.as_ref());
            // A short stub towards its destination's row, flatter than the
            // arrows that leave from the same point, so that it never lies
            // along one of them.
            let (x2, y2) = match target {
                Some(q) if q != p => (x1 + 22.0, y1 + (y(q) - y1).signum() * 13.0),
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
        let (class, color, marker) = if dup {
            ("msg dup", DUP, "arrow-dup")
        } else if pairs.replies.contains(&(p, i)) {
            ("msg reply", MSG, "arrow")
        } else {
            ("msg", MSG, "arrow")
        };
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
                let (color, r, name) = mark_style(&e.event);
                let name = name.unwrap_or(e.event.as_str());
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
                    label = escape(&short(&text, LABEL_CHARS)),
                );
            }
        }
    }

    // The legend.
    legend(&mut out, TOP + names.len() as f64 * ROW + 20.0, width);
    out.push_str("</svg>\n");
    out
}

/// The legend at height `ly`: every kind of mark, in the colours the
/// marks use, flowing onto a second row when the drawing is narrow.
fn legend(out: &mut String, ly: f64, width: f64) {
    // Each item: its label and its symbol, drawn at (0, 0) and 30 px wide.
    let dot = |color: &str| format!(r#"<circle cx="12" cy="0" r="4" fill="{color}"/>"#);
    let items: Vec<(&str, String)> = vec![
        ("message", format!(r#"<line x1="0" y1="0" x2="28" y2="0" stroke="{MSG}" stroke-width="1.5" marker-end="url(#arrow)"/>"#)),
        (
            "lost",
            format!(
                r#"<line x1="0" y1="0" x2="20" y2="0" stroke="{LOST}" stroke-dasharray="4 2"/><path d="M20,-5 L30,5 M20,5 L30,-5" stroke="{LOST}" stroke-width="2"/>"#
            ),
        ),
        ("duplicated", format!(r#"<line x1="0" y1="0" x2="28" y2="0" stroke="{DUP}" stroke-width="1.5" marker-end="url(#arrow-dup)"/>"#)),
        ("crash", format!(r#"<path d="M7,-5 L17,5 M7,5 L17,-5" stroke="{LOST}" stroke-width="3"/>"#)),
        ("suspicion", format!(r#"<polygon points="6,-5 18,-5 12,5" fill="{DUP}"/>"#)),
        ("broadcast", dot(mark_style("broadcast").0)),
        ("delivery", dot(mark_style("deliver").0)),
        ("decision", format!(r#"<circle cx="12" cy="0" r="5.5" fill="{}"/>"#, mark_style("decide").0)),
        ("other event", dot(OTHER)),
        ("restart", r##"<line x1="6" y1="-7" x2="6" y2="7" stroke="#555" stroke-width="3"/><line x1="6" y1="0" x2="26" y2="0" stroke="#555" stroke-width="2"/>"##.to_owned()),
    ];
    let _ = write!(out, r#"<g class="legend" font-size="11">"#);
    let (mut lx, mut row) = (10.0, 0.0);
    for (name, symbol) in items {
        let room = 36.0 + name.chars().count() as f64 * 6.5 + 14.0;
        if lx + room > width - 10.0 {
            lx = 10.0;
            row += 20.0;
        }
        let _ = write!(
            out,
            r#"<g class="legend-item" transform="translate({lx:.1},{:.1})">{symbol}<text x="36" y="4">{name}</text></g>"#,
            ly + row
        );
        lx += room;
    }
    let _ = writeln!(
        out,
        r##"<text x="10" y="{:.1}" fill="#666">columns follow happens-before (left to right); hover a mark for its event, clocks and text</text></g>"##,
        ly + row + 22.0
    );
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

    /// The x of every mark label, by row (its y).
    fn label_xs(doc: &roxmltree::Document) -> BTreeMap<i64, Vec<f64>> {
        let mut rows: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for g in doc.descendants().filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("mark"))) {
            let text = g.children().find(|c| c.has_tag_name("text")).unwrap();
            let x: f64 = text.attribute("x").unwrap().parse().unwrap();
            let y: f64 = text.attribute("y").unwrap().parse().unwrap();
            rows.entry(y as i64).or_default().push(x);
        }
        rows
    }

    #[test]
    fn labels_on_a_row_never_come_closer_than_their_height_and_are_cut_at_a_word() {
        // Every event of p1 a labelled mark, one after the other, and p2's
        // link traffic in between: the labels' columns are wide, the
        // others narrow.
        let mut events = Vec::new();
        for i in 0..100u64 {
            let mut mark = ev("p1", "multicast", None, Some(i), 3 * i + 1);
            mark.text = Some(format!("message number {i} of the long run"));
            events.push(mark);
            events.push(ev("p1", "send", Some("p2"), Some(i), 3 * i + 2));
            events.push(ev("p2", "receive", Some("p1"), Some(i), 3 * i + 3));
        }
        let text = svg(&RunEvents::from_events(2, events), &Options::default());
        let doc = roxmltree::Document::parse(&text).unwrap();
        for xs in label_xs(&doc).values() {
            for pair in xs.windows(2) {
                assert!(pair[1] - pair[0] >= LABELLED - 0.01, "labels {pair:?} overlap");
            }
        }
        let label = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("mark multicast"))
            .and_then(|g| g.children().find(|c| c.has_tag_name("text")))
            .and_then(|t| t.text())
            .unwrap();
        assert_eq!(label, "multicast message…", "cut after a word, not inside one");
        assert_eq!(short("p1@a-very-long-member-name", 18), "p1@a-very-long-me…", "one long word is cut inside");
    }

    #[test]
    fn replies_and_registrations_are_arrows_and_a_late_process_starts_late() {
        // The ack lab: p2 registers with discovery p1, the client p3 sends a
        // request to p2, which acks it, at the same millisecond as p3 takes
        // the ack (the names tell the direction); p4 only registers, 5 s
        // later, and nobody hears of it.
        let at = |mut e: Event, time_ms: u64| {
            e.time_ms = time_ms;
            e
        };
        let run = RunEvents::from_events(
            4,
            [
                at(ev("p2", "register", Some("p1"), None, 1), 1_000),
                at(ev("p1", "registered", Some("p2"), None, 1), 1_001),
                at(ev("p3", "send", Some("p2"), Some(1), 1), 1_200),
                at(ev("p2", "deliver", Some("p3"), Some(1), 2), 1_201),
                at(ev("p2", "ack", Some("p3"), Some(1), 3), 1_250),
                at(ev("p3", "acked", Some("p2"), Some(1), 2), 1_250),
                at(ev("p4", "register", Some("p9"), None, 1), 6_000),
            ],
        );
        let text = svg(&run, &Options::default());
        let doc = roxmltree::Document::parse(&text).unwrap();
        assert_eq!(count(&doc, "reply"), 2, "the registration and the ack:\n{text}");
        assert_eq!(count(&doc, "msg"), 3, "and the request");
        assert_eq!(count(&doc, "lost"), 0);
        for node in doc.descendants().filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("msg"))) {
            let x1: f64 = node.attribute("x1").unwrap().parse().unwrap();
            let x2: f64 = node.attribute("x2").unwrap().parse().unwrap();
            assert!(x2 > x1, "every arrow points right");
        }
        // p4's only event comes after every other one.
        let xs = label_xs(&doc);
        let p4 = xs.values().last().unwrap()[0];
        let before = xs.values().rev().skip(1).flatten().fold(0.0f64, |a, &b| a.max(b));
        assert!(p4 > before, "p4's late registration is drawn after the rest: {xs:?}");
    }

    #[test]
    fn the_legend_shows_each_mark_in_its_own_colour() {
        let text = svg(&sample(), &Options::default());
        let doc = roxmltree::Document::parse(&text).unwrap();
        let legend: Vec<(String, String)> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("legend-item"))
            .map(|g| {
                let name = g.children().find(|c| c.has_tag_name("text")).and_then(|t| t.text()).unwrap().to_owned();
                let fill = g.descendants().find_map(|c| c.attribute("fill")).unwrap_or_default().to_owned();
                (name, fill)
            })
            .collect();
        let of = |name: &str| legend.iter().find(|(n, _)| n == name).map(|(_, f)| f.clone()).unwrap();
        for (event, name) in [("broadcast", "broadcast"), ("deliver", "delivery"), ("decide", "decision")] {
            let mark = doc
                .descendants()
                .find(|n| n.attribute("class") == Some(&format!("mark {event}")))
                .and_then(|g| g.children().find(|c| c.has_tag_name("circle")))
                .and_then(|c| c.attribute("fill"))
                .unwrap();
            assert_eq!(of(name), mark, "{name} in the legend as on the drawing");
        }
        assert_eq!(of("other event"), OTHER);
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
        assert!(width > 300.0 * NARROW, "columns keep their room: {width}");
        assert!(width < 300.0 * LABELLED, "columns of arrows only are narrow: {width}");
        assert_eq!(count(&doc, "process"), 8);
        assert_eq!(count(&doc, "msg"), 300);
        assert!(!text.contains("font-size=\"0"));
    }
}
