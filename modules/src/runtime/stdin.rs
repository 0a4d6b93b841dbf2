//! The user's commands: lines typed on stdin, split into a verb and its
//! arguments. Each module knows its own verbs (`send`, `broadcast`, `write`,
//! `propose`…); this reader only splits lines and answers `help`. The
//! manager's own messages for the runtime (`faults …`) come on another
//! channel, the control pipe (`MGR_CONTROL_FD`), so that nothing a user
//! types can pass for one.

use std::io::{BufRead, ErrorKind};

use tokio::sync::mpsc;

use super::faults::{CONTROL_FAULTS, CONTROL_PEERS, Faults, FaultsError};
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
    /// The run's new table after a scale: `MGR_PEERS` and `MGR_ROLES`
    /// (empty in a run without roles), not yet checked.
    Peers { peers: String, roles: String },
    /// Stdin ended: no more commands will come.
    End,
}

/// Splits one line of stdin.
pub fn parse_line(line: &str) -> Line {
    let (verb, args) = split_word(line.trim());
    match verb {
        "" => Line::Empty,
        "help" => Line::Help,
        _ => Line::Command(Command { verb: verb.to_owned(), args: args.to_owned() }),
    }
}

/// Parses one line of the control pipe: `faults SPEC`, the faults now in
/// force (the whole state, not a change), or `peers MGR_PEERS [MGR_ROLES]`,
/// the run's table after a scale.
pub fn parse_control(line: &str) -> Result<Input, FaultsError> {
    let (verb, spec) = split_word(line.trim());
    match verb {
        CONTROL_FAULTS => Faults::parse(spec).map(Input::Faults),
        CONTROL_PEERS if !spec.is_empty() => {
            let (peers, roles) = split_word(spec);
            Ok(Input::Peers { peers: peers.to_owned(), roles: roles.to_owned() })
        }
        _ => Err(FaultsError::Control(line.trim().to_owned())),
    }
}

fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (text, ""),
    }
}

/// Starts a thread that reads stdin line by line and sends what it reads,
/// and, with `control_fd` (`MGR_CONTROL_FD`), another that reads the
/// manager's control lines.
///
/// The readers are plain threads rather than tokio tasks because a
/// blocking read cannot be cancelled: a thread stuck in `read` never holds
/// up the runtime, and the process exits regardless of it.
///
/// At end of stdin the reader sends [`Input::End`]; the channel closes once
/// the control pipe ends too.
pub fn spawn_reader(control_fd: Option<i32>) -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel(64);
    if let Some(fd) = control_fd {
        use std::os::fd::FromRawFd;
        // SAFETY: by the launch contract, MGR_CONTROL_FD names a pipe the
        // manager gave this process and nothing else in it uses; the reader
        // owns it from here on.
        let pipe = unsafe { std::fs::File::from_raw_fd(fd) };
        let tx = tx.clone();
        spawn_lines(
            "control",
            move || std::io::BufReader::new(pipe),
            move |line| match parse_control(line) {
                Ok(input) => tx.blocking_send(input).is_ok(),
                Err(err) => {
                    say(format_args!("error: bad control line from the manager: {err}"));
                    true
                }
            },
            || {},
        );
    }
    let end = tx.clone();
    spawn_lines(
        "stdin",
        || std::io::stdin().lock(),
        move |line| {
            let input = match parse_line(line) {
                Line::Empty => return true,
                Line::Help => Input::Help,
                Line::Command(command) => Input::Command(command),
            };
            tx.blocking_send(input).is_ok()
        },
        move || {
            let _ = end.blocking_send(Input::End);
        },
    );
    rx
}

/// Reads the input `open` gives (on the reader's own thread, named `name`)
/// line by line, handing each line to `each` until the input ends or
/// `each` says to stop (returns false), then calls `at_end`. Lines are
/// decoded lossily: a stray non-UTF-8 byte should not cost the user the
/// whole line.
fn spawn_lines<R: BufRead>(
    name: &'static str,
    open: impl FnOnce() -> R + Send + 'static,
    mut each: impl FnMut(&str) -> bool + Send + 'static,
    at_end: impl FnOnce() + Send + 'static,
) {
    let spawned = std::thread::Builder::new().name(name.into()).spawn(move || {
        let mut input = open();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match input.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => {
                    eprintln!("{name}: {err}");
                    break;
                }
            }
            if !each(&String::from_utf8_lossy(&buf)) {
                break;
            }
        }
        at_end();
    });
    if let Err(err) = spawned {
        eprintln!("{name}: cannot start the reader thread: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(verb: &str, args: &str) -> Line {
        Line::Command(Command { verb: verb.into(), args: args.into() })
    }

    #[test]
    fn control_lines_set_the_faults() {
        let faults = parse_control("faults loss=0.5 partition=p1/p2\n").unwrap();
        assert_eq!(faults, Input::Faults(Faults::parse("loss=0.5 partition=p1/p2").unwrap()));
        assert_eq!(parse_control("faults").unwrap(), Input::Faults(Faults::default()));
        let table = Input::Peers { peers: "p1=127.0.0.1:1,p3=127.0.0.1:3".into(), roles: "a=p1;b=p3".into() };
        assert_eq!(parse_control("peers p1=127.0.0.1:1,p3=127.0.0.1:3 a=p1;b=p3\n").unwrap(), table);
        assert!(parse_control("peers").is_err());
        assert!(parse_control("faults loss=2").is_err());
        assert!(parse_control("reboot now").is_err());
    }

    #[test]
    fn a_typed_line_is_never_a_control_line() {
        // What once changed the faults from stdin is a command like any other.
        assert_eq!(parse_line("#mgr faults loss=1\n"), command("#mgr", "faults loss=1"));
    }

    #[test]
    fn a_line_is_a_verb_and_its_arguments() {
        assert_eq!(parse_line("send p2 hello\n"), command("send", "p2 hello"));
        assert_eq!(parse_line("  send\tp2   hello world \r\n"), command("send", "p2   hello world"));
        assert_eq!(parse_line("read"), command("read", ""));
        assert_eq!(parse_line(""), Line::Empty);
        assert_eq!(parse_line("   \n"), Line::Empty);
        assert_eq!(parse_line("help"), Line::Help);
    }

    #[test]
    fn send_arguments_are_a_target_and_a_text() {
        let c = Command { verb: "send".into(), args: "p2   two  spaces".into() };
        assert_eq!(c.target_and_text(), Some(("p2", "two  spaces")));
        assert_eq!(Command { verb: "send".into(), args: "p2".into() }.target_and_text(), None);
        assert_eq!(Command { verb: "send".into(), args: "".into() }.target_and_text(), None);
    }
}
