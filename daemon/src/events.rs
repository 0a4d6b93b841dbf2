//! Events files: reading the structured events an instance wrote to its
//! `MGR_EVENTS` file (and the crash records the supervisor appended), whole
//! lines only, in chunks of bounded size, and following a file as it grows.
//!
//! A run's events can be far larger than memory should hold or one gRPC
//! message can carry, so a [`Reader`] hands out at most [`CHUNK`] bytes at a
//! time (more only for a single line longer than that, up to [`MAX_LINE`])
//! and its caller reads again until the file's end. A line longer than
//! [`MAX_LINE`] is an error naming its byte offset, never dropped silently.
//!
//! It owns nothing but file offsets; it must not parse the events (that is
//! the checkers' business, in `mgr_modules::check`) nor know about gRPC.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// The most bytes of lines one read returns (unless its one line is longer):
/// what a stream of events holds in memory per chunk in flight.
pub const CHUNK: usize = 1 << 20;

/// The longest line read. An event is a few hundred bytes; a longer line is
/// a module gone wrong, and reading on in search of its end would hold the
/// whole of it in memory. Well under the 16 MiB a gRPC message may have.
pub const MAX_LINE: usize = 4 << 20;

/// The events file of `instance` in a run folder.
pub fn path(run_dir: &Path, instance: &str) -> PathBuf {
    run_dir.join(format!("{instance}.events.jsonl"))
}

/// A line longer than the reader takes. It reaches callers inside an
/// [`io::Error`] of kind `InvalidData`, so they can tell it from a failed
/// read with `get_ref().downcast_ref()`.
#[derive(Debug, thiserror::Error)]
#[error("the line at byte {offset} is longer than {limit} bytes, the most a line of events may have")]
pub struct LineTooLong {
    pub offset: u64,
    pub limit: usize,
}

/// Reads an events file from an offset on, up to its last complete line,
/// a bounded chunk at a time.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    offset: u64,
    chunk: usize,
    max_line: usize,
}

impl Reader {
    pub fn new(path: PathBuf) -> Reader {
        Reader::with_limits(path, CHUNK, MAX_LINE)
    }

    /// A reader with other bounds than [`CHUNK`] and [`MAX_LINE`] (tests use
    /// small ones).
    pub fn with_limits(path: PathBuf, chunk: usize, max_line: usize) -> Reader {
        Reader { path, offset: 0, chunk: chunk.max(1), max_line: max_line.max(chunk.max(1)) }
    }

    /// Where the next read starts: the bytes of whole lines read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next whole lines written since the last call: at most a chunk of
    /// them, or one line longer than a chunk. Empty when there is no new
    /// whole line, or no file yet (an instance that logged nothing has
    /// none); call again until it is empty to read to the file's end.
    pub fn read_new(&mut self) -> io::Result<Bytes> {
        let Some(mut file) = self.open()? else { return Ok(Bytes::new()) };
        let size = file.metadata()?.len();
        let Some(available) = size.checked_sub(self.offset).filter(|n| *n > 0) else {
            return Ok(Bytes::new());
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = vec![0; clamp(available, self.chunk)];
        let filled = read_full(&mut file, &mut buf)?;
        buf.truncate(filled);
        if let Some(last) = memchr::memrchr(b'\n', &buf) {
            // A line still being written (or cut by the chunk's end) stays
            // for the next call.
            return Ok(self.take(buf, last + 1));
        }
        if filled < self.chunk {
            // The rest of the file is one line still being written.
            return Ok(Bytes::new());
        }
        // One line longer than a chunk: read on to its end, within the
        // bound of a line.
        buf.resize(clamp(available, self.max_line), 0);
        let filled = filled + read_full(&mut file, &mut buf[filled..])?;
        buf.truncate(filled);
        if let Some(end) = memchr::memchr(b'\n', &buf) {
            return Ok(self.take(buf, end + 1));
        }
        if filled < self.max_line {
            return Ok(Bytes::new());
        }
        Err(io::Error::new(io::ErrorKind::InvalidData, LineTooLong { offset: self.offset, limit: self.max_line }))
    }

    /// The first `len` bytes of `buf`, read: the offset moves past them.
    fn take(&mut self, mut buf: Vec<u8>, len: usize) -> Bytes {
        buf.truncate(len);
        self.offset += len as u64;
        Bytes::from(buf)
    }

    /// The file, if it exists. An instance writes its own events file and
    /// could make it a FIFO or a link to a device: it is opened without
    /// blocking and read only if it is a regular file.
    fn open(&self) -> io::Result<Option<File>> {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC)
            .open(&self.path);
        let file = match opened {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "it is not a regular file"));
        }
        Ok(Some(file))
    }
}

/// `available` bytes, at most `bound`.
fn clamp(available: u64, bound: usize) -> usize {
    usize::try_from(available).map_or(bound, |a| a.min(bound))
}

/// Fills `buf` from `file`, short only at the file's end.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn only_whole_lines_are_read_and_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path(), "p1");
        let mut reader = Reader::new(path.clone());
        assert!(reader.read_new().unwrap().is_empty(), "no file yet is no events");
        let mut file = std::fs::File::create(&path).unwrap();
        assert!(reader.read_new().unwrap().is_empty(), "an empty file is no events");
        file.write_all(b"{\"a\":1}\n{\"b\"").unwrap();
        assert_eq!(&reader.read_new().unwrap()[..], b"{\"a\":1}\n");
        assert!(reader.read_new().unwrap().is_empty());
        file.write_all(b":2}\n").unwrap();
        assert_eq!(&reader.read_new().unwrap()[..], b"{\"b\":2}\n");
        assert_eq!(reader.offset(), 16);
    }

    /// Reads until `read_new` comes back empty; returns the chunks.
    fn drain(reader: &mut Reader) -> Vec<Bytes> {
        std::iter::from_fn(|| Some(reader.read_new().unwrap()).filter(|c| !c.is_empty())).collect()
    }

    #[test]
    fn a_large_file_comes_in_bounded_chunks_of_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path(), "p1");
        // Lines of varied lengths, so chunk ends fall anywhere in a line.
        let lines: Vec<String> =
            (0..5000).map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 97))).collect();
        std::fs::write(&path, lines.concat()).unwrap();
        let mut reader = Reader::with_limits(path, 1000, 4000);
        let chunks = drain(&mut reader);
        assert!(chunks.len() > 100, "{} chunks", chunks.len());
        for chunk in &chunks {
            assert!(chunk.len() <= 1000, "a chunk of {} bytes", chunk.len());
            assert_eq!(chunk.last(), Some(&b'\n'), "a chunk ends with a whole line");
        }
        let read: Vec<u8> = chunks.concat();
        assert_eq!(read, lines.concat().into_bytes(), "every line once, in order");
    }

    #[test]
    fn a_line_longer_than_a_chunk_comes_alone_and_one_too_long_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path(), "p1");
        let long = format!("{}\n", "l".repeat(2500));
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(format!("short\n{long}after\n").as_bytes()).unwrap();
        let mut reader = Reader::with_limits(path.clone(), 1000, 4000);
        assert_eq!(&reader.read_new().unwrap()[..], b"short\n");
        assert_eq!(reader.read_new().unwrap(), long.as_bytes(), "a long line whole, on its own");
        assert_eq!(&reader.read_new().unwrap()[..], b"after\n");
        // A long line still being written waits for its end.
        file.write_all("w".repeat(3000).as_bytes()).unwrap();
        assert!(reader.read_new().unwrap().is_empty());
        file.write_all(b"\n").unwrap();
        assert_eq!(reader.read_new().unwrap().len(), 3001);
        // A line over the bound is an error naming where it starts, every
        // time it is read; what came before it was read.
        let at = reader.offset();
        file.write_all(format!("ok\n{}\nlast\n", "z".repeat(4000)).as_bytes()).unwrap();
        assert_eq!(&reader.read_new().unwrap()[..], b"ok\n");
        for _ in 0..2 {
            let err = reader.read_new().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            let too_long = err.get_ref().and_then(|e| e.downcast_ref::<LineTooLong>()).expect("a LineTooLong");
            assert_eq!((too_long.offset, too_long.limit), (at + 3, 4000));
            assert_eq!(
                err.to_string(),
                format!("the line at byte {} is longer than 4000 bytes, the most a line of events may have", at + 3)
            );
        }
    }

    #[test]
    fn a_fifo_or_a_device_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = path(dir.path(), "p1");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = Reader::new(fifo).read_new().unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let zero = path(dir.path(), "p2");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let err = Reader::new(zero).read_new().unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
