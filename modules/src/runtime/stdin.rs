//! The user's commands: lines typed on stdin, parsed into [`Command`]s.

use std::io::{BufRead, ErrorKind};

use tokio::sync::mpsc;

use super::faults::{CONTROL_PREFIX, Faults, FaultsError};
use super::say;

/// A request typed by the user, handed to the module's `upon_command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `send q text`: send `text` to process `q`.
    Send { to: String, text: String },
}

/// What one stdin line means.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A blank line, ignored.
    Empty,
    /// `help`: print [`HELP`].
    Help,
    Command(Command),
    /// `#mgr faults SPEC`, written by the manager: the faults now in force.
    Faults(Faults),
}

/// What the stdin reader hands to the event loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A command for the module.
    Command(Command),
    /// New faults, for the runtime itself.
    Faults(Faults),
}

/// Why a line is not a command; printed as `error: <message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("bad faults from the manager: {0}")]
    Faults(#[from] FaultsError),
    #[error("unknown command '{0}' (try: send q text)")]
    Unknown(String),
    #[error("usage: send q text")]
    SendUsage,
}

/// The text printed by `help`.
pub const HELP: &str = "commands:
  send q text   send text to process q, e.g. send p2 hello
  help          show this list";

/// Parses one line (without its line ending, or with it: it is trimmed).
pub fn parse_line(line: &str) -> Result<Line, ParseError> {
    let line = line.trim();
    if let Some(spec) = line.strip_prefix(CONTROL_PREFIX) {
        return Ok(Line::Faults(Faults::parse(spec)?));
    }
    let (word, rest) = split_word(line);
    match word {
        "" => Ok(Line::Empty),
        "help" => Ok(Line::Help),
        "send" => {
            let (to, text) = split_word(rest);
            if to.is_empty() || text.is_empty() {
                return Err(ParseError::SendUsage);
            }
            Ok(Line::Command(Command::Send { to: to.to_owned(), text: text.to_owned() }))
        }
        other => Err(ParseError::Unknown(other.to_owned())),
    }
}

/// Splits off the first word; the rest keeps its inner spaces, so that
/// `send p2 two  spaces` sends exactly "two  spaces".
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (text, ""),
    }
}

/// Starts reading stdin and returns the stream of commands.
///
/// The reader is a plain thread rather than a tokio task because a blocking
/// read cannot be cancelled: a thread stuck in `read` never holds up the
/// runtime, and the process exits regardless of it. Help and errors are
/// answered here directly, so the module only ever sees valid commands.
///
/// At end of input the thread ends and the channel closes; the module itself
/// keeps running, because the daemon may close stdin of a live instance.
pub fn spawn_reader() -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel(64);
    let spawned = std::thread::Builder::new().name("stdin".into()).spawn(move || {
        let mut input = std::io::stdin().lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match input.read_until(b'\n', &mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => {
                    eprintln!("stdin: {err}");
                    return;
                }
            }
            // Lossy decoding: a stray non-UTF-8 byte should not cost the
            // user the whole line.
            match parse_line(&String::from_utf8_lossy(&buf)) {
                Ok(Line::Empty) => {}
                Ok(Line::Help) => say(HELP),
                Ok(Line::Command(command)) => {
                    if tx.blocking_send(Input::Command(command)).is_err() {
                        return;
                    }
                }
                Ok(Line::Faults(faults)) => {
                    if tx.blocking_send(Input::Faults(faults)).is_err() {
                        return;
                    }
                }
                Err(err) => say(format_args!("error: {err}")),
            }
        }
    });
    if let Err(err) = spawned {
        eprintln!("stdin: cannot start the reader thread: {err}");
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(to: &str, text: &str) -> Result<Line, ParseError> {
        Ok(Line::Command(Command::Send { to: to.into(), text: text.into() }))
    }

    #[test]
    fn control_lines_set_the_faults() {
        let line = parse_line("#mgr faults loss=0.5 partition=p1/p2\n").unwrap();
        assert_eq!(line, Line::Faults(Faults::parse("loss=0.5 partition=p1/p2").unwrap()));
        assert_eq!(parse_line("#mgr faults").unwrap(), Line::Faults(Faults::default()));
        assert!(matches!(parse_line("#mgr faults loss=2"), Err(ParseError::Faults(_))));
    }

    #[test]
    fn parses_send() {
        assert_eq!(parse_line("send p2 hello\n"), send("p2", "hello"));
        assert_eq!(parse_line("  send\tp2   hello world \r\n"), send("p2", "hello world"));
        assert_eq!(parse_line("send p2 two  spaces"), send("p2", "two  spaces"));
    }

    #[test]
    fn send_needs_a_destination_and_a_text() {
        assert_eq!(parse_line("send"), Err(ParseError::SendUsage));
        assert_eq!(parse_line("send p2"), Err(ParseError::SendUsage));
        assert_eq!(parse_line("send p2   "), Err(ParseError::SendUsage));
    }

    #[test]
    fn blank_lines_help_and_unknown_commands() {
        assert_eq!(parse_line(""), Ok(Line::Empty));
        assert_eq!(parse_line("   \n"), Ok(Line::Empty));
        assert_eq!(parse_line("help"), Ok(Line::Help));
        let err = parse_line("sned p2 x").unwrap_err();
        assert_eq!(err.to_string(), "unknown command 'sned' (try: send q text)");
    }
}
