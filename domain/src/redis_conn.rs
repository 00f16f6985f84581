//! One Redis, or a Redis Cluster (`REDIS_CLUSTER=true`), behind one connection type.
//!
//! Everything that talks to Redis (apalis-redis' storages, the relay, the queue view, rate
//! limits, persisted queries) takes a [`RedisConn`], which implements redis' `ConnectionLike`
//! over either a single server's connection or the async cluster client.
//!
//! In a cluster, every key a command, a script or a pipeline touches must hash to one slot.
//! The queue keys share their queue's hash tag (`{prefix.queue}:…`, `jobs::queue_name`), so
//! apalis' multi-key scripts and the queue view's pipelines stay on one node. A pipeline whose
//! keys fall in several slots (the rate limiter's buckets, the throughput minutes) is refused
//! by the cluster client before anything is sent; [`RedisConn`] then runs its commands one by
//! one, in order. Such pipelines are never atomic (no MULTI): the gateway asks for none.

use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::config::RedisConfig;

/// Where Redis is: a server (`REDIS_URL`) or a cluster (`REDIS_CLUSTER=true`, `REDIS_URL`
/// naming one or more of its nodes, comma-separated).
#[derive(Clone)]
pub enum RedisClient {
    Single(Arc<redis::Client>),
    /// The cluster client, and one shared connection to the cluster made on first use (it
    /// holds a connection per node and follows the slots as they move).
    Cluster(Arc<(ClusterClient, tokio::sync::OnceCell<ClusterConnection>)>),
}

impl RedisClient {
    pub fn open(config: &RedisConfig) -> RedisResult<Self> {
        Self::open_url(&config.url, config.cluster)
    }

    pub fn open_url(url: &str, cluster: bool) -> RedisResult<Self> {
        if cluster {
            let nodes: Vec<&str> = url
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect();
            Ok(Self::Cluster(Arc::new((
                ClusterClient::new(nodes)?,
                Default::default(),
            ))))
        } else {
            Ok(Self::Single(Arc::new(redis::Client::open(url)?)))
        }
    }

    /// A multiplexed connection: a new one to a single server; the client's shared one to a
    /// cluster.
    pub async fn connection(&self) -> RedisResult<RedisConn> {
        Ok(match self {
            Self::Single(c) => RedisConn::Single(c.get_multiplexed_async_connection().await?),
            Self::Cluster(cluster) => RedisConn::Cluster(
                cluster
                    .1
                    .get_or_try_init(|| cluster.0.get_async_connection())
                    .await?
                    .clone(),
            ),
        })
    }

    /// A connection that reconnects by itself after Redis went away (long-lived users: the
    /// worker's storages and loops). The cluster client always does.
    pub async fn managed(&self) -> RedisResult<RedisConn> {
        Ok(match self {
            Self::Single(c) => RedisConn::Managed(c.get_connection_manager().await?),
            Self::Cluster(_) => self.connection().await?,
        })
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

/// A connection to Redis, or to a Redis Cluster.
#[derive(Clone)]
pub enum RedisConn {
    Single(MultiplexedConnection),
    Managed(ConnectionManager),
    Cluster(ClusterConnection),
}

/// The cluster client's refusal of a pipeline whose keys fall in several slots; it comes
/// before anything is sent.
fn is_cross_slot_refusal(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::CrossSlot)
        && e.to_string().contains("crossed slots in pipeline")
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Managed(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Managed(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => Box::pin(async move {
                match c.req_packed_commands(cmd, offset, count).await {
                    Err(e) if is_cross_slot_refusal(&e) && !cmd.is_transaction() => {
                        let mut out = Vec::new();
                        for one in cmd.cmd_iter() {
                            out.push(c.req_packed_command(one).await?);
                        }
                        Ok(out.into_iter().skip(offset).take(count).collect())
                    }
                    other => other,
                }
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Managed(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
