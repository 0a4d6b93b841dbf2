//! Merging instances' logs in the order of their stored times (`logs
//! RUN`): each instance's records come in order on a stream of its own,
//! and the line printed next is always the oldest at the head of any of
//! them, a k-way merge that holds one chunk per instance, however large
//! the run's logs are.
//!
//! This file is the merge's pure part: a [`Source`] is the chunk an
//! instance sent last, read record by record; [`next`] says which source's
//! head goes first. Waiting for chunks is `commands/logs.rs`'s.

use memchr::memchr;
use mgr_proto::{OutputChunk, record};
use regex::bytes::Regex;

use crate::render::Line;

/// Which lines are wanted, beside their order.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Lines stored before this time (Unix ms) are skipped.
    pub since_ms: u64,
    /// Only lines whose text matches.
    pub grep: Option<Regex>,
}

impl Filter {
    fn wants(&self, time_ms: u64, text: &[u8]) -> bool {
        time_ms >= self.since_ms && self.grep.as_ref().is_none_or(|re| re.is_match(text))
    }
}

/// One instance's records as they arrive, read one at a time.
#[derive(Debug, Default)]
pub struct Source {
    chunk: Option<OutputChunk>,
    /// Byte offset of the next record in the chunk's records.
    pos: usize,
    /// Sequence number of the next numbered record.
    seq: u64,
    /// The time in force (the last `t` record's, or the chunk's).
    time_ms: u64,
    /// The next wanted record is at `pos`, and this is its time.
    head: Option<u64>,
}

impl Source {
    /// Takes the instance's next chunk; the one before must be used up.
    pub fn push(&mut self, chunk: OutputChunk) {
        debug_assert!(self.chunk.is_none(), "a chunk pushed over another");
        self.pos = 0;
        self.seq = chunk.first_seq;
        self.time_ms = chunk.time_ms;
        self.chunk = Some(chunk);
        self.head = None;
    }

    /// The chunk the lines come from (its run, instance and member).
    pub fn chunk(&self) -> Option<&OutputChunk> {
        self.chunk.as_ref()
    }

    /// The stored time of the next wanted line, reading past time records
    /// and unwanted lines; `None` once the chunk is used up (then it is
    /// dropped, and the source waits for the next).
    pub fn head(&mut self, filter: &Filter) -> Option<u64> {
        if self.head.is_some() {
            return self.head;
        }
        let chunk = self.chunk.as_ref()?;
        let records = &chunk.records[..];
        while self.pos < records.len() {
            let end = memchr(b'\n', &records[self.pos..]).map_or(records.len(), |i| self.pos + i);
            let rec = &records[self.pos..end];
            let text = rec.get(2..).unwrap_or_default();
            match rec.first() {
                None => {}
                Some(&record::TIME) => {
                    self.time_ms = std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()).unwrap_or(self.time_ms);
                }
                Some(_) if filter.wants(self.time_ms, text) => {
                    self.head = Some(self.time_ms);
                    return self.head;
                }
                Some(_) => self.seq += 1,
            }
            self.pos = end + 1;
        }
        self.chunk = None;
        None
    }

    /// Hands `f` the line at the head (found by [`Source::head`]) and
    /// moves past it.
    pub fn take<T>(&mut self, f: impl FnOnce(&OutputChunk, Line<'_>) -> T) -> Option<T> {
        self.head?;
        let chunk = self.chunk.as_ref()?;
        let records = &chunk.records[..];
        let end = memchr(b'\n', &records[self.pos..]).map_or(records.len(), |i| self.pos + i);
        let rec = &records[self.pos..end];
        let line = Line { tag: rec[0], text: rec.get(2..).unwrap_or_default(), seq: self.seq, time_ms: self.time_ms };
        let out = f(chunk, line);
        self.pos = end + 1;
        self.seq += 1;
        self.head = None;
        Some(out)
    }
}

/// The source whose head goes first (the oldest; the first source among
/// equals), and the head it goes first of: its lines may follow one
/// another while they are not later than that one, `None` when no other
/// source holds a line.
pub fn next(heads: impl Iterator<Item = Option<u64>>) -> Option<(usize, Option<(u64, usize)>)> {
    let mut first: Option<(u64, usize)> = None;
    let mut second: Option<(u64, usize)> = None;
    for (i, head) in heads.enumerate() {
        let Some(time) = head else { continue };
        let key = (time, i);
        if first.is_none_or(|f| key < f) {
            second = first;
            first = Some(key);
        } else if second.is_none_or(|s| key < s) {
            second = Some(key);
        }
    }
    first.map(|(_, i)| (i, second))
}

/// Whether a line of source `i` at `time` still goes before `bound` (the
/// next source's head, from [`next`]).
pub fn before(time: u64, i: usize, bound: Option<(u64, usize)>) -> bool {
    bound.is_none_or(|b| (time, i) < b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(instance: &str, first_seq: u64, time_ms: u64, records: &str) -> OutputChunk {
        OutputChunk {
            run: "r1".into(),
            instance: instance.into(),
            member: "m".into(),
            first_seq,
            time_ms,
            records: records.as_bytes().to_vec().into(),
        }
    }

    /// Merges whole logs given as chunks, the way `logs` does.
    fn merge(mut logs: Vec<Vec<OutputChunk>>, filter: &Filter) -> Vec<String> {
        let mut sources: Vec<Source> = logs.iter().map(|_| Source::default()).collect();
        for log in &mut logs {
            log.reverse();
        }
        let mut out = Vec::new();
        loop {
            for (source, log) in sources.iter_mut().zip(&mut logs) {
                while source.head(filter).is_none() {
                    match log.pop() {
                        Some(chunk) => source.push(chunk),
                        None => break,
                    }
                }
            }
            let Some((i, bound)) = next(sources.iter_mut().map(|s| s.head(filter))) else { break };
            while let Some(time) = sources[i].head(filter).filter(|t| before(*t, i, bound)) {
                let line = sources[i]
                    .take(|c, l| format!("{time} {}#{} {}", c.instance, l.seq, String::from_utf8_lossy(l.text)));
                out.extend(line);
            }
        }
        out
    }

    #[test]
    fn lines_of_several_instances_come_out_in_time_order() {
        let p1 = vec![chunk("p1", 1, 100, "m started\nt 105\no a\nt 120\no c\n"), chunk("p1", 4, 120, "t 130\no e\n")];
        let p2 = vec![chunk("p2", 1, 101, "m started\nt 110\no b\no b2\n"), chunk("p2", 4, 110, "t 125\no d\n")];
        assert_eq!(
            merge(vec![p1, p2], &Filter::default()),
            [
                "100 p1#1 started",
                "101 p2#1 started",
                "105 p1#2 a",
                "110 p2#2 b",
                "110 p2#3 b2",
                "120 p1#3 c",
                "125 p2#4 d",
                "130 p1#4 e",
            ]
        );
    }

    #[test]
    fn equal_times_keep_the_order_of_the_instances() {
        let p1 = vec![chunk("p1", 1, 5, "o a\no b\n")];
        let p2 = vec![chunk("p2", 1, 5, "o c\n")];
        assert_eq!(merge(vec![p2, p1], &Filter::default()), ["5 p2#1 c", "5 p1#1 a", "5 p1#2 b"]);
    }

    #[test]
    fn a_filter_skips_lines_but_keeps_their_numbers() {
        let p1 = vec![chunk("p1", 1, 100, "o old\nt 200\no new one\no other\no new two\n")];
        let filter = Filter { since_ms: 150, grep: Some(Regex::new("^new").unwrap()) };
        assert_eq!(merge(vec![p1], &filter), ["200 p1#2 new one", "200 p1#4 new two"]);
    }

    #[test]
    fn an_empty_or_time_only_chunk_is_used_up_at_once() {
        let mut source = Source::default();
        source.push(chunk("p1", 3, 1, "t 2\n"));
        assert_eq!(source.head(&Filter::default()), None);
        assert!(source.chunk().is_none());
        source.push(chunk("p1", 3, 2, "o x\n"));
        assert_eq!(source.head(&Filter::default()), Some(2));
    }
}
