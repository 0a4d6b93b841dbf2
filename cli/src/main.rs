//! `mgrctl`: parses arguments, sets up logging and calls [`mgr_cli::run`].

use clap::Parser;

fn main() {
    let cli = mgr_cli::Cli::parse();
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            mgr_cli::note!("mgrctl: cannot start: {err}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(mgr_cli::run(cli)) {
        Ok(code) => i32::from(code),
        // Whoever read our output has taken what they wanted (`| head`):
        // that is no failure, and nothing is to be said.
        Err(err) if mgr_cli::stdout::is_closed(&err) => 0,
        Err(err) => {
            mgr_cli::note!("mgrctl: {err:#}");
            1
        }
    };
    // A read of stdin may still be blocked in a runtime thread: do not wait
    // for it.
    runtime.shutdown_background();
    std::process::exit(code);
}
