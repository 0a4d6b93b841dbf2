//! Names: the one grammar of every name that reaches a manager from
//! outside (runs, instances, roles, members, member ids, groups, modules)
//! and the one function that checks it, used by the `Manager` and `Peer`
//! services alike, and again by the supervisor before a name becomes part
//! of a path.
//!
//! A name is 1 to 64 ASCII letters, digits, `-`, `_` and `.`, and does not
//! start with `.` or `-`: nothing that can climb out of a folder (`/`,
//! `..`), end a C string (NUL), move a terminal's cursor (control
//! characters) or pass for an option. Instance names are narrower: `p1`,
//! `p2`, … as the launch numbers them. This module only judges names; it
//! must not know where they are used.

use std::fmt;

/// Longest name of any kind.
pub const MAX_LEN: usize = 64;

/// What a name names, for the error message and the instance rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Run,
    Instance,
    Role,
    Member,
    MemberId,
    Group,
    Module,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Instance => "instance",
            Kind::Role => "role",
            Kind::Member => "member",
            Kind::MemberId => "member id",
            Kind::Group => "group",
            Kind::Module => "module",
        }
    }
}

/// A name that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} name {} is not valid: {}", .kind.as_str(), shown(.name), .kind.rule())]
pub struct BadName {
    pub kind: Kind,
    pub name: String,
}

impl Kind {
    fn rule(self) -> &'static str {
        match self {
            Kind::Instance => "instances are named p1, p2, … (p and a number)",
            _ => "use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.' or '-'",
        }
    }
}

/// Checks `name` as a name of `kind`.
pub fn check(kind: Kind, name: &str) -> Result<(), BadName> {
    let valid = match kind {
        Kind::Instance => instance_number(name).is_some(),
        _ => is_plain(name),
    };
    if valid { Ok(()) } else { Err(BadName { kind, name: cut(name) }) }
}

/// The number of an instance name (`p12` → 12), if it is one: `p` and a
/// number from 1 without leading zeros, so that each instance has exactly
/// one spelling.
pub fn instance_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix('p')?;
    if digits.is_empty() || digits.len() > 9 || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn is_plain(name: &str) -> bool {
    (1..=MAX_LEN).contains(&name.len())
        && !name.starts_with(['.', '-'])
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A bad name is kept short in the error (it may be megabytes long).
fn cut(name: &str) -> String {
    const KEEP: usize = 80;
    if name.len() <= KEEP {
        return name.to_owned();
    }
    let mut end = KEEP;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &name[..end], name.len())
}

/// A name as the error shows it: quoted, with control characters escaped,
/// so that a hostile name cannot write to the reader's terminal.
fn shown(name: &str) -> impl fmt::Display + '_ {
    struct Shown<'a>(&'a str);
    impl fmt::Display for Shown<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("'")?;
            for c in self.0.chars() {
                if c.is_control() {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    write!(f, "{c}")?;
                }
            }
            f.write_str("'")
        }
    }
    Shown(name)
}

/// Text from outside for a log line or an error: at most `max` bytes, with
/// control characters escaped.
pub fn printable(text: &str, max: usize) -> String {
    shown(&cut_to(text, max)).to_string()
}

fn cut_to(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_letters_digits_dash_underscore_dot() {
        for good in ["r1", "demo", "lab-01", "a_b", "v1.2", "X", &"a".repeat(64)] {
            assert_eq!(check(Kind::Run, good), Ok(()), "{good}");
        }
        for bad in ["", ".", "..", "../x", "/etc", "a/b", ".hidden", "-rf", "a\0b", "a\nb", "é", "a b", &"a".repeat(65)]
        {
            assert!(check(Kind::Run, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn instances_are_p_and_a_number() {
        assert_eq!(instance_number("p1"), Some(1));
        assert_eq!(instance_number("p256"), Some(256));
        for bad in ["p0", "p01", "p", "q1", "p1x", "p-1", "../p1", "p1234567890"] {
            assert_eq!(instance_number(bad), None, "{bad}");
            assert!(check(Kind::Instance, bad).is_err());
        }
    }

    #[test]
    fn the_error_is_one_short_line_with_controls_escaped() {
        let err = check(Kind::Member, "evil\x1b[2Jname").unwrap_err().to_string();
        assert_eq!(
            err,
            "member name 'evil\\u{1b}[2Jname' is not valid: use 1 to 64 letters, digits, '-', '_' or '.', not \
             starting with '.' or '-'"
        );
        let long = check(Kind::Run, &"x".repeat(10 << 20)).unwrap_err().to_string();
        assert!(long.len() < 300 && long.contains("(10485760 bytes)"), "{long}");
        assert_eq!(
            check(Kind::Instance, "../x").unwrap_err().to_string(),
            "instance name '../x' is not valid: instances are named p1, p2, … (p and a number)"
        );
    }
}
