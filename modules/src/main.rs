//! `mgr-modules <Module> [args...]`: the one binary holding every built-in
//! module. The daemon starts it with the launch contract in the environment;
//! see `modules/README.md`.

use std::process::ExitCode;

use mgr_modules::catalog;
use mgr_modules::runtime::{Contract, RunError};

const USAGE: &str = "usage: mgr-modules <Module> [args...]   (mgr-modules --list for the modules)";

fn main() -> ExitCode {
    // Arguments are decoded lossily so that a stray byte produces a clear
    // "unknown module" error instead of a panic.
    let args: Vec<String> = std::env::args_os().skip(1).map(|arg| arg.to_string_lossy().into_owned()).collect();
    let Some(name) = args.first() else {
        eprintln!("error: no module given; {USAGE}");
        return ExitCode::from(2);
    };
    match name.as_str() {
        "--list" => {
            for info in catalog::all() {
                println!("{}", info.name);
            }
            return ExitCode::SUCCESS;
        }
        "--help" | "-h" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let Some(entry) = mgr_modules::entry_point(name) else {
        let known: Vec<&str> = catalog::all().map(|info| info.name).collect();
        eprintln!("error: unknown module '{name}' (known: {})", known.join(", "));
        return ExitCode::from(2);
    };
    let contract = match Contract::from_env() {
        Ok(contract) => contract,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    match entry(contract, &args[1..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(RunError::Usage(message)) => {
            eprintln!("error: {name}: {message}");
            ExitCode::from(2)
        }
        Err(RunError::Failed(err)) => {
            eprintln!("error: {name}: {err:#}");
            ExitCode::from(1)
        }
    }
}
