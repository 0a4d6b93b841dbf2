//! The man pages of `mgr` and `mgrctl` in `dist/man/`, generated from their
//! clap definitions with clap_mangen: a test that fails when the committed
//! pages differ from what the code generates, and the generator itself,
//! an ignored test:
//!
//! ```sh
//! cargo test -p mgr-daemon --test man -- --ignored
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::CommandFactory;

const REGENERATE: &str = "cargo test -p mgr-daemon --test man -- --ignored";

fn man_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/man")
}

/// Every page, by file name: one per command and subcommand (`mgr.1`,
/// `mgr-start.1`, `mgrctl-launch.1`…), as `clap_mangen::generate_to` names
/// them.
fn pages() -> BTreeMap<String, Vec<u8>> {
    fn add(command: clap::Command, pages: &mut BTreeMap<String, Vec<u8>>) {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            add(sub.clone(), pages);
        }
        let man = clap_mangen::Man::new(command);
        let mut page = Vec::new();
        man.render(&mut page).expect("rendering into memory");
        pages.insert(man.get_filename(), page);
    }
    let mut pages = BTreeMap::new();
    for command in [mgr_daemon::cli::Cli::command(), mgr_cli::Cli::command()] {
        let mut command = command.disable_help_subcommand(true);
        command.build();
        add(command, &mut pages);
    }
    pages
}

fn committed() -> BTreeMap<String, Vec<u8>> {
    let mut pages = BTreeMap::new();
    for entry in std::fs::read_dir(man_dir()).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".1") {
            pages.insert(name, std::fs::read(entry.path()).unwrap_or_default());
        }
    }
    pages
}

#[test]
fn the_committed_man_pages_are_those_the_code_generates() {
    let (want, have) = (pages(), committed());
    let mut wrong = Vec::new();
    for (name, page) in &want {
        match have.get(name) {
            None => wrong.push(format!("{name} is missing")),
            Some(old) if old != page => wrong.push(format!("{name} is stale")),
            Some(_) => {}
        }
    }
    wrong.extend(have.keys().filter(|name| !want.contains_key(*name)).map(|name| format!("{name} has no command")));
    assert!(
        wrong.is_empty(),
        "dist/man does not match the commands' help: {}.\nRegenerate the pages with:\n  {REGENERATE}",
        wrong.join(", ")
    );
    for name in ["mgr.1", "mgr-start.1", "mgr-status.1", "mgr-stop.1", "mgrctl.1", "mgrctl-launch.1"] {
        assert!(want.contains_key(name), "no page {name}");
    }
}

/// The generator: replaces dist/man with the pages of the current code.
#[test]
#[ignore = "writes dist/man: run it to regenerate the man pages"]
fn regenerate_man_pages() {
    let dir = man_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for name in committed().keys() {
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    for (name, page) in pages() {
        std::fs::write(dir.join(name), page).unwrap();
    }
    eprintln!("wrote the man pages to {}", dir.display());
}
