//! Events files: reading the structured events an instance wrote to its
//! `MGR_EVENTS` file (and the crash records the supervisor appended), whole
//! lines only, and following a file as it grows.
//!
//! It owns nothing but file offsets; it must not parse the events (that is
//! the checkers' business, in `mgr_modules::check`) nor know about gRPC.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// The events file of `instance` in a run folder.
pub fn path(run_dir: &Path, instance: &str) -> PathBuf {
    run_dir.join(format!("{instance}.events.jsonl"))
}

/// Reads an events file from an offset on, up to its last complete line.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    offset: u64,
}

impl Reader {
    pub fn new(path: PathBuf) -> Reader {
        Reader { path, offset: 0 }
    }

    /// The whole lines written since the last call (empty if none, or if the
    /// file does not exist yet: an instance that logged nothing has none).
    pub fn read_new(&mut self) -> io::Result<Bytes> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Bytes::new()),
            Err(err) => return Err(err),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        // A line still being written stays for the next call.
        let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        buf.truncate(complete);
        self.offset += complete as u64;
        Ok(Bytes::from(buf))
    }
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
        file.write_all(b"{\"a\":1}\n{\"b\"").unwrap();
        assert_eq!(&reader.read_new().unwrap()[..], b"{\"a\":1}\n");
        assert!(reader.read_new().unwrap().is_empty());
        file.write_all(b":2}\n").unwrap();
        assert_eq!(&reader.read_new().unwrap()[..], b"{\"b\":2}\n");
    }
}
