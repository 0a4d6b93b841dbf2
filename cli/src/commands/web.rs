//! `mgrctl web`: serves the live view of the group and its runs in a
//! browser, on loopback, until interrupted. The server is [`crate::web`]'s;
//! this file parses the options, prints the URL and opens a browser.

use std::io::Write;
use std::net::SocketAddr;

use crate::client::Client;

/// Where the page is served unless --listen says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6180";

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  mgrctl web                              prints http://127.0.0.1:6180/?token=…: open it in a browser
  mgrctl web --open --run lab             opens a browser on run lab's live view
  mgrctl web --listen 127.0.0.1:0         any free port
  ssh -L 6180:127.0.0.1:6180 lab-01       from a laptop: the page of lab-01's manager
The page shows the group's members and runs, and for a run its space-time
diagram growing as events arrive, its output, its check verdicts, and
controls that make the same calls as mgrctl send, stop, kill, pause,
resume, restart and fault. Every request must carry the URL's token (a new
one each time mgrctl web starts); the server listens on loopback only.")]
pub struct WebArgs {
    /// The loopback address and port to serve on (127.0.0.1 or ::1; port 0
    /// for any free one).
    #[arg(long, value_name = "IP:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Open the page in the desktop's browser (xdg-open, or $BROWSER).
    #[arg(long)]
    pub open: bool,
    /// Open the page on this run's live view.
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
}

pub async fn web(client: Client, args: WebArgs) -> anyhow::Result<u8> {
    let listener = crate::web::bind(args.listen).await?;
    let token = crate::web::token();
    let url = crate::web::url(&listener, &token, args.run.as_deref())?;
    {
        let mut out = crate::stdout::lock();
        writeln!(out, "mgrctl web: the live view is at\n    {url}\n(only with this token; Ctrl-C to stop)")?;
        out.flush()?;
    }
    if args.open {
        open(&url);
    }
    crate::web::serve(client, listener, token, interrupted()).await?;
    Ok(0)
}

/// Asks the desktop to open `url`; says so when it cannot, and goes on
/// serving (the URL is printed).
pub fn open(url: &str) {
    let opener = std::env::var("BROWSER").ok().filter(|b| !b.is_empty()).unwrap_or_else(|| "xdg-open".to_owned());
    let spawned = std::process::Command::new(&opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(err) = spawned {
        crate::note!("mgrctl: cannot open a browser with {opener} ({err}): open the URL above by hand");
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
