//! Feeds GraphQL subscriptions from Postgres: one connection per api process LISTENs on the
//! domain's event channel (events are NOTIFYed inside the transactions that make them, so
//! only committed changes arrive) and fans them out on a broadcast channel. The listener
//! reconnects by itself; a subscriber that falls behind skips ahead (a portal refetches).

use std::time::Duration;

use diesel_async::RunQueryDsl;
use futures::StreamExt;
use gateway_domain::events::{self, Event, CHANNEL};
use tokio::sync::broadcast;

pub fn spawn_listener(database_url: String) -> broadcast::Sender<Event> {
    let (tx, _) = broadcast::channel(1024);
    let sender = tx.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = listen(&database_url, &sender).await {
                tracing::warn!(error = %e, "event listener lost its connection; reconnecting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    tx
}

async fn listen(url: &str, tx: &broadcast::Sender<Event>) -> anyhow::Result<()> {
    let mut conn = gateway_domain::db::connect(url).await?;
    diesel::sql_query(format!("LISTEN {CHANNEL}"))
        .execute(&mut conn)
        .await?;
    let mut stream = std::pin::pin!(conn.notifications_stream());
    while let Some(n) = stream.next().await {
        let n = n?;
        match events::unpack(&n.payload) {
            Ok(list) => {
                for event in list {
                    let _ = tx.send(event);
                }
            }
            Err(e) => tracing::warn!(error = %e, "unreadable event payload"),
        }
    }
    anyhow::bail!("notification stream ended")
}
