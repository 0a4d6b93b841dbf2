//! The arguments of the `mgr` binary, as clap structs in the library so
//! that the configuration file ([`crate::config`]) and the man page
//! generator reach the same definitions.
//!
//! Every option of `mgr start` is also a key of the configuration file,
//! with the same name (`--state-dir` is `state_dir`) and the same value
//! parser, so adding an option adds the key. Checks of a single value
//! belong in its value parser, where both the command line and the file get
//! them; this module must not read files, open the state dir or start
//! anything.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueHint};
use serde::Serialize;

use crate::names::{Kind, check};

/// The arguments of `mgr`.
#[derive(Debug, Parser)]
#[command(
    name = "mgr",
    version,
    about = "The mgr manager: runs distributed-protocol modules on this machine for mgrctl.",
    after_help = "A manager meant to stay up runs as a systemd service (dist/mgr.service, dist/mgr-user.service);\n\
                  `mgr status` and `mgr stop` find it by its state dir."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a manager in the foreground until SIGINT or SIGTERM, which stop
    /// every instance it started.
    ///
    /// Options come from the command line, then the environment, then the
    /// configuration file (--config, else $XDG_CONFIG_HOME/mgr/mgr.toml if it
    /// exists), whose keys are the long options with '_' for '-'
    /// (state_dir = "/var/lib/mgr", allow_exec = true, join = ["10.0.0.2:6170"]).
    ///
    /// The manager logs to stderr; to --log-file if given; and when stderr is
    /// a terminal but the manager runs in the background (`mgr start &`), to
    /// STATE_DIR/mgr.log. A log file it writes itself is rotated at 10 MiB,
    /// keeping one old file (FILE.1).
    Start(StartArgs),
    /// Whether a manager runs on a state dir: its pid, uptime, members and
    /// runs. Exits 0 when one runs, 3 when none does.
    Status(StatusArgs),
    /// Stop the manager of a state dir (SIGTERM: it stops its instances,
    /// then exits) and wait until it has exited.
    Stop(StopArgs),
    /// Write a new random group key (32 bytes, mode 0600) to FILE. Give the
    /// same file to every manager of the group (`mgr start --key-file`) and
    /// to remote users (`mgrctl --key-file`).
    Keygen(KeygenArgs),
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the key.
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub path: PathBuf,
    /// Replace an existing key file (managers using the old key can no
    /// longer reach those using the new one).
    #[arg(long)]
    pub force: bool,
}

/// The options of `mgr start`, and so the keys of the configuration file.
/// `--check` prints them in the file's syntax.
#[derive(Debug, clap::Args, Serialize)]
pub struct StartArgs {
    /// This member's name [default: the host name].
    #[arg(long, value_parser = parse_member_name)]
    pub name: Option<String>,
    /// Where the manager keeps its id, logs and control socket
    /// [default: $MGR_STATE_DIR, else $XDG_STATE_HOME/mgr, else ~/.local/state/mgr].
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub state_dir: Option<PathBuf>,
    /// TCP address for peers and remote CLIs (port 0 picks a free port)
    /// [default with --key-file: 127.0.0.1:6170]. Needs --key-file: every
    /// TCP connection is mutual TLS with the group key.
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<SocketAddr>,
    /// The group key file (see `mgr keygen`): every connection to the TCP
    /// port, from peers and from remote mgrctl, must prove it holds the same
    /// key, over TLS. Without it the manager has no TCP port and no group:
    /// only its own user reaches it, through the Unix socket.
    #[arg(long, env = "MGR_KEY_FILE", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub key_file: Option<PathBuf>,
    /// The group to be part of: managers of other groups never merge.
    #[arg(long, value_name = "NAME", default_value = crate::DEFAULT_GROUP, value_parser = parse_group)]
    pub group: String,
    /// A manager to merge with, for networks where multicast does not
    /// reach: IP:PORT, or HOST:PORT where HOST may name several machines (a
    /// round-robin name, a headless service): any one that answers is
    /// enough. Repeatable; retried until it answers, resolved again every
    /// 30 s.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_join)]
    pub join: Vec<String>,
    /// An interface for mDNS discovery (repeatable) [default: every
    /// non-loopback IPv4 interface with an address].
    #[arg(long, value_name = "NAME")]
    pub iface: Vec<String>,
    /// The IP instances get as theirs, and peers reach this manager at
    /// [default: the --listen IP; for 0.0.0.0, this machine's first
    /// non-loopback IPv4 address].
    #[arg(long, value_name = "IP")]
    pub advertise: Option<IpAddr>,
    /// The range instance ports come from.
    #[arg(long, value_name = "LO-HI", default_value = "24000-24999", value_parser = parse_ports)]
    #[serde(serialize_with = "serialize_ports")]
    pub ports: RangeInclusive<u16>,
    /// Do not announce or look for managers over mDNS (use --join).
    #[arg(long)]
    pub no_mdns: bool,
    /// A folder of module manifests (*.toml) to offer besides the built-in
    /// modules and STATE_DIR/modules (repeatable; see modules/README.md).
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub modules_dir: Vec<PathBuf>,
    /// Allow `mgrctl exec`, which runs any command as this user.
    #[arg(long)]
    pub allow_exec: bool,
    /// Seconds between SIGTERM and SIGKILL when stopping an instance
    /// (0 to 3600).
    #[arg(long, value_name = "SECS", default_value_t = 3.0, value_parser = parse_grace)]
    pub grace: f64,
    /// Most bytes an instance's log keeps unless its launch says (e.g.
    /// 64M): the oldest output goes first, with a note.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = crate::units::parse_size)]
    pub max_log_bytes: u64,
    /// Processes and threads an instance may have unless its launch says:
    /// a fork bomb stops there (where cgroups allow limits).
    #[arg(long, value_name = "N", default_value_t = crate::DEFAULT_PIDS)]
    pub pids: u32,
    /// How many ended runs this member keeps; past it the oldest go (and
    /// the log says so).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub keep_runs: usize,
    /// How many bytes of ended runs this member keeps (e.g. 8G); past it the
    /// oldest go.
    #[arg(long, value_name = "SIZE", default_value = "8G", value_parser = crate::units::parse_size)]
    pub keep_bytes: u64,
    /// Write the manager's log to FILE (appended; rotated at 10 MiB, one
    /// old file kept as FILE.1) instead of stderr.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub log_file: Option<PathBuf>,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The configuration file [default: $XDG_CONFIG_HOME/mgr/mgr.toml, else
    /// ~/.config/mgr/mgr.toml, if it exists]. Paths in it are relative to
    /// its folder; options given on the command line win over it.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Check the configuration file and the options, print the settings
    /// the manager would start with (in the file's syntax), and exit.
    #[arg(long)]
    #[serde(skip)]
    pub check: bool,
}

/// Where `mgr status` and `mgr stop` look for a manager.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The manager's state dir [default: the state_dir of the configuration
    /// file, else as for `mgr start`].
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub state_dir: Option<PathBuf>,
    /// The configuration file whose state_dir to use [default: as for
    /// `mgr start`].
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub target: Target,
    /// How long to wait for the manager to exit (it first stops every
    /// instance, each within its --grace).
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = parse_timeout)]
    pub timeout: f64,
}

/// The longest grace period: a stop that waits an hour is a kill.
pub const MAX_GRACE_SECS: f64 = 3600.0;

fn parse_member_name(text: &str) -> Result<String, String> {
    check(Kind::Member, text).map_err(|err| err.to_string())?;
    Ok(text.to_owned())
}

fn parse_group(text: &str) -> Result<String, String> {
    check(Kind::Group, text).map_err(|err| err.to_string())?;
    Ok(text.to_owned())
}

/// `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT` with a DNS name for HOST.
fn parse_join(text: &str) -> Result<String, String> {
    if text.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    let bad = || format!("expected HOST:PORT (an IP address or a DNS name, and a port), not '{text}'");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
        });
    match port.parse::<u16>() {
        Ok(port) if port > 0 && name_ok => Ok(text.to_owned()),
        _ => Err(bad()),
    }
}

fn parse_seconds(text: &str, max: f64) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.0..=max).contains(&secs) => Ok(secs),
        _ => Err(format!("expected a number of seconds from 0 to {max}")),
    }
}

fn parse_grace(text: &str) -> Result<f64, String> {
    parse_seconds(text, MAX_GRACE_SECS)
}

fn parse_timeout(text: &str) -> Result<f64, String> {
    // A day: beyond it, waiting is not what anyone meant.
    parse_seconds(text, 86_400.0)
}

/// `LO-HI`, such as `24000-24999`.
pub fn parse_ports(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (lo, hi) = text.split_once('-').ok_or("expected LO-HI, such as 24000-24999")?;
    let lo: u16 = lo.trim().parse().map_err(|_| format!("'{lo}' is not a port"))?;
    let hi: u16 = hi.trim().parse().map_err(|_| format!("'{hi}' is not a port"))?;
    if lo == 0 || lo > hi {
        return Err(format!("{lo}-{hi} is not a range of ports (1 to 65535, low first)"));
    }
    Ok(lo..=hi)
}

fn serialize_ports<S: serde::Serializer>(ports: &RangeInclusive<u16>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}-{}", ports.start(), ports.end()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn single_values_are_checked_by_their_parsers() {
        assert!(parse_grace("1e20").is_err());
        assert!(parse_grace("NaN").is_err());
        assert_eq!(parse_grace("2.5"), Ok(2.5));
        assert_eq!(parse_ports("10-20"), Ok(10..=20));
        assert!(parse_ports("20-10").is_err());
        assert!(parse_member_name("../x").unwrap_err().contains("member name"));
        assert!(parse_group("a b").is_err());
        for good in ["10.0.0.2:6170", "[::1]:6170", "mgr.lab.example:6170", "mgr-headless:6170"] {
            assert_eq!(parse_join(good).as_deref(), Ok(good));
        }
        for bad in ["10.0.0.2", "host", "host:0", "host:70000", ":6170", "a..b:6170", "-x:6170", "a b:6170"] {
            assert!(parse_join(bad).unwrap_err().contains("HOST:PORT"), "{bad}");
        }
    }
}
