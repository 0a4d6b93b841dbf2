//! `mgrctl web` in a real browser: headless Chromium (Debian's `chromium`
//! and `chromedriver`, which `.ci/run` installs) driven over WebDriver
//! against a real daemon and a real run. Everything stays on loopback: the
//! page, chromedriver, and the browser, started without its background
//! network services.

use std::io::{Read, Write as _};
use std::net::{TcpListener, TcpStream};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::harness::*;

/// A chromedriver on a free loopback port, with its browser; both are
/// killed (their whole process group) when dropped, even when a test fails.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Result<Driver> {
        let path = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .context("chromedriver is not installed: apt-get install chromium chromium-driver (.ci/run does)")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = std::os::unix::process::CommandExt::process_group(
            Command::new(path).arg(format!("--port={port}")).arg("--allowed-ips=127.0.0.1"),
            0,
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
        let driver = Driver { child, port, profile: tempfile::tempdir()? };
        wait_until("chromedriver to listen", || TcpStream::connect(("127.0.0.1", port)).is_ok())?;
        Ok(driver)
    }

    /// A headless browser session, as the machine allows it: no sandbox
    /// (root), no GPU, none of the browser's own network services.
    async fn browser(&self) -> Result<Client> {
        let options = serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--window-size=1400,1200",
                format!("--user-data-dir={}", self.profile.path().display()),
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .context("cannot start a chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Starts `mgrctl web` on a free port; returns it and its URL.
fn web(daemon: &Daemon) -> Result<(Session, String)> {
    let mut session = daemon.spawn(&["web", "--listen", "127.0.0.1:0"])?;
    let line = session.expect("with the URL", |l| l.contains("http://"))?;
    Ok((session, line.trim().to_owned()))
}

/// A raw HTTP/1.1 GET: the status line and the body.
fn get(address: &str, path: &str) -> Result<(String, String)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// Polls the page until `count` elements match `css`.
async fn wait_for(browser: &Client, what: &str, css: &str, want: impl Fn(usize) -> bool) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let n = browser.find_all(Locator::Css(css)).await?.len();
        if want(n) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: {n} elements match {css}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the page until the text of `css` satisfies `want`.
async fn wait_text(browser: &Client, what: &str, css: &str, want: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let text = match browser.find(Locator::Css(css)).await {
            Ok(node) => node.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if want(&text) {
            return Ok(text);
        }
        if Instant::now() > deadline {
            bail!("{what}: {css} reads {text:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the element `css` names, as a user would: the page redraws its
/// lists and its diagram as the run goes on, so an element found just
/// before a redraw may be gone by the click; it is then found again.
async fn click(browser: &Client, css: &str) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let clicked = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.click().await.map(|_| ()),
            Err(err) => Err(err),
        };
        match clicked {
            Ok(()) => return Ok(()),
            Err(err) if err.to_string().contains("stale element") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

#[test]
fn the_web_page_refuses_every_request_without_its_token() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    let (_web, url) = web(&daemon)?;
    let address = url.trim_start_matches("http://").split('/').next().context("an address")?.to_owned();
    let token = url.split("token=").nth(1).context("a token")?.split('#').next().unwrap_or_default().to_owned();
    assert_eq!(token.len(), 32, "{url}");
    for path in ["/", "/api/state", "/api/runs/x/view", "/?token=", "/?token=0123456789abcdef0123456789abcdef"] {
        let (status, body) = get(&address, path)?;
        assert!(status.contains(" 403 "), "{path}: {status}");
        assert!(body.contains("token"), "{path}: says why: {body}");
    }
    let (status, body) = get(&address, &format!("/?token={token}"))?;
    assert!(status.contains(" 200 "), "{status}");
    assert!(body.contains("<title>mgr</title>") && !body.contains("http://") && !body.contains("https://"));
    // Not even with the token from a page that names another host (DNS
    // rebinding).
    let mut stream = TcpStream::connect(&address)?;
    write!(stream, "GET /?token={token} HTTP/1.1\r\nHost: mgr.evil.example\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    // A stranger holds no connection: one refused is closed after its
    // answer, even when it asks to keep it...
    let mut kept = TcpStream::connect(&address)?;
    kept.set_read_timeout(Some(TIMEOUT))?;
    write!(kept, "GET /api/state HTTP/1.1\r\nHost: {address}\r\n\r\n")?;
    let mut answer = String::new();
    kept.read_to_string(&mut answer)?;
    assert!(answer.starts_with("HTTP/1.1 403"), "read to its end: the server closed it: {answer}");
    // ...and 300 that never send a request are cut after 3 s, so the
    // token's holder gets in.
    let idle: Vec<TcpStream> = (0..300).map(|_| TcpStream::connect(&address)).collect::<std::io::Result<_>>()?;
    let began = Instant::now();
    let (status, _) = get(&address, &format!("/?token={token}"))?;
    assert!(status.contains(" 200 "), "{status}");
    assert!(began.elapsed() < Duration::from_secs(15), "in {:?}", began.elapsed());
    let mut first = &idle[0];
    first.set_read_timeout(Some(TIMEOUT))?;
    assert_eq!(first.read(&mut [0u8; 16]).unwrap_or(0), 0, "an idle connection is closed");
    drop(idle);
    // And it never listens beyond loopback.
    let refused = daemon.err(&["web", "--listen", "0.0.0.0:0"])?;
    assert!(refused.contains("loopback only"), "{refused}");
    Ok(())
}

#[test]
fn the_live_view_lists_runs_draws_messages_and_cuts_partitions_and_kills_from_the_page() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    daemon.ok(&["launch", "BestEffortBroadcast", "3", "--name", "live", "--detach"])?;
    let (_web, url) = web(&daemon)?;
    let driver = Driver::start()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let browser = driver.browser().await?;
        let result = async {
            browser.goto(&url).await?;
            // The run list shows the launched run, with its instances.
            wait_text(&browser, "the run list", "tr[data-run=live]", |t| t.contains("3 running")).await?;
            wait_text(&browser, "the members", "tr[data-member=test]", |t| t.contains("alive")).await?;
            click(&browser, "tr[data-run=live] a").await?;
            wait_for(&browser, "the instances", "#instances tr[data-instance]", |n| n == 3).await?;

            // A broadcast typed into the page: p1 sends to all three.
            click(&browser, "#send-to option[value=p1]").await?;
            browser.find(Locator::Id("send-line")).await?.send_keys("broadcast one").await?;
            browser.find(Locator::Css("#send-form button")).await?.click().await?;
            wait_for(&browser, "three arrows", "#diagram svg .msg", |n| n == 3).await?;
            wait_text(&browser, "the output", "#output", |t| t.contains("p3 | deliver p1 one")).await?;

            // A partition cut on the page: p3 on one side.
            click(&browser, "#sides input[value=p3]").await?;
            browser.find(Locator::Id("cut")).await?.click().await?;
            wait_text(&browser, "the answer", "#control-result", |t| t.contains("faults partition=")).await?;
            let faults = daemon.ok(&["fault", "live"])?;
            assert_eq!(faults.trim(), "live: faults partition=p3/p1,p2", "mgrctl sees the page's partition");
            wait_text(&browser, "the faults shown", "#faults", |t| t.contains("partition=p3/p1,p2")).await?;
            browser.find(Locator::Id("send-line")).await?.send_keys("broadcast two").await?;
            browser.find(Locator::Css("#send-form button")).await?.click().await?;
            // p1 to p1 and p2 arrive; p1 to p3 is lost at the cut.
            wait_for(&browser, "two more arrows", "#diagram svg .msg", |n| n == 5).await?;
            wait_for(&browser, "one loss", "#diagram svg .lost", |n| n == 1).await?;

            // A kill from the page: p2 is killed, and the diagram crosses it.
            click(&browser, "tr[data-instance=p2] button[data-kind=kill]").await?;
            wait_text(&browser, "p2 killed", "tr[data-instance=p2] .state", |t| t == "killed").await?;
            wait_for(&browser, "its crash", "#diagram svg .crash", |n| n == 1).await?;
            let ps = daemon.ok(&["ps", "live"])?;
            assert!(ps.lines().any(|l| l.contains(" p2 ") && l.contains("killed")), "{ps}");

            // A click on a mark shows its event's clocks.
            click(&browser, "#diagram svg circle.event").await?;
            wait_text(&browser, "the details", "#details", |t| t.contains("lamport") && t.contains("vc [")).await?;

            if let Some(dir) = std::env::var_os("MGR_SCREENSHOTS") {
                std::fs::write(Path::new(&dir).join("web-live.png"), browser.screenshot().await?)?;
            }

            // Loss and delay set in the form, as `mgrctl fault` sees them.
            browser.find(Locator::Id("loss")).await?.send_keys("0.25").await?;
            browser.find(Locator::Id("delay")).await?.send_keys("1-2").await?;
            browser.find(Locator::Id("apply-faults")).await?.click().await?;
            wait_text(&browser, "the answer", "#control-result", |t| t.contains("loss=0.25")).await?;
            let faults = daemon.ok(&["fault", "live"])?;
            assert!(faults.contains("loss=0.25") && faults.contains("delay=1-2"), "{faults}");
            let bad = daemon.err(&["fault", "live", "--loss", "2"])?;
            browser.find(Locator::Id("loss")).await?.clear().await?;
            browser.find(Locator::Id("loss")).await?.send_keys("2").await?;
            browser.find(Locator::Id("apply-faults")).await?.click().await?;
            let refused = wait_text(&browser, "the refusal", "#control-result.failed", |t| !t.is_empty()).await?;
            assert!(bad.contains(&refused), "the page says {refused:?}, mgrctl says {bad:?}");

            // A control that fails shows mgrctl's own error.
            let said = daemon.err(&["send", "live/p2", "hello"])?;
            click(&browser, "#send-to option[value=p2]").await?;
            browser.find(Locator::Id("send-line")).await?.send_keys("hello").await?;
            browser.find(Locator::Css("#send-form button")).await?.click().await?;
            let shown =
                wait_text(&browser, "the error", "#control-result.failed", |t| !t.is_empty() && t != refused).await?;
            assert!(said.contains(&shown), "the page says {shown:?}, mgrctl says {said:?}");

            // Nothing the page loaded or asked for left this server.
            let asked = browser
                .execute(
                    "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);",
                    vec![],
                )
                .await?;
            let origin = url.split("/?").next().unwrap_or_default();
            let asked: Vec<String> = serde_json::from_value(asked)?;
            assert!(asked.len() >= 4, "the page, its streams and its posts: {asked:?}");
            assert!(asked.iter().all(|u| u.starts_with(origin)), "{asked:?}");

            anyhow::Ok(())
        }
        .await;
        let _ = browser.close().await;
        result
    })
}

#[test]
fn up_with_web_opens_the_live_view_of_its_run_and_keeps_it_until_ctrl_c() -> Result<()> {
    let daemon = Daemon::start(&[])?;
    // The "browser" records the URL it is asked to open.
    let dir = tempfile::tempdir()?;
    let opened = dir.path().join("opened");
    let browser = dir.path().join("browser");
    std::fs::write(&browser, format!("#!/bin/sh\necho \"$1\" > {}\n", opened.display()))?;
    std::fs::set_permissions(&browser, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let mut command = daemon.command(&["up", &crate::examples::example("multicast.toml"), "--name", "mcw", "--web"]);
    command.env("BROWSER", &browser);
    let up = Session::spawn(command)?;
    wait_until("the browser to be opened", || {
        std::fs::read_to_string(&opened).is_ok_and(|u| u.ends_with("#run=mcw\n"))
    })?;
    let url = std::fs::read_to_string(&opened)?.trim().to_owned();
    let address = url.trim_start_matches("http://").split('/').next().context("an address")?.to_owned();
    let token = url.split("token=").nth(1).and_then(|t| t.split('#').next()).context("a token")?.to_owned();
    // The run's view is served while the scenario runs and after it.
    wait_until("the run to end", || daemon.ok(&["ps", "mcw"]).is_ok_and(|ps| !ps.contains("running")))?;
    thread::sleep(Duration::from_millis(500));
    let mut stream = TcpStream::connect(&address)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    write!(stream, "GET /api/runs/mcw/view?token={token} HTTP/1.1\r\nHost: {address}\r\n\r\n")?;
    let mut seen = String::new();
    let mut buffer = [0u8; 65536];
    while !seen.contains("\"verdicts\"") {
        let n = stream.read(&mut buffer)?;
        anyhow::ensure!(n > 0, "the view ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    assert!(seen.contains("event: view") && seen.contains("\"run\":\"mcw\"") && seen.contains("<svg"), "{seen}");
    assert!(seen.contains("\"ended\":true"), "the run is over");
    // Still there until Ctrl-C; then up exits with the scenario's status.
    assert!(alive(i64::from(up.pid())), "up waits with the page");
    up.signal(nix::sys::signal::Signal::SIGINT);
    let (code, _) = up.finish()?;
    assert_eq!(code, 0, "the scenario passed");
    assert!(TcpStream::connect(&address).is_err(), "the page is gone with it");
    Ok(())
}
