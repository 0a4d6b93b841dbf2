//! Network faults injected at the fair-loss layer: loss, duplication, delay
//! and partitions, applied to every datagram a process sends (and, for
//! partitions, receives), so that the links above and everything built on
//! them really have to cope.
//!
//! The manager gives a run's faults to each instance in `MGR_FAULTS` when it
//! starts, and changes them while it runs with a line on the instance's
//! control pipe (`MGR_CONTROL_FD`), `faults SPEC`. SPEC is the whole new
//! state, words separated by spaces, each optional:
//!
//! ```text
//! loss=0.2 dup=0.1 delay=10-50 partition=p1,p2/p3,p4 seed=7
//! ```
//!
//! `loss` and `dup` are probabilities per datagram; `delay` is a uniform
//! delay in milliseconds; `partition` lists blocks of processes separated by
//! `/`: processes in different blocks cannot exchange datagrams, and
//! processes listed in no block form one more block together. `seed` makes
//! the random choices repeatable: the runtime draws them from a generator
//! seeded with it, the process's name and its incarnation. This file is
//! pure: parsing, printing and decisions; the runtime applies them.

use std::fmt;

/// Longest delay accepted, in milliseconds.
pub const MAX_DELAY_MS: u64 = 60_000;

/// The verb of a line on the control pipe (`MGR_CONTROL_FD`) that sets the
/// faults: `faults SPEC`.
pub const CONTROL_FAULTS: &str = "faults";
/// The verb of the control line of a run's new table after a scale:
/// `peers MGR_PEERS [MGR_ROLES]` (the whole table, in the variables' formats).
pub const CONTROL_PEERS: &str = "peers";

/// The faults in force for one process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Probability that a datagram is sent twice.
    pub dup: f64,
    /// Each datagram waits a uniform time in this range, in milliseconds.
    pub delay_ms: (u64, u64),
    /// Blocks of processes that can talk among themselves only.
    pub partition: Vec<Vec<String>>,
    /// Where the random choices come from: `None` for the system's
    /// randomness, else a generator seeded with it (see the module doc).
    pub seed: Option<u64>,
}

/// A fault specification that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultsError {
    #[error("'{0}' is not of the form key=value (keys: loss, dup, delay, partition, seed)")]
    NotKeyValue(String),
    #[error("unknown fault '{0}' (known: loss, dup, delay, partition, seed)")]
    UnknownKey(String),
    #[error("{key} must be a probability between 0 and 1, not '{value}'")]
    BadProbability { key: String, value: String },
    #[error("delay must be MIN-MAX milliseconds with MIN <= MAX <= {MAX_DELAY_MS}, not '{0}'")]
    BadDelay(String),
    #[error("partition must be blocks of process names such as p1,p2/p3, not '{0}'")]
    BadPartition(String),
    #[error("seed must be a whole number, not '{0}'")]
    BadSeed(String),
    #[error("{0} is in two blocks of the partition")]
    TwiceInPartition(String),
    #[error("'{0}' is not a control line (expected: faults SPEC)")]
    Control(String),
}

impl Faults {
    /// Parses a SPEC (see the module doc); the empty string means no fault.
    pub fn parse(spec: &str) -> Result<Faults, FaultsError> {
        let mut faults = Faults::default();
        for word in spec.split_whitespace() {
            let (key, value) = word.split_once('=').ok_or_else(|| FaultsError::NotKeyValue(shown(word)))?;
            match key {
                "loss" => faults.loss = probability(key, value)?,
                "dup" => faults.dup = probability(key, value)?,
                "delay" => faults.delay_ms = parse_delay(value)?,
                "partition" => faults.partition = parse_partition(value)?,
                "seed" => faults.seed = Some(value.parse().map_err(|_| FaultsError::BadSeed(shown(value)))?),
                _ => return Err(FaultsError::UnknownKey(shown(key))),
            }
        }
        Ok(faults)
    }

    /// No fault at all.
    /// No fault at all (a seed alone changes nothing).
    pub fn is_none(&self) -> bool {
        Faults { seed: None, ..self.clone() } == Faults::default()
    }

    /// The seed of the generator of one process's random choices, from
    /// `seed`, its name and its incarnation: each process draws its own
    /// sequence, the same in every run with the same seed.
    pub fn seed_for(&self, process: &str, incarnation: u64) -> Option<u64> {
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let seed = self.seed?;
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in format!("{seed}/{process}/{incarnation}").bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        Some(hash)
    }

    /// Can a datagram go from process `from` to process `to`?
    pub fn connected(&self, from: &str, to: &str) -> bool {
        self.partition.is_empty() || self.block_of(from) == self.block_of(to)
    }

    /// The block a process is in; those listed nowhere share one more block.
    fn block_of(&self, process: &str) -> usize {
        self.partition.iter().position(|block| block.iter().any(|p| p == process)).unwrap_or(self.partition.len())
    }
}

/// Parses `MIN-MAX` milliseconds (a single number means MIN = MAX).
pub fn parse_delay(value: &str) -> Result<(u64, u64), FaultsError> {
    let bad = || FaultsError::BadDelay(shown(value));
    let (lo, hi) = value.split_once('-').unwrap_or((value, value));
    let lo: u64 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u64 = hi.trim().parse().map_err(|_| bad())?;
    if lo > hi || hi > MAX_DELAY_MS {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// Parses `p1,p2/p3,p4`; the empty string means no partition.
pub fn parse_partition(value: &str) -> Result<Vec<Vec<String>>, FaultsError> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let mut blocks: Vec<Vec<String>> = Vec::new();
    for block in value.split('/') {
        let names: Vec<String> = block.split(',').map(str::trim).map(str::to_owned).collect();
        if names.iter().any(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
            return Err(FaultsError::BadPartition(shown(value)));
        }
        for name in &names {
            if blocks.iter().flatten().any(|n| n == name) || names.iter().filter(|n| *n == name).count() > 1 {
                return Err(FaultsError::TwiceInPartition(shown(name)));
            }
        }
        blocks.push(names);
    }
    Ok(blocks)
}

fn probability(key: &str, value: &str) -> Result<f64, FaultsError> {
    match value.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(FaultsError::BadProbability { key: key.to_owned(), value: shown(value) }),
    }
}

/// A piece of a spec as an error quotes it: control characters escaped,
/// and at most 40 characters. A manager gets specs from the network and
/// sends its errors back: a spec must not write to the reader's terminal,
/// nor come back a megabyte long.
fn shown(text: &str) -> String {
    const KEEP: usize = 40;
    let mut shown = String::new();
    for c in text.chars().take(KEEP) {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    if text.chars().nth(KEEP).is_some() {
        shown.push('…');
    }
    shown
}

/// Prints the SPEC that [`Faults::parse`] reads back, leaving out what is off.
impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = Vec::new();
        if self.loss > 0.0 {
            words.push(format!("loss={}", self.loss));
        }
        if self.dup > 0.0 {
            words.push(format!("dup={}", self.dup));
        }
        if self.delay_ms != (0, 0) {
            words.push(format!("delay={}-{}", self.delay_ms.0, self.delay_ms.1));
        }
        if !self.partition.is_empty() {
            let blocks: Vec<String> = self.partition.iter().map(|b| b.join(",")).collect();
            words.push(format!("partition={}", blocks.join("/")));
        }
        if let Some(seed) = self.seed {
            words.push(format!("seed={seed}"));
        }
        f.write_str(&words.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_reads_back_as_printed() {
        let faults = Faults::parse("loss=0.2 dup=0.1 delay=10-50 partition=p1,p2/p3").unwrap();
        assert_eq!(faults.loss, 0.2);
        assert_eq!(faults.dup, 0.1);
        assert_eq!(faults.delay_ms, (10, 50));
        assert_eq!(faults.partition, vec![vec!["p1".to_owned(), "p2".to_owned()], vec!["p3".to_owned()]]);
        assert_eq!(faults.to_string(), "loss=0.2 dup=0.1 delay=10-50 partition=p1,p2/p3");
        assert_eq!(Faults::parse(&faults.to_string()).unwrap(), faults);
        assert!(Faults::parse("").unwrap().is_none());
        assert_eq!(Faults::parse("delay=7").unwrap().delay_ms, (7, 7));
    }

    #[test]
    fn partitions_separate_blocks_and_the_unlisted_stay_together() {
        let faults = Faults::parse("partition=p1,p2/p3").unwrap();
        assert!(faults.connected("p1", "p2"));
        assert!(!faults.connected("p1", "p3"));
        assert!(!faults.connected("p4", "p3"));
        assert!(faults.connected("p4", "p5"));
        assert!(Faults::default().connected("p1", "p9"));
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        let err = |spec: &str| Faults::parse(spec).unwrap_err().to_string();
        assert_eq!(err("loss=1.5"), "loss must be a probability between 0 and 1, not '1.5'");
        assert_eq!(err("dup=x"), "dup must be a probability between 0 and 1, not 'x'");
        assert!(err("delay=50-10").starts_with("delay must be MIN-MAX"));
        assert!(err("delay=0-90000").starts_with("delay must be MIN-MAX"));
        assert_eq!(err("jitter=3"), "unknown fault 'jitter' (known: loss, dup, delay, partition, seed)");
        assert_eq!(err("loss"), "'loss' is not of the form key=value (keys: loss, dup, delay, partition, seed)");
        assert_eq!(err("seed=-1"), "seed must be a whole number, not '-1'");
        let seeded = Faults::parse("loss=0.5 seed=7").unwrap();
        assert_eq!(seeded.to_string(), "loss=0.5 seed=7");
        assert!(Faults::parse("seed=7").unwrap().is_none(), "a seed alone is no fault");
        assert_eq!(seeded.seed_for("p1", 1), seeded.seed_for("p1", 1));
        assert_ne!(seeded.seed_for("p1", 1), seeded.seed_for("p2", 1));
        assert_ne!(seeded.seed_for("p1", 1), seeded.seed_for("p1", 2));
        assert_eq!(err("partition=p1,p2/p2"), "p2 is in two blocks of the partition");
        assert!(err("partition=p1,/p2").starts_with("partition must be blocks"));
    }

    #[test]
    fn a_refused_spec_is_quoted_short_and_without_control_characters() {
        let err = |spec: &str| Faults::parse(spec).unwrap_err().to_string();
        assert_eq!(
            err("delay=a\0b\x1b[2J"),
            "delay must be MIN-MAX milliseconds with MIN <= MAX <= 60000, not 'a\\u{0}b\\u{1b}[2J'"
        );
        let long = err(&format!("loss={}", "9".repeat(10 << 20)));
        assert_eq!(long, format!("loss must be a probability between 0 and 1, not '{}…'", "9".repeat(40)));
        assert!(err(&format!("partition=p1/{}", "é".repeat(1000))).len() < 200);
    }
}
