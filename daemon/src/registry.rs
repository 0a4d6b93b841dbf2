//! The registry: which modules this manager can launch, and how.
//!
//! Built-in modules come from the `mgr-modules` catalog and run as
//! `mgr-modules <Name>`. Extra modules, in any language, are TOML manifests
//! (`*.toml`) in the `--modules-dir` folders, read anew on every request so
//! that a module can be added without restarting the manager:
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
//! A manifest that cannot be read, or that reuses a built-in name, is left
//! out with a warning in the manager's log. This module resolves names; it
//! does not start anything.

use std::path::{Path, PathBuf};

use serde::Deserialize;

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
}

/// The built-ins and the manifest folders.
#[derive(Debug, Clone)]
pub struct Registry {
    modules_bin: PathBuf,
    dirs: Vec<PathBuf>,
}

impl Registry {
    pub fn new(modules_bin: PathBuf, dirs: Vec<PathBuf>) -> Self {
        Registry { modules_bin, dirs }
    }

    /// Every module: the built-ins first, then the manifests by name.
    pub fn list(&self) -> Vec<Entry> {
        let mut entries: Vec<Entry> = mgr_modules::catalog::all()
            .map(|m| Entry {
                name: m.name.to_owned(),
                summary: m.summary.to_owned(),
                reference: m.reference.to_owned(),
                description: m.description.to_owned(),
                algorithms: m.algorithms.iter().map(|a| (*a).to_owned()).collect(),
                argv: vec![self.modules_bin.display().to_string(), m.name.to_owned()],
                manifest: None,
                env: Vec::new(),
            })
            .collect();
        let mut extra = Vec::new();
        for dir in &self.dirs {
            extra.extend(read_dir(dir));
        }
        extra.sort_by(|a: &Entry, b| a.name.cmp(&b.name));
        for entry in extra {
            if entries.iter().any(|e| e.name == entry.name) {
                let path = entry.manifest.as_deref().unwrap_or(Path::new("?")).display().to_string();
                tracing::warn!(manifest = %path, name = %entry.name, "a module of that name exists already: manifest left out");
                continue;
            }
            entries.push(entry);
        }
        entries
    }

    /// The module called `name`.
    pub fn find(&self, name: &str) -> Option<Entry> {
        self.list().into_iter().find(|e| e.name == name)
    }
}

/// The manifests of one folder (a missing folder has none).
fn read_dir(dir: &Path) -> Vec<Entry> {
    let Ok(files) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for file in files.flatten() {
        let path = file.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        match read_manifest(&path) {
            Ok(entry) => entries.push(entry),
            Err(err) => tracing::warn!(manifest = %path.display(), "module manifest left out: {err}"),
        }
    }
    entries
}

fn read_manifest(path: &Path) -> Result<Entry, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let manifest: Manifest = toml::from_str(&text).map_err(|e| e.to_string())?;
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    if manifest.name.is_empty() || !manifest.name.chars().all(valid) {
        return Err(format!("name '{}' is not valid (letters, digits, '-', '_', '.')", manifest.name));
    }
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
    let description = if manifest.interface.is_empty() { manifest.description.clone() } else { manifest.interface };
    Ok(Entry {
        name: manifest.name,
        summary: manifest.description,
        reference: manifest.reference,
        description,
        algorithms: manifest.algorithms,
        argv,
        manifest: Some(path.to_owned()),
        env: manifest.env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
