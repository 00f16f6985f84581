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
        "Page.navigate",
        json!({"url": format!("{}/ops", sys.api_url)}),
    )
    .await;
    // Signing in: the token is pasted once, exchanged for an HttpOnly session cookie, and
    // kept nowhere the page's script can read.
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
