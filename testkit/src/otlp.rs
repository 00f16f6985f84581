//! A small OTLP/HTTP receiver for tests: accepts `POST /v1/traces` with JSON bodies (what the
//! binaries export with OTEL_EXPORTER_OTLP_ENDPOINT) and keeps every span, with the
//! `service.name` of the process that sent it.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

pub struct OtlpSink {
    /// The endpoint to give as OTEL_EXPORTER_OTLP_ENDPOINT.
    pub url: String,
    spans: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpSink {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let spans: Arc<Mutex<Vec<Value>>> = Default::default();
        let kept = spans.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, kept).await;
                });
            }
        });
        Ok(Self { url, spans, task })
    }

    /// Every span received so far, each with a `service` entry added.
    pub fn spans(&self) -> Vec<Value> {
        self.spans.lock().unwrap().clone()
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: HTTP/1.1 requests one after another (the exporter keeps connections).
async fn serve(stream: tokio::net::TcpStream, kept: Arc<Mutex<Vec<Value>>>) -> anyhow::Result<()> {
    let mut stream = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            stream.read_line(&mut header).await?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                }
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        let status = if path == "/v1/traces" {
            match serde_json::from_slice::<Value>(&body) {
                Ok(request) => {
                    keep(&request, &kept);
                    "200 OK"
                }
                Err(_) => "400 Bad Request",
            }
        } else {
            "404 Not Found"
        };
        stream
            .get_mut()
            .write_all(
                format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}")
                    .as_bytes(),
            )
            .await?;
    }
}

fn keep(request: &Value, kept: &Mutex<Vec<Value>>) {
    let empty = vec![];
    for rs in request["resourceSpans"].as_array().unwrap_or(&empty) {
        let service = rs["resource"]["attributes"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or("")
            .to_owned();
        for ss in rs["scopeSpans"].as_array().unwrap_or(&empty) {
            for span in ss["spans"].as_array().unwrap_or(&empty) {
                let mut span = span.clone();
                span["service"] = Value::from(service.as_str());
                kept.lock().unwrap().push(span);
            }
        }
    }
}

/// The string value of a span attribute.
pub fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"]["stringValue"].as_str())
}
