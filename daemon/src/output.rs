//! Output: the per-instance log of numbered lines, and its subscribers.
//!
//! Every line an instance prints is appended, as one *record*, to the
//! instance's log file in the state dir, before anyone sees it. Subscribers
//! (`logs`, the stream of `launch`) read that file from any sequence number
//! and then follow it, woken by a `watch` channel that publishes how far the
//! file is written. Because live readers and replaying readers read the same
//! bytes, there is no seam between replay and live output, and a slow or absent
//! viewer can never block an instance nor lose a line: it only falls behind in
//! the file.
//!
//! Record format (the same bytes travel in `OutputChunk.records`): one tag
//! byte, a space, the text, `\n`. Tags are in [`mgr_proto::record`]: `o`
//! stdout, `e` stderr, `m` a note by the manager (started, exited…), all three
//! numbered 1, 2, 3… per instance; and `t`, the Unix time in milliseconds of
//! the records after it, which is not numbered. Text is raw bytes: nothing here
//! assumes UTF-8.
//!
//! This module must not know about processes or gRPC: the supervisor feeds a
//! [`Writer`] with bytes, and control turns [`Chunk`]s into protobuf.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use memchr::{memchr, memchr_iter};
use mgr_proto::record;
use tokio::sync::{mpsc, watch};

/// Longest line kept as one record. A longer line is split into records of
/// at most this many bytes, each but the last ending in [`SPLIT_MARKER`], so
/// nothing is lost and a reader sees that the line was split.
pub const MAX_LINE: usize = 16 * 1024;

/// Appended to each piece of a line longer than [`MAX_LINE`] but the last.
pub const SPLIT_MARKER: &[u8] = " \u{21a9} [mgr: line split at 16384 bytes]".as_bytes();

/// Bytes of the most recent complete records kept in memory per instance.
const TAIL_BYTES: usize = 8 * 1024;

/// Most bytes of records sent in one [`Chunk`].
const CHUNK_BYTES: usize = 256 * 1024;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn tag(self) -> u8 {
        match self {
            Stream::Stdout => record::STDOUT,
            Stream::Stderr => record::STDERR,
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// Most bytes one instance's log keeps when nothing else is said
/// (`mgr start --max-log-bytes`, `launch --max-log-bytes`).
pub const DEFAULT_CAP: u64 = 64 << 20;

/// The smallest cap a log may be given: a few segments of a few pipe reads.
pub const MIN_CAP: u64 = 1 << 20;

/// The free space a log's file system must have again before a log that
/// failed for lack of space writes again. Without it, cutting back a half
/// written record frees a page, the next few lines fit in it, and the log
/// flickers between dropping and resuming while the disk stays full.
const RESUME_FREE_BYTES: u64 = 1 << 20;

/// One file of a log. A log is kept as segments so that, under its cap, the
/// oldest can be dropped without renaming or rewriting anything: readers
/// keep exact positions. Byte offsets run on across segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Where it starts in the log's bytes.
    pub start: u64,
    /// Sequence number of its first numbered record.
    pub first_seq: u64,
    pub path: PathBuf,
}

/// The file of the segment of log `base` whose first record is
/// `first_seq`: `base` itself for the first, `base.N` for the others.
pub fn segment_path(base: &Path, first_seq: u64) -> PathBuf {
    if first_seq <= 1 {
        return base.to_owned();
    }
    let mut name = base.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{first_seq}"));
    base.with_file_name(name)
}

/// How far an instance's log is written, as published to subscribers.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Where the complete records end (in the log's bytes, across segments).
    pub offset: u64,
    /// Sequence number of the last numbered record (0 when there is none).
    pub seq: u64,
    /// The instance has ended for good: no record will follow unless a user
    /// restarts it. Followers stop once they have read up to `offset`.
    pub closed: bool,
    /// The last complete records, at most [`TAIL_BYTES`], starting at a
    /// record boundary; numbered records in it end at `seq`.
    pub tail: Arc<Vec<u8>>,
    /// The segments kept, oldest first (never empty once written).
    pub segments: Arc<Vec<Segment>>,
    /// Why the log cannot be written now (a full disk), while it cannot:
    /// the instance runs on, its output is dropped and counted.
    pub failing: Option<Arc<str>>,
    /// Lines dropped because the log could not be written, in all.
    pub unwritten: u64,
}

/// A run of whole records read from one instance's log.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub run: Arc<str>,
    pub instance: Arc<str>,
    pub member: Arc<str>,
    /// Sequence number of the first numbered record in `records`.
    pub first_seq: u64,
    /// Time (Unix ms) in force before the first record (0 if not known).
    pub time_ms: u64,
    pub records: Bytes,
}

/// The only writer of one instance's log. Owned by whoever drains the
/// instance's pipes; lives across restarts so numbering continues. Its file
/// is open only while it writes: a closed log (an ended instance) holds no
/// descriptor and no buffer, however long the manager keeps it.
#[derive(Debug)]
pub struct Writer {
    /// The log's first segment; the others are named after it.
    path: PathBuf,
    /// The last segment, while open.
    file: Option<File>,
    segments: Vec<Segment>,
    offset: u64,
    seq: u64,
    last_time_ms: u64,
    /// An incomplete last line per stream, waiting for its newline.
    partial: [Vec<u8>; 2],
    /// Records built from one read, written with one `write` call.
    buf: Vec<u8>,
    /// Sequence number of the first numbered record in `buf`.
    buf_first_seq: u64,
    /// Most bytes the log keeps, and the size of a segment.
    cap: u64,
    segment_bytes: u64,
    /// Output dropped because the log cannot be written, since when it
    /// could last.
    failing: Option<Failing>,
    progress: watch::Sender<Progress>,
}

/// What is being dropped while a log cannot be written.
#[derive(Debug)]
struct Failing {
    error: String,
    /// The last failure was a full file system (ENOSPC).
    no_space: bool,
    lines: u64,
    bytes: u64,
}

/// A writer whose file is still to be opened; see [`Writer::prepare`].
#[derive(Debug)]
pub struct Unopened {
    path: PathBuf,
    cap: u64,
    progress: watch::Sender<Progress>,
}

impl Unopened {
    /// Opens (creating it) the log's first segment for appending.
    pub fn open(self) -> io::Result<Writer> {
        let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        let offset = file.metadata()?.len();
        let segments = vec![Segment { start: 0, first_seq: 1, path: self.path.clone() }];
        self.progress.send_modify(|p| {
            p.offset = offset;
            p.segments = Arc::new(segments.clone());
        });
        Ok(Writer::new(self.path, Some(file), segments, offset, 0, self.cap, self.progress))
    }
}

/// Where subscribers find one instance's log. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogHandle {
    pub run: Arc<str>,
    pub instance: Arc<str>,
    pub member: Arc<str>,
    progress: watch::Receiver<Progress>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Writer {
    /// Creates (or appends to) the log at `path` and returns its writer and
    /// the handle subscribers use.
    pub fn create(path: &Path, run: &str, instance: &str, member: &str, cap: u64) -> io::Result<(Self, LogHandle)> {
        let (unopened, handle) = Writer::prepare(path, run, instance, member, cap);
        Ok((unopened.open()?, handle))
    }

    fn new(
        path: PathBuf,
        file: Option<File>,
        segments: Vec<Segment>,
        offset: u64,
        seq: u64,
        cap: u64,
        progress: watch::Sender<Progress>,
    ) -> Writer {
        let cap = cap.max(MIN_CAP);
        Writer {
            path,
            file,
            segments,
            offset,
            seq,
            last_time_ms: 0,
            partial: [Vec::new(), Vec::new()],
            // Buffers grow with the instance's output rate: a quiet instance
            // costs next to nothing, which keeps the manager small.
            buf: Vec::new(),
            buf_first_seq: seq + 1,
            cap,
            // Four segments a cap: at most a quarter of it goes at once.
            segment_bytes: cap / 4,
            failing: None,
            progress,
        }
    }

    /// The handle of a log whose file is not opened yet: opening it (which
    /// allocates an inode, slow on a busy ext4) can then run elsewhere, in
    /// parallel with starting the processes. Subscribers see an empty log
    /// until the writer writes.
    pub fn prepare(path: &Path, run: &str, instance: &str, member: &str, cap: u64) -> (Unopened, LogHandle) {
        let (progress, rx) = watch::channel(Progress::default());
        let handle = LogHandle { run: run.into(), instance: instance.into(), member: member.into(), progress: rx };
        (Unopened { path: path.to_owned(), cap, progress }, handle)
    }

    /// The writer of an existing log, closed (its file is opened by the first
    /// note or line), numbering on after its last record: for the instances
    /// of a run the manager found in its state dir at start (see [`scan`]).
    pub fn resume(path: &Path, run: &str, instance: &str, member: &str, found: Scanned, cap: u64) -> (Self, LogHandle) {
        let (unopened, handle) = Writer::prepare(path, run, instance, member, cap);
        unopened.progress.send_modify(|p| {
            p.offset = found.end;
            p.seq = found.seq;
            p.closed = true;
            p.segments = Arc::new(found.segments.clone());
        });
        let writer = Writer::new(unopened.path, None, found.segments, found.end, found.seq, cap, unopened.progress);
        (writer, handle)
    }

    /// Takes bytes read from one of the instance's pipes: every complete
    /// line becomes a numbered record; an incomplete last line waits.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let tag = stream.tag();
        let mut rest = data;
        let partial = &mut self.partial[stream.index()];
        if !partial.is_empty() {
            match memchr(b'\n', rest) {
                Some(i) => {
                    let mut line = std::mem::take(partial);
                    line.extend_from_slice(&rest[..i]);
                    rest = &rest[i + 1..];
                    self.push_line(tag, &line);
                }
                None => {
                    partial.extend_from_slice(rest);
                    rest = &[];
                }
            }
        }
        let mut start = 0;
        for end in memchr_iter(b'\n', rest) {
            self.push_line(tag, &rest[start..end]);
            start = end + 1;
        }
        let partial = &mut self.partial[stream.index()];
        partial.extend_from_slice(&rest[start..]);
        // A line that never ends must not grow without bound: split it now.
        if partial.len() > MAX_LINE {
            let line = std::mem::take(partial);
            let keep = line.len() - line.len() % MAX_LINE;
            let (full, remainder) = line.split_at(if keep == line.len() { keep - MAX_LINE } else { keep });
            for piece in full.chunks(MAX_LINE) {
                self.push_piece(tag, piece, true);
            }
            self.partial[stream.index()] = remainder.to_vec();
        }
        self.flush()
    }

    /// Ends a stream (its pipe closed): a last line without a newline still
    /// becomes a record.
    pub fn end(&mut self, stream: Stream) -> io::Result<()> {
        let line = std::mem::take(&mut self.partial[stream.index()]);
        if !line.is_empty() {
            self.push_line(stream.tag(), &line);
        }
        self.flush()
    }

    /// Appends a numbered note by the manager, such as "exited with code 0".
    pub fn note(&mut self, text: &str) -> io::Result<()> {
        self.push_line(record::MANAGER, text.as_bytes());
        self.flush()
    }

    /// Marks the log finished: followers end once they have read it all.
    /// Its file, buffers and in-memory tail are let go (readers of a closed
    /// log read the file); a later note opens the file again.
    pub fn close(&mut self) {
        self.progress.send_modify(|p| {
            p.closed = true;
            p.tail = Arc::default();
        });
        self.file = None;
        self.buf = Vec::new();
        self.partial = [Vec::new(), Vec::new()];
    }

    /// Reopens a closed log when its instance is started again.
    pub fn reopen(&mut self) {
        self.progress.send_modify(|p| p.closed = false);
    }

    fn push_line(&mut self, tag: u8, line: &[u8]) {
        if line.len() <= MAX_LINE {
            self.push_piece(tag, line, false);
            return;
        }
        let mut pieces = line.chunks(MAX_LINE).peekable();
        while let Some(piece) = pieces.next() {
            self.push_piece(tag, piece, pieces.peek().is_some());
        }
    }

    fn push_piece(&mut self, tag: u8, text: &[u8], split: bool) {
        if self.buf.is_empty() {
            self.buf_first_seq = self.seq + 1;
            let now = now_ms();
            if now != self.last_time_ms {
                self.last_time_ms = now;
                let _ = writeln!(self.buf, "t {now}");
            }
        }
        self.buf.reserve(text.len() + 3 + SPLIT_MARKER.len());
        self.buf.push(tag);
        self.buf.push(b' ');
        self.buf.extend_from_slice(text);
        if split {
            self.buf.extend_from_slice(SPLIT_MARKER);
        }
        self.buf.push(b'\n');
        self.seq += 1;
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.make_room();
        if let Err(err) = self.room_to_resume().and_then(|()| self.append()) {
            // The records are lost; their numbers go to what comes next, so
            // that the file's numbering stays that of its records.
            let lines = self.seq + 1 - self.buf_first_seq;
            self.seq = self.buf_first_seq - 1;
            let failing =
                self.failing.get_or_insert(Failing { error: String::new(), no_space: false, lines: 0, bytes: 0 });
            failing.error = describe(&err);
            failing.no_space = err.raw_os_error() == Some(nix::libc::ENOSPC);
            failing.lines += lines;
            failing.bytes += self.buf.len() as u64;
            let error: Arc<str> = format!("log write failed: {}", failing.error).into();
            self.progress.send_if_modified(|p| {
                let changed = p.failing.as_deref() != Some(&*error);
                p.failing = Some(error);
                p.unwritten += lines;
                changed
            });
            self.buf.clear();
            // The next records start with their time again.
            self.last_time_ms = 0;
            return Err(err);
        }
        let (offset, seq, buf) = (self.offset, self.seq, &self.buf);
        // The tail is updated in place: readers never keep a clone of it (they
        // copy what they serve under the borrow), so nothing is copied here.
        self.progress.send_modify(|p| {
            p.offset = offset;
            p.seq = seq;
            p.failing = None;
            append_to_tail(Arc::make_mut(&mut p.tail), buf);
        });
        self.buf.clear();
        if let Some(failed) = self.failing.take() {
            let note = format!(
                "[mgr: output resumed; {} lines ({}) were dropped because the log could not be written: {}]",
                failed.lines,
                human(failed.bytes),
                failed.error
            );
            self.push_line(record::MANAGER, note.as_bytes());
            return self.flush();
        }
        Ok(())
    }

    /// After a write failed for lack of space: whether the file system has
    /// room enough to write again (`ENOSPC` while it has not).
    fn room_to_resume(&self) -> io::Result<()> {
        if !self.failing.as_ref().is_some_and(|f| f.no_space) {
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        match nix::sys::statvfs::statvfs(dir) {
            Ok(fs) if fs.blocks_available().saturating_mul(fs.fragment_size()) < RESUME_FREE_BYTES => {
                Err(io::Error::from_raw_os_error(nix::libc::ENOSPC))
            }
            _ => Ok(()),
        }
    }

    /// Appends the buffer to the last segment (opened on need).
    fn append(&mut self) -> io::Result<()> {
        let segment = self.segments.last().expect("a log has a segment");
        let in_segment = self.offset - segment.start;
        if self.file.is_none() {
            let file = OpenOptions::new().create(true).append(true).open(&segment.path)?;
            // Bytes past the last whole record are half a line a killed
            // manager (or a full disk) left: cut them, or they would glue
            // onto this record.
            if file.metadata()?.len() > in_segment {
                file.set_len(in_segment)?;
            }
            self.file = Some(file);
        }
        // The file is in the page cache: this write does not wait for the disk.
        let file = self.file.as_mut().expect("opened above");
        if let Err(err) = file.write_all(&self.buf) {
            // Part of the buffer may be in: cut back to the last record.
            let _ = file.set_len(in_segment);
            self.file = None;
            return Err(err);
        }
        self.offset += self.buf.len() as u64;
        Ok(())
    }

    /// Before the buffer is written: starts a new segment when the last is
    /// full, and drops the oldest segments while the log would be over its
    /// cap, saying so in the log itself.
    fn make_room(&mut self) {
        let last = self.segments.last().expect("a log has a segment");
        let in_last = self.offset - last.start;
        let mut changed = false;
        if in_last > 0 && in_last + self.buf.len() as u64 > self.segment_bytes {
            self.file = None;
            let first_seq = self.buf_first_seq;
            self.segments.push(Segment { start: self.offset, first_seq, path: segment_path(&self.path, first_seq) });
            changed = true;
        }
        let (mut lines, mut bytes, first) = (0, 0, self.segments[0].first_seq);
        while self.segments.len() > 1 && self.offset + self.buf.len() as u64 - self.segments[0].start > self.cap {
            let old = self.segments.remove(0);
            if let Err(err) = std::fs::remove_file(&old.path)
                && err.kind() != io::ErrorKind::NotFound
            {
                tracing::error!(log = %old.path.display(), %err, "cannot delete a segment of a log over its cap");
            }
            lines += self.segments[0].first_seq - old.first_seq;
            bytes += self.segments[0].start - old.start;
            changed = true;
        }
        if lines > 0 {
            let note = format!(
                "[mgr: {} lines ({}) dropped by the {} cap on this log: lines {first} to {}]",
                group_digits(lines),
                human(bytes),
                human(self.cap),
                first + lines - 1
            );
            self.push_line(record::MANAGER, note.as_bytes());
        }
        if changed {
            let segments = Arc::new(self.segments.clone());
            self.progress.send_modify(|p| p.segments = segments);
        }
    }
}

/// A lowercase description of a write error (`no space left on device`).
fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_owned(),
    }
}

/// Bytes as a user reads them: 64 MiB, 12.5 MiB, 300 KiB, 80 bytes.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// 1234567 → "1,234,567".
fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits.as_bytes().rchunks(3).rev().map(|g| std::str::from_utf8(g).unwrap_or("")).collect();
    groups.join(",")
}

/// Appends whole records to a tail, keeping it between `TAIL_BYTES` and
/// twice that, cut at a record boundary and starting with the time in force
/// there, so that lines served from it carry their time.
fn append_to_tail(tail: &mut Vec<u8>, records: &[u8]) {
    tail.extend_from_slice(records);
    if tail.len() <= 2 * TAIL_BYTES {
        return;
    }
    let cut = tail.len() - TAIL_BYTES;
    let boundary = memchr(b'\n', &tail[cut..]).map_or(tail.len(), |i| cut + i + 1);
    let time = time_before(tail, boundary);
    tail.drain(..boundary);
    if let Some(time) = time.filter(|_| tail.first() != Some(&record::TIME)) {
        let mut head = Vec::with_capacity(24 + tail.len());
        let _ = writeln!(head, "t {time}");
        head.extend_from_slice(tail);
        *tail = head;
    }
}

/// What [`scan`] found of a log on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Its segments, oldest first (offsets counted from the first kept).
    pub segments: Vec<Segment>,
    /// Where its whole records end.
    pub end: u64,
    /// Sequence number of its last numbered record.
    pub seq: u64,
}

/// Finds the segments of the log whose first segment is `base` (some of
/// them may have been dropped under its cap) and where their whole records
/// end: what a manager needs to go on with a log it did not write. A log
/// with no file is empty. A last line without its newline (a manager killed
/// mid-write) is left out, and cut off by the next write.
pub fn scan(base: &Path) -> io::Result<Scanned> {
    let name = base.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let dir = base.parent().unwrap_or(Path::new("."));
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Scanned::default()),
        Err(err) => return Err(err),
    };
    for entry in entries.flatten() {
        let Some(file) = entry.file_name().to_str().map(str::to_owned) else { continue };
        let first_seq = if file == name {
            1
        } else if let Some(n) = file.strip_prefix(&name).and_then(|r| r.strip_prefix('.')).and_then(|n| n.parse().ok())
        {
            n
        } else {
            continue;
        };
        found.push((first_seq, entry.path()));
    }
    found.sort();
    let mut scanned = Scanned::default();
    let Some(last) = found.len().checked_sub(1) else {
        scanned.segments.push(Segment { start: 0, first_seq: 1, path: base.to_owned() });
        return Ok(scanned);
    };
    let mut start = 0;
    for (i, (first_seq, path)) in found.into_iter().enumerate() {
        scanned.segments.push(Segment { start, first_seq, path: path.clone() });
        if i < last {
            start += std::fs::metadata(&path)?.len();
        } else {
            let (whole, numbered) = count_records(&path)?;
            scanned.end = start + whole;
            scanned.seq = (first_seq - 1) + numbered;
        }
    }
    Ok(scanned)
}

/// Where the whole records of one file end, and how many are numbered.
fn count_records(path: &Path) -> io::Result<(u64, u64)> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let (mut offset, mut seq, mut read) = (0u64, 0u64, 0u64);
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut carry = 0;
    loop {
        let got = file.read(&mut buf[carry..])?;
        if got == 0 {
            return Ok((offset, seq));
        }
        let filled = carry + got;
        let mut start = 0;
        for end in memchr_iter(b'\n', &buf[..filled]) {
            if numbered(&buf[start..end]) {
                seq += 1;
            }
            start = end + 1;
        }
        read += got as u64;
        offset = read - (filled - start) as u64;
        // A record is at most MAX_LINE and its marker, well below a chunk:
        // what is left after the last newline fits at the start.
        buf.copy_within(start..filled, 0);
        carry = filled - start;
        if carry == buf.len() {
            return Err(io::Error::other(format!("log {} has a record longer than a chunk", path.display())));
        }
    }
}

/// Is this record numbered (a line or a note), as opposed to a time record?
fn numbered(rec: &[u8]) -> bool {
    rec.first() != Some(&record::TIME)
}

/// The time in a `t` record.
fn time_of(rec: &[u8]) -> Option<u64> {
    std::str::from_utf8(rec.get(2..)?).ok()?.trim_end().parse().ok()
}

impl LogHandle {
    /// Sequence number of the last numbered record (0 when there is none).
    pub fn seq(&self) -> u64 {
        self.progress.borrow().seq
    }

    /// Why the log cannot be written now, if it cannot.
    pub fn failing(&self) -> Option<Arc<str>> {
        self.progress.borrow().failing.clone()
    }

    /// Lines dropped because the log could not be written, in all.
    pub fn unwritten(&self) -> u64 {
        self.progress.borrow().unwritten
    }

    /// Sends the log's records as chunks, starting at sequence number
    /// `since` (1 is the first line), to `tx`. With `follow`, waits for
    /// new records until the log is closed; otherwise stops at what was
    /// written when it was called. Returns when done or when `tx` is closed.
    pub async fn copy_to(&self, since: u64, follow: bool, tx: &mpsc::Sender<Chunk>) -> io::Result<()> {
        let since = since.max(1);
        let mut progress = self.progress.clone();
        // What is needed of the progress is copied under the borrow; the
        // tail itself is never cloned (the writer updates it in place).
        let (offset, seq, from_tail) = {
            let now = progress.borrow_and_update();
            let served = tail_from(&now, since).map(|(records, time_ms)| {
                (records, time_ms, time_before(&now.tail, now.tail.len()).unwrap_or(time_ms))
            });
            (now.offset, now.seq, served)
        };
        // The recent tail in memory serves a request for the last few lines
        // without reading the file.
        if let Some((records, time_ms, time_at_end)) = from_tail {
            // Followers go on after the tail, with the time in force at its end.
            let mut position = Position::at(offset, seq + 1, time_at_end);
            if !records.is_empty() && !self.send(tx, since, time_ms, Bytes::from(records)).await {
                return Ok(());
            }
            if !follow {
                return Ok(());
            }
            return self.follow_from(&mut position, since, &mut progress, tx).await;
        }
        let mut position = Position::at(0, 1, 0);
        if !self.read_until(&mut position, since, offset, tx).await? || !follow {
            return Ok(());
        }
        self.follow_from(&mut position, since, &mut progress, tx).await
    }

    async fn follow_from(
        &self,
        position: &mut Position,
        since: u64,
        progress: &mut watch::Receiver<Progress>,
        tx: &mpsc::Sender<Chunk>,
    ) -> io::Result<()> {
        let mut told: Option<Arc<str>> = None;
        loop {
            let (offset, closed, failing) = {
                let now = progress.borrow_and_update();
                (now.offset, now.closed, now.failing.clone())
            };
            if !self.read_until(position, since, offset, tx).await? {
                return Ok(());
            }
            // A follower learns at once that output is being dropped; the
            // log itself says how much once it can be written again.
            if failing.is_some() && failing != told {
                let text = format!("m [mgr: {}; output is being dropped]\n", failing.as_deref().unwrap_or_default());
                if !self.send(tx, 0, now_ms(), Bytes::from(text)).await {
                    return Ok(());
                }
            }
            told = failing;
            if closed {
                return Ok(());
            }
            tokio::select! {
                changed = progress.changed() => if changed.is_err() { return Ok(()) },
                _ = tx.closed() => return Ok(()),
            }
        }
    }

    /// Reads records from `position` up to byte `end`, sending those
    /// numbered `since` or later, segment after segment. Records dropped
    /// under the log's cap before they could be read are skipped with a
    /// note. Returns false when the receiver is gone.
    async fn read_until(
        &self,
        position: &mut Position,
        since: u64,
        end: u64,
        tx: &mpsc::Sender<Chunk>,
    ) -> io::Result<bool> {
        while position.offset < end {
            let segments = self.progress.borrow().segments.clone();
            let Some(oldest) = segments.first() else { return Ok(true) };
            // Before the oldest kept segment: dropped under the cap (a log
            // found on disk at start numbers its bytes from what is kept,
            // so only the numbers tell).
            let before =
                position.offset < oldest.start || (position.offset == oldest.start && position.seq < oldest.first_seq);
            if before {
                if !self.skip_to(position, since, oldest, tx).await {
                    return Ok(false);
                }
                continue;
            }
            let k = segments.iter().rposition(|s| s.start <= position.offset).expect("the oldest starts before");
            let segment = &segments[k];
            let segment_end = segments.get(k + 1).map_or(end, |next| next.start.min(end));
            // Opened once per segment, on first need (a new instance's file
            // may not exist before its first record); the buffer is kept.
            if position.segment != Some(segment.first_seq) || position.file.is_none() {
                match File::open(&segment.path) {
                    Ok(file) => {
                        position.file = Some(file);
                        position.segment = Some(segment.first_seq);
                    }
                    // Dropped under the cap between the listing and now.
                    Err(err) if err.kind() == io::ErrorKind::NotFound && k + 1 < segments.len() => {
                        if !self.skip_to(position, since, &segments[k + 1], tx).await {
                            return Ok(false);
                        }
                        continue;
                    }
                    Err(err) => return Err(err),
                }
            }
            if !self.read_segment(position, since, segment, segment_end, tx).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Moves a reader past records dropped under the cap to `segment`,
    /// telling it which it will not see (when it wanted them).
    async fn skip_to(&self, position: &mut Position, since: u64, segment: &Segment, tx: &mpsc::Sender<Chunk>) -> bool {
        let missed_from = position.seq.max(since);
        let missed_to = segment.first_seq.saturating_sub(1);
        position.offset = segment.start;
        position.seq = segment.first_seq;
        position.time_ms = 0;
        position.file = None;
        if missed_from > missed_to {
            return true;
        }
        let note = format!("m [mgr: lines {missed_from} to {missed_to} were dropped by the cap on this log]\n");
        // Not a record of the log: it has no number (0).
        self.send(tx, 0, now_ms(), Bytes::from(note)).await
    }

    /// Reads one segment from `position` up to byte `end` of the log.
    async fn read_segment(
        &self,
        position: &mut Position,
        since: u64,
        segment: &Segment,
        end: u64,
        tx: &mpsc::Sender<Chunk>,
    ) -> io::Result<bool> {
        // Taken out while reading (records are parsed while the position
        // advances) and put back at the end; an early return ends the reader.
        let file = position.file.take().expect("opened by the caller");
        let mut buf = std::mem::take(&mut position.buf);
        let want_at_most = ((end - position.offset) as usize).min(CHUNK_BYTES);
        if buf.len() < want_at_most {
            buf.resize(want_at_most, 0);
        }
        while position.offset < end {
            let want = ((end - position.offset) as usize).min(buf.len());
            let got = file.read_at(&mut buf[..want], position.offset - segment.start)?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("log {} is shorter than recorded", segment.path.display()),
                ));
            }
            // Only whole records leave here; a record longer than a chunk
            // cannot exist, as lines are split at MAX_LINE.
            let whole = match memchr::memrchr(b'\n', &buf[..got]) {
                Some(i) => i + 1,
                None => {
                    return Err(io::Error::other(format!(
                        "log {} has a record longer than a chunk",
                        segment.path.display()
                    )));
                }
            };
            let data = &buf[..whole];
            let (skip, first_seq, time_ms) = position.advance(data, since);
            position.offset += whole as u64;
            if skip < data.len() && !self.send(tx, first_seq, time_ms, Bytes::copy_from_slice(&data[skip..])).await {
                return Ok(false);
            }
        }
        position.file = Some(file);
        position.buf = buf;
        Ok(true)
    }

    async fn send(&self, tx: &mpsc::Sender<Chunk>, first_seq: u64, time_ms: u64, records: Bytes) -> bool {
        let chunk = Chunk {
            run: self.run.clone(),
            instance: self.instance.clone(),
            member: self.member.clone(),
            first_seq,
            time_ms,
            records,
        };
        tx.send(chunk).await.is_ok()
    }
}

/// A reader's place in a log, with the open file and buffer it reads with.
#[derive(Debug)]
struct Position {
    /// In the log's bytes, across segments.
    offset: u64,
    /// The segment `file` is (by its first record).
    segment: Option<u64>,
    /// Sequence number the next numbered record will have.
    seq: u64,
    time_ms: u64,
    file: Option<File>,
    buf: Vec<u8>,
}

impl Position {
    fn at(offset: u64, seq: u64, time_ms: u64) -> Position {
        Position { offset, segment: None, seq, time_ms, file: None, buf: Vec::new() }
    }

    /// Walks over `data` (whole records) and returns where the first record
    /// numbered `since` or later starts, that record's sequence number and
    /// the time in force there. Leaves `self` after `data`.
    fn advance(&mut self, data: &[u8], since: u64) -> (usize, u64, u64) {
        if self.seq >= since {
            // The common case: everything is wanted, so only count lines.
            let (first_seq, time_ms) = (self.seq, self.time_ms);
            let mut start = 0;
            for end in memchr_iter(b'\n', data) {
                let rec = &data[start..end];
                if numbered(rec) {
                    self.seq += 1;
                } else if let Some(t) = time_of(rec) {
                    self.time_ms = t;
                }
                start = end + 1;
            }
            return (0, first_seq, time_ms);
        }
        let mut start = 0;
        let mut skip = data.len();
        let mut found = None;
        for end in memchr_iter(b'\n', data) {
            let rec = &data[start..end];
            if numbered(rec) {
                if found.is_none() && self.seq >= since {
                    found = Some((self.seq, self.time_ms));
                    skip = start;
                }
                self.seq += 1;
            } else if let Some(t) = time_of(rec) {
                self.time_ms = t;
            }
            start = end + 1;
        }
        let (first_seq, time_ms) = found.unwrap_or((self.seq, self.time_ms));
        (skip, first_seq, time_ms)
    }
}

/// The time set by the last `t` record among the whole records of
/// `records[..end]`.
fn time_before(records: &[u8], end: usize) -> Option<u64> {
    let mut time = None;
    let mut start = 0;
    for stop in memchr_iter(b'\n', &records[..end]) {
        let rec = &records[start..stop];
        if !numbered(rec) {
            time = time_of(rec).or(time);
        }
        start = stop + 1;
    }
    time
}

/// The records numbered `since` and later with the time in force before
/// them, if the in-memory tail holds all of them. A `since` past the end
/// gives no records (nothing to replay).
fn tail_from(progress: &Progress, since: u64) -> Option<(Vec<u8>, u64)> {
    if since > progress.seq {
        return Some((Vec::new(), 0));
    }
    let tail = &progress.tail;
    let numbered_in_tail = {
        let mut start = 0;
        let mut n = 0;
        for end in memchr_iter(b'\n', tail) {
            if numbered(&tail[start..end]) {
                n += 1;
            }
            start = end + 1;
        }
        n
    };
    let first_in_tail = progress.seq + 1 - numbered_in_tail;
    if numbered_in_tail == 0 || since < first_in_tail {
        return None;
    }
    let mut seq = first_in_tail;
    let mut start = 0;
    for end in memchr_iter(b'\n', tail) {
        if numbered(&tail[start..end]) {
            if seq == since {
                return Some((tail[start..].to_vec(), time_before(tail, start).unwrap_or(0)));
            }
            seq += 1;
        }
        start = end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[Chunk]) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for c in chunks {
            let mut seq = c.first_seq;
            for rec in c.records.split(|b| *b == b'\n').filter(|r| !r.is_empty()) {
                if numbered(rec) {
                    out.push((seq, String::from_utf8_lossy(rec).into_owned()));
                    seq += 1;
                }
            }
        }
        out
    }

    async fn read_all(handle: &LogHandle, since: u64) -> Vec<(u64, String)> {
        let (tx, mut rx) = mpsc::channel(1024);
        handle.copy_to(since, false, &tx).await.unwrap();
        drop(tx);
        let mut chunks = Vec::new();
        while let Some(c) = rx.recv().await {
            chunks.push(c);
        }
        lines(&chunks)
    }

    #[tokio::test]
    async fn lines_are_numbered_across_reads_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, h) = Writer::create(&dir.path().join("p1.log"), "r", "p1", "m", DEFAULT_CAP).unwrap();
        w.write(Stream::Stdout, b"hel").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"lo\nworld\nno newline").unwrap();
        w.end(Stream::Stdout).unwrap();
        w.note("exited with code 0").unwrap();
        let got = read_all(&h, 1).await;
        let expected = ["e oops", "o hello", "o world", "o no newline", "m exited with code 0"];
        assert_eq!(got.len(), expected.len());
        for (i, (seq, text)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1);
            assert_eq!(text, expected[i]);
        }
        assert_eq!(read_all(&h, 4).await, vec![(4, "o no newline".into()), (5, "m exited with code 0".into())]);
    }

    #[tokio::test]
    async fn bytes_are_kept_as_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, h) = Writer::create(&dir.path().join("p1.log"), "r", "p1", "m", DEFAULT_CAP).unwrap();
        w.write(Stream::Stdout, b"\xff\xfe bin\n").unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        h.copy_to(1, false, &tx).await.unwrap();
        let c = rx.recv().await.unwrap();
        assert!(c.records.ends_with(b"o \xff\xfe bin\n"));
    }

    #[tokio::test]
    async fn long_lines_are_split_visibly_and_completely() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, h) = Writer::create(&dir.path().join("p1.log"), "r", "p1", "m", DEFAULT_CAP).unwrap();
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        // Written in small pieces, as a pipe delivers it.
        for piece in long.chunks(1000) {
            w.write(Stream::Stdout, piece).unwrap();
        }
        w.write(Stream::Stdout, b"\n").unwrap();
        let got = read_all(&h, 1).await;
        assert_eq!(got.len(), 3);
        let marker = String::from_utf8_lossy(SPLIT_MARKER).into_owned();
        assert!(got[0].1.ends_with(&marker) && got[1].1.ends_with(&marker));
        assert!(!got[2].1.ends_with(&marker));
        let xs: usize = got.iter().map(|(_, t)| t.matches('x').count()).sum();
        assert_eq!(xs, long.len());
    }

    #[tokio::test]
    async fn followers_see_every_line_once_and_end_when_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, h) = Writer::create(&dir.path().join("p1.log"), "r", "p1", "m", DEFAULT_CAP).unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let follower = {
            let h = h.clone();
            tokio::spawn(async move { h.copy_to(1, true, &tx).await })
        };
        let writer = tokio::spawn(async move {
            for i in 1..=20_000u32 {
                w.write(Stream::Stdout, format!("{i}\n").as_bytes()).unwrap();
                if i % 1000 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            w.close();
        });
        let mut chunks = Vec::new();
        while let Some(c) = rx.recv().await {
            chunks.push(c);
        }
        writer.await.unwrap();
        follower.await.unwrap().unwrap();
        let got = lines(&chunks);
        assert_eq!(got.len(), 20_000);
        for (i, (seq, text)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1);
            assert_eq!(text, &format!("o {}", i + 1));
        }
    }

    #[tokio::test]
    async fn the_tail_serves_recent_lines_and_the_file_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, h) = Writer::create(&dir.path().join("p1.log"), "r", "p1", "m", DEFAULT_CAP).unwrap();
        for i in 1..=5000u32 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes()).unwrap();
        }
        let p = h.progress.borrow().clone();
        assert!(p.tail.len() <= 2 * TAIL_BYTES);
        assert!(tail_from(&p, 4990).is_some());
        assert!(tail_from(&p, 10).is_none());
        let recent = read_all(&h, 4990).await;
        assert_eq!(recent.first().unwrap(), &(4990, "o line 4990".to_string()));
        assert_eq!(recent.len(), 11);
        // Lines served from memory still carry their time.
        let (tx, mut rx) = mpsc::channel(8);
        h.copy_to(4990, false, &tx).await.unwrap();
        assert!(rx.recv().await.unwrap().time_ms > 0);
        let old = read_all(&h, 10).await;
        assert_eq!(old.len(), 4991);
        assert_eq!(old[0], (10, "o line 10".to_string()));
        // A follower that started in the tail keeps the time for what comes next.
        let (tx, mut rx) = mpsc::channel(8);
        let follower = {
            let h = h.clone();
            tokio::spawn(async move { h.copy_to(5000, true, &tx).await })
        };
        assert_eq!(rx.recv().await.unwrap().first_seq, 5000);
        w.write(Stream::Stdout, b"later\n").unwrap();
        let next = rx.recv().await.unwrap();
        assert_eq!(next.first_seq, 5001);
        assert!(next.time_ms > 0, "the time in force before the new line");
        w.close();
        follower.await.unwrap().unwrap();
    }

    /// Every chunk a reader gets from `since`, notes with no number too.
    async fn chunks_from(handle: &LogHandle, since: u64) -> Vec<Chunk> {
        let (tx, mut rx) = mpsc::channel(1 << 16);
        handle.copy_to(since, false, &tx).await.unwrap();
        drop(tx);
        let mut chunks = Vec::new();
        while let Some(c) = rx.recv().await {
            chunks.push(c);
        }
        chunks
    }

    #[tokio::test]
    async fn a_log_over_its_cap_drops_its_oldest_segments_and_readers_keep_exact_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("p1.log");
        let (mut w, h) = Writer::create(&base, "r", "p1", "m", MIN_CAP).unwrap();
        // 4 MiB of numbered lines through a 1 MiB cap.
        let mut i = 0u64;
        while w.offset < 4 << 20 {
            let mut batch = String::new();
            for _ in 0..200 {
                i += 1;
                batch.push_str(&format!("{i:08} {}\n", "x".repeat(60)));
            }
            w.write(Stream::Stdout, batch.as_bytes()).unwrap();
        }
        let on_disk: u64 = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
        assert!(on_disk <= MIN_CAP + (64 << 10), "{on_disk} bytes kept under a cap of {MIN_CAP}");
        assert!(!base.exists(), "the first segment went");
        let segments = h.progress.borrow().segments.clone();
        assert!(segments.len() >= 2 && segments.iter().all(|s| s.path.exists()), "{segments:?}");
        // A replay from the start is told what went, then reads every kept
        // line with its own number; the writer's notes say it too.
        let chunks = chunks_from(&h, 1).await;
        assert_eq!(chunks[0].first_seq, 0, "a note with no number first");
        let note = String::from_utf8_lossy(&chunks[0].records).into_owned();
        let first_kept = segments[0].first_seq;
        assert_eq!(note, format!("m [mgr: lines 1 to {} were dropped by the cap on this log]\n", first_kept - 1));
        let got = lines(&chunks[1..]);
        assert!(
            !got.is_empty(),
            "{} chunks: {:?}",
            chunks.len(),
            chunks.iter().map(|c| (c.first_seq, c.records.len())).collect::<Vec<_>>()
        );
        assert_eq!(got[0].0, first_kept);
        for pair in got.windows(2) {
            assert_eq!(pair[1].0, pair[0].0 + 1, "numbers are consecutive");
        }
        let lines_only: Vec<&(u64, String)> = got.iter().filter(|(_, t)| t.starts_with("o ")).collect();
        let notes: Vec<&(u64, String)> = got.iter().filter(|(_, t)| t.starts_with("m ")).collect();
        assert!(notes.iter().all(|(_, t)| t.contains("dropped by the 1 MiB cap on this log")), "{notes:?}");
        assert_eq!(lines_only.last().unwrap().1, format!("o {i:08} {}", "x".repeat(60)));
        // A reader asking from a kept line gets exactly that line first.
        let from = first_kept + 10;
        let exact = lines(&chunks_from(&h, from).await);
        assert_eq!(exact[0], got.iter().find(|(n, _)| *n == from).unwrap().clone());
        // The same, after a restart of the manager: found on disk as it was.
        let found = scan(&base).unwrap();
        assert_eq!(found.seq, w.seq);
        assert_eq!(
            found.segments.iter().map(|s| s.first_seq).collect::<Vec<_>>(),
            segments.iter().map(|s| s.first_seq).collect::<Vec<_>>()
        );
        let (_, again) = Writer::resume(&base, "r", "p1", "m", found.clone(), MIN_CAP);
        let chunks = chunks_from(&again, from).await;
        assert!(!chunks.is_empty(), "{found:?} {:?}", again.progress.borrow());
        assert_eq!(lines(&chunks)[0], exact[0]);
    }

    #[tokio::test]
    async fn a_log_that_cannot_be_written_drops_output_says_so_and_resumes_with_its_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("p1.log");
        let (mut w, h) = Writer::create(&base, "r", "p1", "m", DEFAULT_CAP).unwrap();
        w.write(Stream::Stdout, b"before\n").unwrap();
        w.close();
        // A full disk: /dev/full refuses every write with ENOSPC.
        std::fs::remove_file(&base).unwrap();
        std::os::unix::fs::symlink("/dev/full", &base).unwrap();
        w.offset = 0;
        w.reopen();
        let err = w.write(Stream::Stdout, b"lost 1\nlost 2\n").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::ENOSPC));
        assert_eq!(h.progress.borrow().failing.as_deref(), Some("log write failed: no space left on device"));
        assert!(w.write(Stream::Stdout, b"lost 3\n").is_err());
        // Space again.
        std::fs::remove_file(&base).unwrap();
        std::fs::write(&base, "").unwrap();
        w.write(Stream::Stdout, b"after\n").unwrap();
        assert_eq!(h.progress.borrow().failing, None);
        // The lost lines' numbers went to what came next: before is 1,
        // after 2, the note 3.
        assert_eq!(h.seq(), 3);
        let got = lines(&chunks_from(&h, 1).await);
        assert_eq!(got[0].1, "o after");
        assert!(
            got[1].1.starts_with("m [mgr: output resumed; 3 lines (")
                && got[1].1.ends_with(") were dropped because the log could not be written: no space left on device]"),
            "{got:?}"
        );
    }
}
