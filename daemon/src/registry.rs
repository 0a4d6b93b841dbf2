//! The registry: which modules this manager can launch, and how.
//!
//! Built-in modules come from the `mgr-modules` catalog and run as
//! `mgr-modules <Name>`. Extra modules, in any language, are TOML manifests
//! (`*.toml`) in the `--modules-dir` folders, looked at anew on every
//! request so that a module can be added without restarting the manager:
//!
//! ```toml
//! name = "PyFairLossPointToPointLink"
//! command = "python3"
//! args = ["{dir}/fair_loss.py"]     # {dir}: the manifest's folder
//! description = "fair-loss point-to-point link, in Python"
//! interface = """
//! Module 2.1 … (the interface and properties a user reads)
//! """
//! ```
//!
//! The folders are anyone's to fill, so reading them is guarded: only
//! regular files of at most [`MAX_MANIFEST`] bytes are read (a FIFO or a
//! device named `x.toml` is never opened, so it can neither hang nor flood
//! the manager); the folders are scanned on a thread of their own, at most
//! one at a time, and a caller waits for a scan at most [`SCAN_TIMEOUT`],
//! after which it gets the catalog of the last complete scan. Parsed
//! manifests are kept by (path, device, inode, size, mtime, ctime), so an
//! unchanged file is not read again and a bad one is warned about once (an
//! edited file is judged again). A manifest that cannot be read, or that
//! reuses a taken name, is left out with a warning in the manager's log.
//!
//! This module resolves names; it does not start anything.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The largest manifest read: a manifest is a few lines, and a larger file
/// is a mistake or an attempt to make every request read it.
pub const MAX_MANIFEST: u64 = 64 * 1024;

/// How long a request waits for the scan of the manifest folders before it
/// answers with the catalog of the last complete scan. A scan of a healthy
/// folder takes a few milliseconds; only a hung file system takes this long.
pub const SCAN_TIMEOUT: Duration = Duration::from_secs(1);

/// One launchable module.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub summary: String,
    pub reference: String,
    pub description: String,
    pub algorithms: Vec<String>,
    /// Program and arguments that run one instance.
    pub argv: Vec<String>,
    /// The manifest it came from (`None` for a built-in).
    pub manifest: Option<PathBuf>,
    /// Environment variables the module reads, which a role may set on a
    /// member without `--allow-exec` (see [`crate::env`]).
    pub env: Vec<String>,
    /// How its program gets its UDP socket.
    pub socket: SocketMode,
    /// Whether its program applies `MGR_FAULTS` (every built-in does; a
    /// manifest says so with `faults = true`).
    pub faults: bool,
    /// The built-in abstraction it implements (`BestEffortBroadcast`), whose
    /// properties `check` then checks on it; `None` for one that says none.
    pub implements: Option<String>,
    /// The properties to check on it (book labels), when the manifest names
    /// them; else those of `implements`.
    pub properties: Vec<String>,
    /// Whether its instances may come and go while a run lives (`mgrctl
    /// scale`): a manifest says so with `dynamic = true`.
    pub dynamic: bool,
}

/// How an instance's program gets its UDP socket on `MGR_ADDR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketMode {
    /// The manager's socket, bound while the run is prepared, is inherited
    /// as `MGR_UDP_FD`: datagrams sent before the program is up wait in the
    /// kernel. The built-ins and the Python SDK take it.
    Inherit,
    /// The program binds `MGR_ADDR` itself: the manager holds the port while
    /// the run is prepared and lets it go just before the program starts.
    /// What an unmodified program (`bind(MGR_ADDR)`) needs, so the default
    /// for manifests and `exec`.
    #[default]
    Bind,
}

impl SocketMode {
    /// `inherit` or `bind`, as manifests and `exec --socket` say it.
    pub fn parse(text: &str) -> Option<SocketMode> {
        match text {
            "inherit" => Some(SocketMode::Inherit),
            "bind" => Some(SocketMode::Bind),
            _ => None,
        }
    }
}

/// A manifest left out of the catalog, and why: listed by `mgrctl modules`
/// so that its author need not read the manager's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub path: PathBuf,
    pub error: String,
}

/// What a manifest file holds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    name: String,
    command: String,
    #[serde(default)]
    args: Vec<String>,
    description: String,
    #[serde(default)]
    interface: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    algorithms: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    socket: SocketMode,
    #[serde(default)]
    faults: bool,
    #[serde(default)]
    implements: Option<String>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    dynamic: bool,
}

/// The built-ins and the manifest folders.
#[derive(Debug, Clone)]
pub struct Registry {
    modules_bin: PathBuf,
    catalog: Arc<Catalog>,
}

/// The manifests, shared by every clone of a [`Registry`] (the supervisor's
/// and the control's), so that there is one scan and one memory of what was
/// warned about.
#[derive(Debug)]
struct Catalog {
    dirs: Vec<PathBuf>,
    state: Mutex<ScanState>,
    /// Signalled each time a scan completes.
    scanned: Condvar,
    /// Held by a test to make the scan hang, as on a hung file system.
    #[cfg(test)]
    gate: Mutex<()>,
}

#[derive(Debug, Default)]
struct ScanState {
    /// The manifests of the last complete scan, names checked.
    manifests: Arc<Vec<Entry>>,
    /// The manifests that scan left out, and why.
    broken: Arc<Vec<Broken>>,
    /// Scans started and completed so far, numbered from 1.
    started: u64,
    completed: u64,
    /// Whether the scan thread is running; there is never more than one,
    /// so a hung file system holds one thread, not one per request.
    scanning: bool,
    /// A request came while a scan was under way: the scan thread scans
    /// once more before it ends, so that request sees the folders as they
    /// were after it came.
    again: bool,
    /// Whether the scan now under way was reported as late.
    late_warned: bool,
    /// What each file was judged last, kept while the scan thread runs
    /// (it takes the map and gives it back).
    judged: HashMap<PathBuf, Judged>,
}

/// What identifies a version of a file: an edited, replaced or renamed
/// file has another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Version {
    fn of(meta: &Metadata) -> Version {
        if meta.is_file() {
            Version {
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.size(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                ctime: (meta.ctime(), meta.ctime_nsec()),
            }
        } else {
            // The times of a FIFO or a terminal change as it is used; the
            // verdict on it (not a regular file) does not.
            Version { dev: meta.dev(), ino: meta.ino(), size: 0, mtime: (0, 0), ctime: (0, 0) }
        }
    }
}

/// The verdict on one version of one file.
#[derive(Debug)]
struct Judged {
    version: Version,
    manifest: Result<Entry, String>,
    /// Whether its name clashing with another module was warned about.
    clash_warned: bool,
}

impl Registry {
    pub fn new(modules_bin: PathBuf, dirs: Vec<PathBuf>) -> Self {
        let catalog = Catalog {
            dirs,
            state: Mutex::new(ScanState::default()),
            scanned: Condvar::new(),
            #[cfg(test)]
            gate: Mutex::new(()),
        };
        Registry { modules_bin, catalog: Arc::new(catalog) }
    }

    /// Every module: the built-ins first, then the manifests by name. Waits
    /// for a scan of the manifest folders at most [`SCAN_TIMEOUT`].
    pub fn list(&self) -> Vec<Entry> {
        self.list_and_broken().0
    }

    /// [`Registry::list`], and the manifests the same scan left out, with
    /// why.
    pub fn list_and_broken(&self) -> (Vec<Entry>, Arc<Vec<Broken>>) {
        let (manifests, broken) = self.catalog.manifests();
        let mut entries: Vec<Entry> = self.built_ins().collect();
        entries.extend(manifests.iter().cloned());
        (entries, broken)
    }

    /// The module called `name`, or else the one module whose name is
    /// `name` in another case (`fairlosspointtopointlink`), so that users
    /// need not remember the capitals; two such modules match neither. A
    /// built-in named exactly is found without looking at the manifests,
    /// which can never take a built-in's name.
    pub fn find(&self, name: &str) -> Option<Entry> {
        if let Some(entry) = self.built_ins().find(|e| e.name == name) {
            return Some(entry);
        }
        let (manifests, _) = self.catalog.manifests();
        if let Some(entry) = manifests.iter().find(|e| e.name == name) {
            return Some(entry.clone());
        }
        let mut alike = self.built_ins().chain(manifests.iter().cloned()).filter(|e| e.name.eq_ignore_ascii_case(name));
        let found = alike.next()?;
        alike.next().is_none().then_some(found)
    }

    fn built_ins(&self) -> impl Iterator<Item = Entry> + '_ {
        mgr_modules::catalog::all().map(|m| Entry {
            name: m.name.to_owned(),
            summary: m.summary.to_owned(),
            reference: m.reference.to_owned(),
            description: m.description.to_owned(),
            algorithms: m.algorithms.iter().map(|a| (*a).to_owned()).collect(),
            argv: vec![self.modules_bin.display().to_string(), m.name.to_owned()],
            manifest: None,
            env: Vec::new(),
            socket: SocketMode::Inherit,
            faults: true,
            implements: Some(m.name.to_owned()),
            properties: Vec::new(),
            dynamic: mgr_modules::apps::DYNAMIC.contains(&m.name),
        })
    }
}

impl Catalog {
    fn lock(&self) -> MutexGuard<'_, ScanState> {
        // The state is consistent between statements; a panic elsewhere
        // while holding it leaves nothing half-done.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The manifests as a scan that starts after this call finds them, or,
    /// if that scan does not complete within [`SCAN_TIMEOUT`], as the last
    /// complete scan found them.
    fn manifests(self: &Arc<Self>) -> (Arc<Vec<Entry>>, Arc<Vec<Broken>>) {
        if self.dirs.is_empty() {
            return Default::default();
        }
        let deadline = Instant::now() + SCAN_TIMEOUT;
        let mut state = self.lock();
        let wanted = state.started + 1;
        if state.scanning {
            state.again = true;
        } else {
            state.started = wanted;
            state.scanning = true;
            state.late_warned = false;
            let judged = std::mem::take(&mut state.judged);
            // The scan thread logs where the caller logs (a test's
            // subscriber, or the manager's global one).
            let dispatch = tracing::dispatcher::get_default(Clone::clone);
            let catalog = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("mgr-modules-scan".to_owned())
                .spawn(move || tracing::dispatcher::with_default(&dispatch, || catalog.scan_thread(judged)));
            if let Err(err) = spawned {
                state.scanning = false;
                tracing::warn!(%err, "cannot start the scan of the module manifests: the last catalog stays");
                return (Arc::clone(&state.manifests), Arc::clone(&state.broken));
            }
        }
        while state.completed < wanted {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if !state.late_warned {
                    state.late_warned = true;
                    tracing::warn!(
                        dirs = ?self.dirs,
                        "the scan of the module manifests did not finish within {SCAN_TIMEOUT:?} \
                         (a hung file system?): answering with the last complete catalog"
                    );
                }
                break;
            }
            state = self.scanned.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        (Arc::clone(&state.manifests), Arc::clone(&state.broken))
    }

    /// Scans until no request is waiting for a newer scan, then ends.
    fn scan_thread(&self, mut judged: HashMap<PathBuf, Judged>) {
        loop {
            #[cfg(test)]
            drop(self.gate.lock().unwrap_or_else(|p| p.into_inner()));
            let (manifests, broken) = scan(&self.dirs, &mut judged);
            let mut state = self.lock();
            state.manifests = Arc::new(manifests);
            state.broken = Arc::new(broken);
            state.completed = state.started;
            state.late_warned = false;
            self.scanned.notify_all();
            if state.again {
                state.again = false;
                state.started += 1;
                continue;
            }
            state.scanning = false;
            state.judged = judged;
            return;
        }
    }
}

/// The manifests of `dirs` (a missing folder has none), sorted by name,
/// without those whose name is taken, and those left out with why, by
/// path. `judged` holds the verdicts of the last scan and is left with
/// those of this one.
fn scan(dirs: &[PathBuf], judged: &mut HashMap<PathBuf, Judged>) -> (Vec<Entry>, Vec<Broken>) {
    let mut seen = HashMap::new();
    for dir in dirs {
        let Ok(files) = std::fs::read_dir(dir) else { continue };
        for file in files.flatten() {
            let path = file.path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let verdict = judge(&path, judged.remove(&path));
            seen.insert(path, verdict);
        }
    }
    // Files gone since the last scan are forgotten, so the map stays the
    // size of the folders.
    *judged = seen;
    let built_ins: Vec<&str> = mgr_modules::catalog::all().map(|m| m.name).collect();
    let mut good: Vec<(&PathBuf, &mut Judged)> = judged.iter_mut().filter(|(_, j)| j.manifest.is_ok()).collect();
    good.sort_by(|(pa, a), (pb, b)| name_of(a).cmp(name_of(b)).then(pa.cmp(pb)));
    let mut entries: Vec<Entry> = Vec::new();
    let mut broken: Vec<Broken> = Vec::new();
    for (path, judged) in good {
        let Ok(entry) = &judged.manifest else { continue };
        if built_ins.contains(&entry.name.as_str()) || entries.iter().any(|e| e.name == entry.name) {
            if !judged.clash_warned {
                judged.clash_warned = true;
                tracing::warn!(manifest = %path.display(), name = %entry.name, "a module of that name exists already: manifest left out");
            }
            let error = format!("a module named {} exists already", entry.name);
            broken.push(Broken { path: path.clone(), error });
            continue;
        }
        entries.push(entry.clone());
    }
    for (path, judged) in judged.iter() {
        if let Err(error) = &judged.manifest {
            broken.push(Broken { path: path.clone(), error: error.clone() });
        }
    }
    broken.sort_by(|a, b| a.path.cmp(&b.path));
    (entries, broken)
}

fn name_of(judged: &Judged) -> &str {
    judged.manifest.as_ref().map_or("", |e| e.name.as_str())
}

/// The verdict on the file at `path`: the one it had if it has not
/// changed, else read anew, and warned about once if it is bad.
fn judge(path: &Path, before: Option<Judged>) -> Judged {
    // Follows a symbolic link without opening anything, so a link to a
    // device or a FIFO is refused before it can block or flood.
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) => {
            // Gone between the listing and now, or a dangling link: judged
            // again at the next scan, quietly if it stays so.
            let version = Version { dev: 0, ino: 0, size: 0, mtime: (0, 0), ctime: (0, 0) };
            let warn = before.as_ref().is_none_or(|b| b.version != version);
            let manifest = Err(format!("cannot read it: {err}"));
            return verdict(path, version, manifest, warn);
        }
    };
    let version = Version::of(&meta);
    if let Some(before) = before
        && before.version == version
    {
        return before;
    }
    let (version, manifest) = match read_manifest(path, &meta) {
        Ok((version, entry)) => (version, Ok(entry)),
        Err((version, err)) => (version, Err(err)),
    };
    verdict(path, version, manifest, true)
}

fn verdict(path: &Path, version: Version, manifest: Result<Entry, String>, warn: bool) -> Judged {
    if let (Err(err), true) = (&manifest, warn) {
        tracing::warn!(manifest = %path.display(), "module manifest left out: {err}");
    }
    Judged { version, manifest, clash_warned: false }
}

/// What kind of file `meta` is, for the warning about a file that is not
/// a manifest.
fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads and checks the manifest at `path`, whose metadata (following
/// links) is `meta`. The error comes with the version of the file it is
/// about.
fn read_manifest(path: &Path, meta: &Metadata) -> Result<(Version, Entry), (Version, String)> {
    let mut version = Version::of(meta);
    if !meta.is_file() {
        return Err((version, format!("it is {}, not a regular file: not opened", kind(meta))));
    }
    let too_large = |size: u64| format!("it has {size} bytes, more than the {MAX_MANIFEST} a manifest may have");
    if meta.len() > MAX_MANIFEST {
        return Err((version, too_large(meta.len())));
    }
    // Non-blocking, and checked again once open: the file may have been
    // swapped for a FIFO or a device since it was looked at.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| (version, format!("cannot open it: {e}")))?;
    let meta = file.metadata().map_err(|e| (version, format!("cannot stat it: {e}")))?;
    version = Version::of(&meta);
    if !meta.is_file() {
        return Err((version, format!("it is {}, not a regular file", kind(&meta))));
    }
    let mut bytes = Vec::new();
    // One byte more than allowed tells a file that grew past the limit.
    file.take(MAX_MANIFEST + 1).read_to_end(&mut bytes).map_err(|e| (version, format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err((version, too_large(meta.len().max(bytes.len() as u64))));
    }
    let text = String::from_utf8(bytes).map_err(|_| (version, "it is not UTF-8 text".to_owned()))?;
    parse_manifest(path, &text).map(|entry| (version, entry)).map_err(|err| (version, err))
}

/// A TOML error on one line (toml's own message draws the line on
/// several, which would make one warning several lines of the log).
fn toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().replace('\n', " ");
    match err.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

fn parse_manifest(path: &Path, text: &str) -> Result<Entry, String> {
    let manifest: Manifest = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    crate::names::check(crate::names::Kind::Module, &manifest.name).map_err(|err| err.to_string())?;
    if manifest.command.is_empty() {
        return Err("command is empty".to_owned());
    }
    for var in &manifest.env {
        crate::env::check_entry(&format!("{var}=")).map_err(|err| format!("env: {err}"))?;
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let expand = |s: &str| s.replace("{dir}", &dir.display().to_string());
    // A command given as a relative path is the manifest's neighbour.
    let command = if manifest.command.starts_with("./") || manifest.command.starts_with("../") {
        let relative = manifest.command.strip_prefix("./").unwrap_or(&manifest.command);
        dir.join(relative).display().to_string()
    } else {
        expand(&manifest.command)
    };
    let mut argv = vec![command];
    argv.extend(manifest.args.iter().map(|a| expand(a)));
    // What it implements is a built-in abstraction (its properties and
    // checkers are the built-in's), named exactly or in another case.
    let implements = match &manifest.implements {
        None => None,
        Some(name) => {
            let found = mgr_modules::catalog::all().find(|m| m.name.eq_ignore_ascii_case(name)).ok_or_else(|| {
                format!("implements: {name} is not an abstraction mgr knows (see: mgr-modules --list)")
            })?;
            Some(found)
        }
    };
    let mut properties = Vec::new();
    for id in &manifest.properties {
        let property = mgr_modules::check::property(id)
            .ok_or_else(|| format!("properties: {id} is not a property mgr can check (see: mgrctl modules NAME)"))?;
        properties.push(property.id.to_owned());
    }
    let description = match (manifest.interface.is_empty(), implements) {
        (false, _) => manifest.interface,
        // The interface of what it implements, which is what a user types.
        (true, Some(found)) => found.description.to_owned(),
        (true, None) => manifest.description.clone(),
    };
    Ok(Entry {
        name: manifest.name,
        summary: manifest.description,
        reference: manifest.reference,
        description,
        algorithms: manifest.algorithms,
        argv,
        manifest: Some(path.to_owned()),
        env: manifest.env,
        socket: manifest.socket,
        faults: manifest.faults,
        implements: implements.map(|m| m.name.to_owned()),
        properties,
        dynamic: manifest.dynamic,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_in_another_case_finds_the_one_module_so_named() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("echo.toml", "name = \"Echo\"\ncommand = \"true\"\ndescription = \"x\"\n");
        write("echo2.toml", "name = \"ECHO\"\ncommand = \"true\"\ndescription = \"x\"\n");
        write("sleeper.toml", "name = \"Sleeper\"\ncommand = \"true\"\ndescription = \"x\"\n");
        let registry = Registry::new(PathBuf::from("/opt/mgr-modules"), vec![dir.path().to_owned()]);
        let found = registry.find("fairlosspointtopointlink").unwrap();
        assert_eq!(found.name, "FairLossPointToPointLink");
        assert_eq!(found.argv, ["/opt/mgr-modules", "FairLossPointToPointLink"]);
        assert_eq!(registry.find("SLEEPER").unwrap().name, "Sleeper");
        assert_eq!(registry.find("ECHO").unwrap().name, "ECHO", "an exact name first");
        assert!(registry.find("echo").is_none(), "two modules alike: neither");
        assert!(registry.find("Nope").is_none());
    }

    #[test]
    fn manifests_join_the_built_ins_and_bad_ones_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "good.toml",
            "name = \"Echo\"\ncommand = \"./echo.sh\"\nargs = [\"{dir}/data\", \"-v\"]\ndescription = \"echoes\"\ninterface = \"Events: none\"\n",
        );
        write("clash.toml", "name = \"FairLossPointToPointLink\"\ncommand = \"true\"\ndescription = \"x\"\n");
        write("broken.toml", "name = \"Broken\"\ncommand = \n");
        write("unknown.toml", "name = \"Odd\"\ncommand = \"true\"\ndescription = \"x\"\ncolour = \"red\"\n");
        write("notes.txt", "not a manifest");
        let registry = Registry::new(PathBuf::from("/opt/mgr-modules"), vec![dir.path().to_owned()]);
        let names: Vec<String> = registry.list().into_iter().map(|e| e.name).collect();
        assert_eq!(names.iter().filter(|n| *n == "FairLossPointToPointLink").count(), 1);
        assert!(names.contains(&"Echo".to_owned()));
        assert!(!names.contains(&"Broken".to_owned()) && !names.contains(&"Odd".to_owned()));
        let echo = registry.find("Echo").unwrap();
        let here = dir.path().canonicalize().unwrap();
        assert_eq!(
            echo.argv,
            [here.join("echo.sh").display().to_string(), format!("{}/data", here.display()), "-v".into()]
        );
        assert_eq!(echo.summary, "echoes");
        assert_eq!(echo.description, "Events: none");
        let builtin = registry.find("PerfectPointToPointLink").unwrap();
        assert_eq!(builtin.argv, ["/opt/mgr-modules", "PerfectPointToPointLink"]);
        assert!(registry.find("Nope").is_none());
    }

    /// A writer of log lines the test can read back.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Log {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }

        /// The warnings that mention `what`.
        fn count(&self, what: &str) -> usize {
            self.text().lines().filter(|l| l.contains("WARN") && l.contains(what)).count()
        }
    }

    /// Runs `body` with the warnings of this thread (and of the scan threads
    /// it starts) going to a [`Log`].
    fn logged<T>(body: impl FnOnce(&Log) -> T) -> T {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        tracing::subscriber::with_default(subscriber, || body(&log))
    }

    const GOOD: &str = "name = \"Echo\"\ncommand = \"true\"\ndescription = \"echoes\"\n";

    fn names(registry: &Registry) -> Vec<String> {
        registry.list().into_iter().filter(|e| e.manifest.is_some()).map(|e| e.name).collect()
    }

    #[test]
    fn fifos_devices_and_large_files_are_never_read_and_warned_about_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("good.toml"), GOOD).unwrap();
        nix::unistd::mkfifo(&dir.path().join("fifo.toml"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.toml")).unwrap();
        let large = format!("{GOOD}# {}\n", "x".repeat(MAX_MANIFEST as usize));
        std::fs::write(dir.path().join("large.toml"), large).unwrap();
        std::fs::write(dir.path().join("broken.toml"), "name = \n").unwrap();
        std::os::unix::fs::symlink("nowhere.toml", dir.path().join("dangling.toml")).unwrap();
        logged(|log| {
            let registry = Registry::new(PathBuf::from("mgr-modules"), vec![dir.path().to_owned()]);
            for _ in 0..5 {
                let began = Instant::now();
                assert_eq!(names(&registry), ["Echo"]);
                assert!(began.elapsed() < Duration::from_millis(500), "a list took {:?}", began.elapsed());
                assert!(registry.find("Echo").is_some());
            }
            assert_eq!(log.count("fifo.toml"), 1, "{}", log.text());
            assert!(log.text().contains("it is a FIFO, not a regular file"), "{}", log.text());
            assert_eq!(log.count("zero.toml"), 1, "{}", log.text());
            assert!(log.text().contains("it is a character device"), "{}", log.text());
            assert_eq!(log.count("large.toml"), 1, "{}", log.text());
            assert!(log.text().contains("more than the 65536 a manifest may have"), "{}", log.text());
            assert_eq!(log.count("broken.toml"), 1, "{}", log.text());
            assert_eq!(log.count("dangling.toml"), 1, "{}", log.text());
            assert_eq!(log.count("good.toml"), 0, "{}", log.text());
        });
    }

    #[test]
    fn an_edited_manifest_is_judged_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "name = \"Echo\"\ncommand = \n").unwrap();
        std::fs::write(dir.path().join("clash.toml"), "name = \"Echo2\"\ncommand = \"x\"\ndescription = \"d\"\n")
            .unwrap();
        logged(|log| {
            let registry = Registry::new(PathBuf::from("mgr-modules"), vec![dir.path().to_owned()]);
            assert_eq!(names(&registry), ["Echo2"]);
            assert_eq!(names(&registry), ["Echo2"]);
            assert_eq!(log.count("m.toml"), 1, "{}", log.text());
            // Fixed: it joins, with no new warning.
            std::fs::write(&path, GOOD).unwrap();
            assert_eq!(names(&registry), ["Echo", "Echo2"]);
            assert_eq!(log.count("m.toml"), 1, "{}", log.text());
            // Broken again (another size): warned again, once.
            std::fs::write(&path, "name = \"Echo\"\n").unwrap();
            assert_eq!(names(&registry), ["Echo2"]);
            assert_eq!(names(&registry), ["Echo2"]);
            assert_eq!(log.count("m.toml"), 2, "{}", log.text());
            // A name taken by another manifest: warned once per version.
            std::fs::write(&path, "name = \"Echo2\"\ncommand = \"y\"\ndescription = \"d\"\n").unwrap();
            for _ in 0..3 {
                assert_eq!(registry.list().iter().filter(|e| e.name == "Echo2").count(), 1);
            }
            assert_eq!(log.count("exists already"), 1, "{}", log.text());
            // Removed: it leaves the catalog.
            std::fs::remove_file(dir.path().join("clash.toml")).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert!(names(&registry).is_empty());
        });
    }

    #[test]
    fn a_hung_scan_answers_with_the_last_catalog_and_starts_no_other() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("good.toml"), GOOD).unwrap();
        logged(|log| {
            let registry = Registry::new(PathBuf::from("mgr-modules"), vec![dir.path().to_owned()]);
            assert_eq!(names(&registry), ["Echo"]);
            std::fs::write(dir.path().join("new.toml"), GOOD.replace("Echo", "New")).unwrap();
            // The file system hangs.
            let gate = registry.catalog.gate.lock().unwrap();
            for _ in 0..3 {
                let began = Instant::now();
                assert_eq!(names(&registry), ["Echo"], "the last complete catalog");
                let took = began.elapsed();
                assert!(took >= SCAN_TIMEOUT && took < SCAN_TIMEOUT + Duration::from_millis(900), "took {took:?}");
                // A built-in does not wait for the manifests.
                let began = Instant::now();
                assert!(registry.find("PerfectPointToPointLink").is_some());
                assert!(began.elapsed() < Duration::from_millis(100));
            }
            {
                let state = registry.catalog.lock();
                assert!(state.scanning);
                assert_eq!(state.started, 2, "one scan at a time, however many requests wait");
            }
            assert_eq!(log.count("did not finish within"), 1, "{}", log.text());
            // It recovers: the scan under way ends, and the one the waiting
            // requests asked for shows the new manifest.
            drop(gate);
            assert_eq!(names(&registry), ["Echo", "New"]);
            // The scan under way, plus one for the requests that came
            // during it (the last of them may have come after it ended).
            wait_for(|| !registry.catalog.lock().scanning);
            assert!(registry.catalog.lock().started <= 4);
        });
    }

    fn wait_for(mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
