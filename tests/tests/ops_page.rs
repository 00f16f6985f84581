//! The /ops page in a real headless Chromium, driven over the DevTools protocol: it shows the
//! queues' counts, lists a dead job, and its Retry button brings the email back.
//! Chromium comes from Debian's `chromium` package; the test installs it when missing (as
//! root, with apt-get) and is skipped, saying so, only where it cannot be had.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use gateway_testkit::TestSystem;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;

fn chromium() -> Option<&'static str> {
    let found = |b: &str| {
        std::process::Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    for b in ["chromium", "chromium-browser"] {
        if found(b) {
            return Some(b);
        }
    }
    eprintln!("chromium is missing: installing Debian's chromium package");
    let installed = std::process::Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "chromium"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (installed && found("chromium")).then_some("chromium")
}

struct Page {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Page {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.ws
            .send(Message::text(
                json!({"id": id, "method": method, "params": params}).to_string(),
            ))
            .await
            .unwrap();
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("DevTools answers")
                .unwrap()
                .unwrap();
            let v: Value = serde_json::from_str(msg.to_text().unwrap_or("{}")).unwrap_or_default();
            if v["id"] == id {
                return v["result"].clone();
            }
        }
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Writes a PNG of the whole page to `.local/screenshots/ops-{name}.png`.
    async fn screenshot(&mut self, name: &str) {
        use base64::Engine;
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("a screenshot"))
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("ops-{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    /// Clicks the element a CSS selector finds.
    async fn click(&mut self, selector: &str) {
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({selector:?}); if (!e) return false; e.click(); return true; }})()"
            ))
            .await;
        assert_eq!(found, json!(true), "nothing to click at {selector}");
    }

    /// Polls a JavaScript expression until it is true.
    async fn wait_for(&mut self, expression: &str, what: &str) {
        for _ in 0..300 {
            if self.eval(expression).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let html = self.eval("document.body.innerText").await;
        panic!("the page never showed {what}; it shows:\n{html}");
    }
}

/// Starts headless Chromium and attaches to its page over the DevTools protocol.
async fn open_browser(browser: &str) -> (Page, tokio::process::Child, std::path::PathBuf) {
    let profile =
        std::env::temp_dir().join(format!("pbg-chromium-{}", uuid::Uuid::new_v4().simple()));
    let mut child = tokio::process::Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let devtools = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                return url.trim().to_owned();
            }
        }
        panic!("Chromium exited without a DevTools address")
    })
    .await
    .expect("Chromium starts");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let port = devtools
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page_ws = targets
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "page")
        .unwrap()["webSocketDebuggerUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ws, _) = tokio_tungstenite::connect_async(page_ws).await.unwrap();
    let mut page = Page { ws, next_id: 0 };
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    (page, child, profile)
}

/// Opens the console and signs in: the token is pasted once, exchanged for an HttpOnly session
/// cookie, and kept nowhere the page's script can read.
async fn sign_in(page: &mut Page, api_url: &str, op: &str) {
    page.call("Page.navigate", json!({"url": format!("{}/ops", api_url)}))
        .await;
    page.wait_for(
        "!!document.querySelector('#sign-in') && !document.querySelector('#sign-in').hidden",
        "the sign-in form",
    )
    .await;
    page.eval(&format!(
        "document.getElementById('token').value = '{op}'; \
         document.getElementById('sign-in').requestSubmit(); true"
    ))
    .await;
    page.wait_for(
        "!document.getElementById('console').hidden",
        "the console after signing in",
    )
    .await;
    assert_eq!(
        page.eval("document.getElementById('token').value").await,
        ""
    );
    assert_eq!(
        page.eval("document.cookie").await,
        "",
        "the session cookie is HttpOnly"
    );
    assert_eq!(
        page.eval("JSON.stringify(sessionStorage) + JSON.stringify(localStorage)")
            .await,
        "{}{}"
    );
}

/// Where the browser tests leave their screenshots for a person to look at.
fn screenshot_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.local/screenshots")
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_see_a_dead_job_on_the_ops_page_and_retry_it() {
    let Some(browser) = chromium() else {
        panic!("Chromium is missing and could not be installed (apt-get unavailable or not root): install Debian's chromium package, or run scripts/test, which installs it");
    };
    let sys = TestSystem::start_with(&[("EMAIL_MAX_ATTEMPTS", "1")])
        .await
        .unwrap();
    let op = operator_token(&sys).await;
    sys.smtp.refuse(true);
    enroll(&sys, "page", "page@page-corp.example", "Page Corp").await;

    let (mut page, mut child, profile) = open_browser(browser).await;
    sign_in(&mut page, &sys.api_url, &op).await;

    let dead = r#"(document.querySelector('#queues tr[data-queue="email"] td[data-state="dead"]') || {}).textContent"#;
    page.wait_for(&format!("{dead} === '1'"), "one dead email job")
        .await;
    page.eval(r#"document.querySelector('#queues tr[data-queue="email"] td[data-state="dead"]').click(); true"#).await;
    page.wait_for(
        "document.querySelectorAll('#jobs tbody tr').length === 1",
        "the dead job listed",
    )
    .await;
    let row = page
        .eval("document.querySelector('#jobs tbody tr').innerText")
        .await;
    assert!(row.as_str().unwrap().contains("email_id"), "{row}");

    sys.smtp.refuse(false);
    page.eval("document.querySelector('#jobs button.retry').click(); true")
        .await;
    sys.smtp
        .wait_for("page@page-corp.example", 1, Duration::from_secs(30))
        .await
        .unwrap();
    page.wait_for(&format!("{dead} === '0'"), "no dead job after the retry")
        .await;
    assert_eq!(
        page.eval("document.getElementById('error').textContent")
            .await,
        ""
    );
    // A reload keeps the session (the cookie), and signing out ends it.
    page.call("Page.reload", json!({})).await;
    page.wait_for(
        "!document.getElementById('console').hidden",
        "the console after a reload",
    )
    .await;
    page.eval("document.getElementById('sign-out').click(); true")
        .await;
    page.wait_for(
        "!document.getElementById('sign-in').hidden && document.getElementById('console').hidden",
        "the sign-in form after signing out",
    )
    .await;
    drop(page);
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&profile);
}

/// Every screen of the console in a real browser: the live counts and the chart after jobs
/// run, latency growing while a queue is paused and falling after resume, a partner's renewal
/// and email jobs found by name, a dead job's detail with its attempt, and a bulk retry of the
/// dead set delivering the emails. Each screen is saved as a screenshot.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_drives_every_screen_in_a_browser() {
    let Some(browser) = chromium() else {
        panic!("Chromium is missing and could not be installed (apt-get unavailable or not root): install Debian's chromium package, or run scripts/test, which installs it");
    };
    let mut env = BILLING_ENV.to_vec();
    // One email per job, so two dead emails are two dead jobs.
    env.extend([("EMAIL_MAX_ATTEMPTS", "1"), ("EMAIL_BATCH", "1")]);
    let sys = TestSystem::start_with(&env).await.unwrap();
    let op = operator_token(&sys).await;
    let (pid, ga) = authorized_partner(&sys, "console").await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(&sys, &ga, "ACTION_PACK", &card).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    let ad = parse_time(&order["subscription"]["anniversaryDate"]);
    advance_to(&sys, &op, &pid, ad + chrono::Duration::hours(1)).await;
    eventually(60, "the renewal", || async {
        (subscription(&sys, &ga, &sub_id).await["term"] == 2).then_some(())
    })
    .await;
    eventually(30, "every email sent", || async {
        (count(
            &sys,
            "SELECT count(*) AS n FROM emails WHERE status <> 'SENT'",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;

    let (mut page, mut child, profile) = open_browser(browser).await;
    sign_in(&mut page, &sys.api_url, &op).await;

    // Overview: counts pushed over the console's socket, the chart drawn from what ran.
    page.wait_for(
        "document.getElementById('live').textContent === 'live'",
        "live counts over the socket",
    )
    .await;
    page.wait_for(
        "Number(document.getElementById('chart').dataset.processed) > 0",
        "processed jobs on the chart",
    )
    .await;
    page.wait_for(
        "document.querySelectorAll('#workers tbody tr').length === 1",
        "the worker process",
    )
    .await;
    page.screenshot("overview").await;

    // Pausing a queue: its jobs wait in Postgres and its latency grows; resuming drains it.
    let latency = |q: &str| {
        format!("Number(document.querySelector('#queues tr[data-queue=\"{q}\"] td[data-latency]').textContent)")
    };
    page.click("#queues tr[data-queue=\"refund\"] button.pause")
        .await;
    page.wait_for(
        "document.querySelector('#queues tr[data-queue=\"refund\"]').className === 'paused'",
        "the refund queue paused",
    )
    .await;
    let done = "Number(document.querySelector('#queues tr[data-queue=\"refund\"] td[data-state=\"done\"]').textContent)";
    let done_before = page.eval(done).await.as_i64().unwrap();
    queue_noop_jobs(&sys, &pid, "REFUND", "refund", 5).await;
    page.wait_for(
        &format!("{} >= 2", latency("refund")),
        "the paused queue's latency growing",
    )
    .await;
    page.screenshot("paused").await;
    page.click("#queues tr[data-queue=\"refund\"] button.resume")
        .await;
    page.wait_for(
        &format!(
            "{} < 1 && {done} === {}",
            latency("refund"),
            done_before + 5
        ),
        "the latency falling after resume, the jobs done",
    )
    .await;

    // Jobs by partner: the renewal and the emails of this partner.
    page.click("nav button[data-screen=\"jobs-screen\"]").await;
    page.eval(
        "document.getElementById('find-by').value = 'partner'; \
         document.getElementById('find-value').value = 'console corp'; \
         document.getElementById('find').requestSubmit(); true",
    )
    .await;
    page.wait_for(
        "!!document.querySelector('#jobs tbody tr[data-queue=\"renewal\"]') && !!document.querySelector('#jobs tbody tr[data-queue=\"email\"]')",
        "the partner's renewal and email jobs",
    )
    .await;
    page.screenshot("jobs-by-partner").await;

    // Two emails go dead; a dead job's detail shows its attempt and what a retry would do.
    sys.smtp.refuse(true);
    enroll(&sys, "dead1", "d1@dead1-corp.example", "Dead One Corp").await;
    enroll(&sys, "dead2", "d2@dead2-corp.example", "Dead Two Corp").await;
    page.click("nav button[data-screen=\"overview\"]").await;
    let dead = "(document.querySelector('#queues tr[data-queue=\"email\"] td[data-state=\"dead\"]') || {}).textContent";
    page.wait_for(&format!("{dead} === '2'"), "two dead email jobs")
        .await;
    page.click("#queues tr[data-queue=\"email\"] td[data-state=\"dead\"]")
        .await;
    page.wait_for(
        "document.querySelectorAll('#jobs tbody tr').length === 2 && document.getElementById('jobs-total').textContent === '1–2 of 2'",
        "the dead set listed",
    )
    .await;
    page.click("#jobs tbody tr td.link").await;
    page.wait_for(
        "!document.getElementById('detail').hidden && document.querySelectorAll('#attempts tbody tr').length === 1",
        "the job's attempt",
    )
    .await;
    let attempt = page
        .eval("document.querySelector('#attempts tbody tr').innerText")
        .await;
    assert!(attempt.as_str().unwrap().contains("dead"), "{attempt}");
    let would = page
        .eval("document.getElementById('retry-would').textContent")
        .await;
    assert!(
        would.as_str().unwrap().starts_with("Revives 1 DEAD email"),
        "{would}"
    );
    let subject = page
        .eval("document.querySelector('#subjects tbody tr').innerText")
        .await;
    assert!(subject.as_str().unwrap().contains("DEAD"), "{subject}");
    page.screenshot("job-detail").await;

    // Bulk retry of the dead set, confirmed: both emails are delivered.
    sys.smtp.refuse(false);
    page.click("#detail-back").await;
    page.wait_for(
        "!document.getElementById('jobs-screen').hidden && !!document.querySelector('#bulk button.retry-all')",
        "the dead set again",
    )
    .await;
    page.click("#bulk button.retry-all").await;
    page.screenshot("bulk-confirm").await;
    page.click("#bulk button.confirm").await;
    for to in ["d1@dead1-corp.example", "d2@dead2-corp.example"] {
        sys.smtp
            .wait_for(to, 1, Duration::from_secs(30))
            .await
            .unwrap();
    }
    page.click("nav button[data-screen=\"overview\"]").await;
    page.wait_for(
        &format!("{dead} === '0'"),
        "no dead job after the bulk retry",
    )
    .await;
    assert_eq!(
        page.eval("document.getElementById('error').textContent")
            .await,
        ""
    );
    drop(page);
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&profile);
}
