//! The configuration file of `mgr start` (TOML): where it is, how its keys
//! become options, and how it merges with the command line.
//!
//! The keys are the long options of [`StartArgs`] with `_` for `-`, found
//! by asking clap, and each value is checked by that option's own value
//! parser: a new option of `mgr start` is a new key with no change here.
//! Precedence is the command line, then the environment (`env = …` of an
//! option), then the file, then the defaults. This module must not start,
//! open or bind anything; it only reads the file.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches, ValueHint, parser::ValueSource};

use crate::cli::{Cli, Command, StartArgs};

/// Options of `mgr start` that are not keys of the file.
const NOT_KEYS: &[&str] = &["config", "check", "help"];

/// Errors reading a configuration file, each naming the file and, where it
/// has one, the line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line itself is wrong (or asks for help): clap prints it.
    #[error(transparent)]
    Args(#[from] clap::Error),
    #[error("cannot read config file {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Syntax { path: PathBuf, line: usize, message: String },
    #[error("{path}:{line}: unknown key '{key}' (the keys are the options of `mgr start`: {known})")]
    UnknownKey { path: PathBuf, line: usize, key: String, known: String },
    #[error("{path}:{line}: {key}: {message}")]
    BadValue { path: PathBuf, line: usize, key: String, message: String },
}

/// The file used when `--config` is not given, if it exists:
/// `$XDG_CONFIG_HOME/mgr/mgr.toml`, else `~/.config/mgr/mgr.toml`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some(base.join("mgr/mgr.toml")).filter(|path| path.is_file())
}

/// One key of a file, turned into the options it stands for.
#[derive(Debug)]
struct Entry {
    /// The clap id of the option (the key itself).
    id: String,
    /// `--long=value`, once per value (none for `false`).
    args: Vec<OsString>,
}

/// A configuration file, read and checked against the options of `mgr start`.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl ConfigFile {
    /// Reads `path` and checks every key and value; the first wrong one is
    /// the error.
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read { path: path.to_owned(), err })?;
        Self::parse(path, &text)
    }

    /// Checks `text` as the contents of `path` (which names it in errors
    /// and is the base of relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let table: SpannedTable = toml::from_str(text).map_err(|err| ConfigError::Syntax {
            path: path.to_owned(),
            line: line_of(err.span().map_or(0, |s| s.start)),
            message: err.message().trim().to_owned(),
        })?;
        let mut table = table.0;
        table.sort_by_key(|(key, _)| key.span().start);

        let command = start_command();
        // Absolute, so that what a manager logs and prints names the
        // folder it uses whatever its working directory.
        let base = std::path::absolute(path).ok().and_then(|p| p.parent().map(Path::to_owned)).unwrap_or_default();
        let mut entries = Vec::new();
        for (key, value) in table {
            let line = line_of(key.span().start);
            let key = key.into_inner();
            let Some(arg) = command.get_arguments().find(|a| a.get_id() == key.as_str() && is_key(a)) else {
                return Err(ConfigError::UnknownKey { path: path.to_owned(), line, key, known: keys().join(", ") });
            };
            let bad =
                |message: String| ConfigError::BadValue { path: path.to_owned(), line, key: key.clone(), message };
            let args = option_args(&command, arg, value.get_ref(), &base).map_err(bad)?;
            entries.push(Entry { id: key.clone(), args });
        }
        Ok(ConfigFile { path: path.to_owned(), entries })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the file stands for, except those `given` elsewhere.
    fn args_except(&self, given: impl Fn(&str) -> bool) -> impl Iterator<Item = &OsString> {
        self.entries.iter().filter(move |e| !given(&e.id)).flat_map(|e| &e.args)
    }

    /// The file alone as the options of `mgr start` (defaults for the rest).
    pub fn start_args(&self) -> Result<StartArgs, ConfigError> {
        let argv = std::iter::once(OsString::from("start")).chain(self.args_except(|_| false).cloned());
        let matches = start_command().try_get_matches_from(argv)?;
        Ok(StartArgs::from_arg_matches(&matches)?)
    }
}

/// A table with the position of each key, in the file's order (a map
/// keyed by `Spanned` would sort by name).
struct SpannedTable(Vec<(toml::Spanned<String>, toml::Spanned<toml::Value>)>);

impl<'de> serde::Deserialize<'de> for SpannedTable {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SpannedTable;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<SpannedTable, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(SpannedTable(entries))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// `mgr start` as clap sees it, built (so help and defaults are in place).
fn start_command() -> clap::Command {
    let mut cli = Cli::command();
    cli.build();
    cli.find_subcommand("start").cloned().expect("mgr has a start command")
}

fn is_key(arg: &Arg) -> bool {
    arg.get_long().is_some() && !NOT_KEYS.contains(&arg.get_id().as_str())
}

/// Every key a configuration file may hold, in the order of `mgr start --help`.
pub fn keys() -> Vec<String> {
    start_command().get_arguments().filter(|a| is_key(a)).map(|a| a.get_id().to_string()).collect()
}

/// The options one key stands for, each value checked by the option's
/// value parser. Relative paths are taken from `base`, the file's folder.
fn option_args(command: &clap::Command, arg: &Arg, value: &toml::Value, base: &Path) -> Result<Vec<OsString>, String> {
    let long = arg.get_long().unwrap_or_default();
    let flag = OsString::from(format!("--{long}"));
    // Each value is checked alone, by clap with the option's own parser.
    let with_value = |text: OsString| {
        let mut option = OsString::from(format!("--{long}="));
        option.push(&text);
        let argv = [OsString::from("start"), option.clone()];
        command.clone().try_get_matches_from(argv).map_err(|err| describe(&err, &text))?;
        Ok::<_, String>(option)
    };
    match arg.get_action() {
        ArgAction::SetTrue => match value {
            toml::Value::Boolean(true) => Ok(vec![flag]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            other => Err(format!("expected true or false, not {}", shown(other))),
        },
        ArgAction::Count => match value {
            toml::Value::Integer(n @ 0..=3) => Ok(vec![flag; *n as usize]),
            other => Err(format!("expected a number from 0 to 3, not {}", shown(other))),
        },
        ArgAction::Set => Ok(vec![with_value(scalar(arg, value, base)?)?]),
        ArgAction::Append => match value {
            toml::Value::Array(values) => values.iter().map(|v| with_value(scalar(arg, v, base)?)).collect(),
            single => Ok(vec![with_value(scalar(arg, single, base)?)?]),
        },
        _ => Err("is not an option a file can set".to_owned()),
    }
}

/// One value as the text of an option.
fn scalar(arg: &Arg, value: &toml::Value, base: &Path) -> Result<OsString, String> {
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        other => return Err(format!("expected a string or a number, not {}", shown(other))),
    };
    let is_path = matches!(arg.get_value_hint(), ValueHint::FilePath | ValueHint::DirPath | ValueHint::AnyPath);
    if is_path && !text.is_empty() && Path::new(&text).is_relative() {
        return Ok(base.join(text).into_os_string());
    }
    Ok(text.into())
}

fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::Array(_) => "a list".to_owned(),
        toml::Value::Table(_) => "a table".to_owned(),
        other => format!("{} {other}", other.type_str()),
    }
}

/// A value parser's error as one line (clap's own text is a whole
/// screen with usage and tips).
fn describe(err: &clap::Error, text: &OsStr) -> String {
    let why = std::error::Error::source(err).map(|s| s.to_string()).unwrap_or_else(|| {
        let rendered = err.to_string();
        let first = rendered.lines().next().unwrap_or_default();
        first.strip_prefix("error: ").unwrap_or(first).to_owned()
    });
    format!("invalid value '{}': {why}", text.to_string_lossy())
}

/// Parses the command line of `mgr`; for `mgr start`, merges the
/// configuration file under it (options given on the command line or in
/// the environment win).
pub fn parse_args(argv: impl IntoIterator<Item = OsString>) -> Result<Cli, ConfigError> {
    let mut argv: Vec<OsString> = argv.into_iter().collect();
    let matches = Cli::command().try_get_matches_from(&argv)?;
    let Some(("start", start)) = matches.subcommand() else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    let Some(file) = config_file(start.get_one::<PathBuf>("config").map(PathBuf::as_path))? else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };
    // `mgr start` has no positional arguments, so options appended at the
    // end belong to it.
    argv.extend(file.args_except(|id| given(start, id)).cloned());
    let mut cli = Cli::from_arg_matches(&Cli::command().try_get_matches_from(&argv)?)?;
    if let Command::Start(args) = &mut cli.command {
        args.config = Some(file.path().to_owned());
    }
    Ok(cli)
}

/// Whether option `id` was given on the command line or in the environment.
fn given(matches: &ArgMatches, id: &str) -> bool {
    matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
}

/// The file named, else the default one if it exists.
fn config_file(named: Option<&Path>) -> Result<Option<ConfigFile>, ConfigError> {
    match named.map(Path::to_owned).or_else(default_path) {
        Some(path) => Ok(Some(ConfigFile::read(&path)?)),
        None => Ok(None),
    }
}

/// The state dir of `mgr status` and `mgr stop`: the one given, else the
/// configuration file's `state_dir`, else the default, as for `mgr start`.
pub fn state_dir(given: Option<&Path>, config: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(dir) = given {
        return Ok(dir.to_owned());
    }
    let from_file = match config_file(config)? {
        Some(file) => file.start_args()?.state_dir,
        None => None,
    };
    Ok(from_file.unwrap_or_else(crate::state_dir::default_state_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse(Path::new("/etc/mgr/mgr.toml"), text)
    }

    #[test]
    fn every_option_of_start_is_a_key_but_config_and_check() {
        let keys = keys();
        for key in ["name", "state_dir", "listen", "key_file", "group", "join", "iface", "advertise", "ports"] {
            assert!(keys.contains(&key.to_owned()), "{key} in {keys:?}");
        }
        for key in ["no_mdns", "modules_dir", "allow_exec", "grace", "log_file", "verbose"] {
            assert!(keys.contains(&key.to_owned()), "{key} in {keys:?}");
        }
        assert!(!keys.iter().any(|k| k == "config" || k == "check" || k == "help"));
    }

    #[test]
    fn keys_become_options_with_paths_from_the_files_folder() {
        let file = parse(
            "name = \"lab-01\"\nstate_dir = \"state\"\nkey_file = \"/k\"\njoin = [\"10.0.0.2:6170\", \"10.0.0.3:6170\"]\n\
             iface = \"eth0\"\nallow_exec = true\nno_mdns = false\ngrace = 2\nports = \"100-200\"\nverbose = 2\n",
        )
        .unwrap();
        let args = file.start_args().unwrap();
        assert_eq!(args.name.as_deref(), Some("lab-01"));
        assert_eq!(args.state_dir, Some(PathBuf::from("/etc/mgr/state")));
        assert_eq!(args.key_file, Some(PathBuf::from("/k")));
        assert_eq!(args.join, ["10.0.0.2:6170", "10.0.0.3:6170"]);
        assert_eq!(args.iface, ["eth0"]);
        assert!(args.allow_exec && !args.no_mdns);
        assert_eq!((args.grace, args.ports, args.verbose), (2.0, 100..=200, 2));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file_the_line_and_the_key() {
        let err = parse("name = \"a\"\n\n  nmae = \"b\"\n").unwrap_err().to_string();
        assert!(err.starts_with("/etc/mgr/mgr.toml:3: unknown key 'nmae' (the keys are the options"), "{err}");
        assert!(err.contains("state_dir"), "{err}");
        let cases = [
            ("grace = 1e20", "/etc/mgr/mgr.toml:1: grace: invalid value '100000000000000000000': expected a number"),
            ("\n\nlisten = \"nowhere\"", "/etc/mgr/mgr.toml:3: listen: invalid value 'nowhere': invalid socket"),
            ("allow_exec = \"yes\"", "/etc/mgr/mgr.toml:1: allow_exec: expected true or false, not string \"yes\""),
            ("ports = \"9-1\"", "/etc/mgr/mgr.toml:1: ports: invalid value '9-1': 9-1 is not a range of ports"),
            ("name = \"../x\"", "/etc/mgr/mgr.toml:1: name: invalid value '../x': member name"),
            ("join = [true]", "/etc/mgr/mgr.toml:1: join: expected a string or a number, not boolean true"),
            ("join = [1.5]", "/etc/mgr/mgr.toml:1: join: invalid value '1.5': expected HOST:PORT"),
            ("[start]\nname = \"x\"", "/etc/mgr/mgr.toml:1: unknown key 'start'"),
            ("config = \"other.toml\"", "/etc/mgr/mgr.toml:1: unknown key 'config'"),
            ("name = ", "/etc/mgr/mgr.toml:1: "),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mgr.toml");
        std::fs::write(&path, "name = \"from-file\"\ngrace = 7\njoin = [\"a:1\"]\nallow_exec = true\n").unwrap();
        let argv = ["mgr", "start", "--config", path.to_str().unwrap(), "--name", "from-flag", "--join", "b:2"];
        let Command::Start(args) = parse_args(argv.map(OsString::from)).unwrap().command else { panic!() };
        assert_eq!(args.name.as_deref(), Some("from-flag"));
        assert_eq!(args.join, ["b:2"]);
        assert_eq!(args.grace, 7.0);
        assert!(args.allow_exec);
        assert_eq!(args.config.as_deref(), Some(path.as_path()));
    }
}
