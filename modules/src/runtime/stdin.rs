//! The user's commands: lines typed on stdin, split into a verb and its
//! arguments. Each module knows its own verbs (`send`, `broadcast`, `write`,
//! `propose`…); this reader only splits lines, answers `help`, and takes the
//! manager's control lines (`#mgr faults …`) for the runtime.

use std::io::{BufRead, ErrorKind};

use tokio::sync::mpsc;

use super::faults::{CONTROL_PREFIX, Faults, FaultsError};
use super::say;

/// A line typed by the user: its first word and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub verb: String,
    /// Everything after the verb, trimmed.
    pub args: String,
}

impl Command {
    /// The first word of the arguments and the rest, e.g. `("p2", "hello")`
    /// for `send p2 hello`; `None` when either part is missing.
    pub fn target_and_text(&self) -> Option<(&str, &str)> {
        let (target, text) = split_word(&self.args);
        (!target.is_empty() && !text.is_empty()).then_some((target, text))
    }
}

/// What one line of stdin is.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A blank line, ignored.
    Empty,
    /// `help`: the module's commands.
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
    /// `help`, answered with the module's commands.
    Help,
    /// New faults, for the runtime itself.
    Faults(Faults),
}

/// Splits one line of stdin.
pub fn parse_line(line: &str) -> Result<Line, FaultsError> {
    let line = line.trim();
    if let Some(spec) = line.strip_prefix(CONTROL_PREFIX) {
        return Ok(Line::Faults(Faults::parse(spec)?));
    }
    let (verb, args) = split_word(line);
    Ok(match verb {
        "" => Line::Empty,
        "help" => Line::Help,
        _ => Line::Command(Command { verb: verb.to_owned(), args: args.to_owned() }),
    })
}

fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (text, ""),
    }
}

/// Starts a thread that reads stdin line by line and sends what it reads.
///
/// The reader is a plain thread rather than a tokio task because a blocking
/// read cannot be cancelled: a thread stuck in `read` never holds up the
/// runtime, and the process exits regardless of it.
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
            let input = match parse_line(&String::from_utf8_lossy(&buf)) {
                Ok(Line::Empty) => continue,
                Ok(Line::Help) => Input::Help,
                Ok(Line::Command(command)) => Input::Command(command),
                Ok(Line::Faults(faults)) => Input::Faults(faults),
                Err(err) => {
                    say(format_args!("error: bad faults from the manager: {err}"));
                    continue;
                }
            };
            if tx.blocking_send(input).is_err() {
                return;
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

    fn command(verb: &str, args: &str) -> Result<Line, FaultsError> {
        Ok(Line::Command(Command { verb: verb.into(), args: args.into() }))
    }

    #[test]
    fn control_lines_set_the_faults() {
        let line = parse_line("#mgr faults loss=0.5 partition=p1/p2\n").unwrap();
        assert_eq!(line, Line::Faults(Faults::parse("loss=0.5 partition=p1/p2").unwrap()));
        assert_eq!(parse_line("#mgr faults").unwrap(), Line::Faults(Faults::default()));
        assert!(parse_line("#mgr faults loss=2").is_err());
    }

    #[test]
    fn a_line_is_a_verb_and_its_arguments() {
        assert_eq!(parse_line("send p2 hello\n"), command("send", "p2 hello"));
        assert_eq!(parse_line("  send\tp2   hello world \r\n"), command("send", "p2   hello world"));
        assert_eq!(parse_line("read"), command("read", ""));
        assert_eq!(parse_line(""), Ok(Line::Empty));
        assert_eq!(parse_line("   \n"), Ok(Line::Empty));
        assert_eq!(parse_line("help"), Ok(Line::Help));
    }

    #[test]
    fn send_arguments_are_a_target_and_a_text() {
        let c = Command { verb: "send".into(), args: "p2   two  spaces".into() };
        assert_eq!(c.target_and_text(), Some(("p2", "two  spaces")));
        assert_eq!(Command { verb: "send".into(), args: "p2".into() }.target_and_text(), None);
        assert_eq!(Command { verb: "send".into(), args: "".into() }.target_and_text(), None);
    }
}
