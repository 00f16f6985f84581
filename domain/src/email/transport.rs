//! Where emails go: SMTP (production and end-to-end tests), a file drop (development), or
//! memory (unit tests).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{EmailConfig, EmailTransportKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Idle SMTP connections kept for reuse: the worker's email jobs (`WORKER_CONCURRENCY`, 8 by
/// default) each send `SENDS_AT_ONCE` (4) messages at a time. lettre opens more when needed
/// and closes those it cannot keep.
pub const POOLED_CONNECTIONS: u32 = 32;

#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        /// lettre's own timeout does not cover a server that accepts and never greets: the
        /// whole send is bounded too.
        timeout: std::time::Duration,
    },
    File {
        dir: PathBuf,
        from: Mailbox,
    },
    Memory {
        sent: Arc<Mutex<Vec<OutgoingEmail>>>,
    },
}

impl Mailer {
    pub fn from_config(cfg: &EmailConfig) -> anyhow::Result<Self> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("EMAIL_FROM `{}`: {e}", cfg.from))?;
        Ok(match &cfg.transport {
            EmailTransportKind::Smtp { url } => Mailer::Smtp {
                transport: AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| {
                        anyhow::anyhow!("SMTP_URL is not a valid smtp:// or smtps:// URL: {e}")
                    })?
                    .timeout(Some(cfg.smtp_timeout))
                    .pool_config(PoolConfig::new().max_size(POOLED_CONNECTIONS))
                    .build(),
                from,
                timeout: cfg.smtp_timeout * 3,
            },
            EmailTransportKind::File { dir } => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("EMAIL_FILE_DIR {dir}: {e}"))?;
                Mailer::File {
                    dir: dir.into(),
                    from,
                }
            }
            EmailTransportKind::Memory => Mailer::Memory {
                sent: Arc::default(),
            },
        })
    }

    pub fn memory() -> (Self, Arc<Mutex<Vec<OutgoingEmail>>>) {
        let sent: Arc<Mutex<Vec<OutgoingEmail>>> = Arc::default();
        (Mailer::Memory { sent: sent.clone() }, sent)
    }

    /// The message, with a `Message-ID` made from the email's id and the sender's domain: the
    /// same email sent twice carries the same id.
    fn build(from: &Mailbox, id: &str, email: &OutgoingEmail) -> anyhow::Result<Message> {
        Ok(Message::builder()
            .message_id(Some(format!("<{id}@{}>", from.email.domain())))
            .from(from.clone())
            .to(email.to.parse()?)
            .subject(&email.subject)
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))?)
    }

    /// Sends one message. An error means "not delivered": the caller decides about retrying.
    pub async fn send(&self, id: &str, email: &OutgoingEmail) -> anyhow::Result<()> {
        match self {
            Mailer::Smtp {
                transport,
                from,
                timeout,
            } => {
                tokio::time::timeout(*timeout, transport.send(Self::build(from, id, email)?))
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!("the SMTP server did not answer within {timeout:?}")
                    })??;
            }
            Mailer::File { dir, from } => {
                let message = Self::build(from, id, email)?;
                let name = format!(
                    "{}-{id}.eml",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
                );
                tokio::fs::write(dir.join(name), message.formatted()).await?;
            }
            Mailer::Memory { sent } => sent.lock().expect("mailbox lock").push(email.clone()),
        }
        Ok(())
    }
}
