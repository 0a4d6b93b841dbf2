//! The environment a role may give its instances (`env` in a scenario
//! file, `LaunchRequest.roles[].env` on the wire).
//!
//! Two rules. Everywhere: a name is a shell identifier, nothing sets
//! `MGR_*` (the launch contract is the manager's), and sizes are bounded.
//! On a member that does not allow exec: an **allowlist**. A role may set
//! only the variables its module's manifest declares (`env = [...]`) and a
//! few that change no program's code ([`SAFE`]), with values that name no
//! path. A denylist (`LD_PRELOAD`, `PYTHONSTARTUP`, …) would have to know
//! every loader, interpreter and library that reads its environment
//! (`GCONV_PATH`, `OPENSSL_CONF`, `JAVA_TOOL_OPTIONS`, `LUA_INIT`, `PATH`
//! itself…) and would fail open on the next one; an allowlist fails
//! closed, and a module's author opens exactly what the module reads.
//! Without that rule a role's environment would be `exec` by another name.
//!
//! This module judges names and values only; it must not know where a
//! launch came from or start anything.

/// Variables any role may set, on any member: they change formatting and
/// logging, never which code runs (their values may not hold a '/', so no
/// locale or zone file is read from an arbitrary path).
pub const SAFE: &[&str] = &[
    "RUST_LOG",
    "RUST_BACKTRACE",
    "NO_COLOR",
    "TZ",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "LC_NUMERIC",
    "LC_TIME",
];

/// Longest variable name, and longest value.
pub const MAX_NAME: usize = 128;
pub const MAX_VALUE: usize = 32 * 1024;

/// Most variables one role may set.
pub const MAX_VARS: usize = 64;

/// Checks one `NAME=VALUE` entry of a role: a shell identifier for a name,
/// not `MGR_*`, no NUL, bounded sizes. The error says what is wrong,
/// without repeating a huge value.
pub fn check_entry(pair: &str) -> Result<(&str, &str), String> {
    let shown = crate::names::printable(pair, 60);
    let Some((name, value)) = pair.split_once('=') else {
        return Err(format!("environment entry {shown} is not NAME=VALUE"));
    };
    let identifier = name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !identifier {
        return Err(format!(
            "environment variable name {} is not valid (letters, digits and '_', not starting with a digit, \
             at most {MAX_NAME})",
            crate::names::printable(name, 60)
        ));
    }
    if name.starts_with("MGR_") {
        return Err(format!("{name} is set by the manager (the launch contract), not by a role"));
    }
    if value.len() > MAX_VALUE {
        return Err(format!("the value of {name} is {} bytes, more than {MAX_VALUE}", value.len()));
    }
    if value.contains('\0') {
        return Err(format!("the value of {name} holds a NUL byte"));
    }
    Ok((name, value))
}

/// Whether a role may set `name` to `value` on a member that does not
/// allow exec, for a module whose manifest declares `declared`.
pub fn allowed_without_exec(name: &str, value: &str, declared: &[String]) -> bool {
    declared.iter().any(|d| d == name) || (SAFE.contains(&name) && !value.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_identifiers_outside_the_contract() {
        assert_eq!(check_entry("COLOUR=green"), Ok(("COLOUR", "green")));
        assert_eq!(check_entry("_X="), Ok(("_X", "")));
        assert_eq!(check_entry("A=b=c"), Ok(("A", "b=c")));
        for bad in ["NOEQUALS", "=x", "1A=x", "A-B=x", "A B=x", "MGR_SELF=p9", "A=x\0y"] {
            assert!(check_entry(bad).is_err(), "{bad:?}");
        }
        let huge = format!("A={}", "v".repeat(MAX_VALUE + 1));
        assert!(check_entry(&huge).unwrap_err().contains("more than"));
        assert_eq!(
            check_entry("MGR_SELF=p9").unwrap_err(),
            "MGR_SELF is set by the manager (the launch contract), not by a role"
        );
    }

    #[test]
    fn without_exec_only_declared_and_safe_variables_pass() {
        let declared = vec!["CHAT_USER".to_owned()];
        assert!(allowed_without_exec("CHAT_USER", "/any/thing", &declared));
        assert!(allowed_without_exec("RUST_LOG", "debug", &declared));
        assert!(allowed_without_exec("TZ", "UTC", &[]));
        assert!(!allowed_without_exec("TZ", ":/tmp/zone", &[]), "a safe name with a path is not safe");
        for injected in
            ["LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONSTARTUP", "PERL5OPT", "NODE_OPTIONS", "BASH_ENV", "PATH"]
        {
            assert!(!allowed_without_exec(injected, "x", &declared), "{injected}");
        }
    }
}
