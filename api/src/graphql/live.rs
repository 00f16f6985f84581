//! GraphQL subscriptions over graphql-transport-ws (`/graphql/ws`): a portal sees a benefit
//! activation complete, or a subscription renew, without polling.

use std::future::Future;
use std::sync::Arc;

use async_graphql::{Context, Subscription, ID};
use futures::{Stream, StreamExt};
use gateway_domain::auth::Claims;
use gateway_domain::db::DbPool;
use gateway_domain::events::Event;
use gateway_domain::permissions::Principal;
use gateway_domain::queues::JobQueue;
use gateway_domain::AppError;
use uuid::Uuid;

use super::benefit_types::Benefit;
use super::billing_types::Subscription as SubscriptionType;
use super::{opt_id, principal, shared};

#[derive(Default)]
pub struct SubscriptionRoot;

/// The claims of the token that opened the socket (`http::ws`): before each event the caller
/// is resolved from them again, so a removed user or a lost role stops the stream.
#[derive(Clone)]
pub struct SocketClaims(pub Arc<Claims>);

/// Events of one partner (optionally one object), as they commit. Following one object, the
/// stream starts with that object as it is now: it is read after the receiver exists, so a
/// client that has it misses no later change (the server's acknowledgement that the
/// subscription is live).
fn events(
    ctx: &Context<'_>,
    partner_id: Option<&ID>,
    object: Option<&ID>,
    kind: fn(&Event) -> Option<Uuid>,
) -> async_graphql::Result<(Uuid, impl Stream<Item = Uuid>)> {
    let partner =
        gateway_domain::events::audience(principal(ctx)?, opt_id("partnerId", partner_id)?)?;
    let object = opt_id("id", object)?;
    let rx = shared(ctx).events.subscribe();
    let now = futures::stream::iter(object);
    Ok((
        partner,
        futures::StreamExt::chain(
            now,
            futures::stream::unfold(rx, move |mut rx| async move {
                loop {
                    match rx.recv().await {
                        Ok(e) if e.partner_id() == partner => {
                            if let Some(id) = kind(&e).filter(|id| object.is_none_or(|o| o == *id))
                            {
                                return Some((id, rx));
                            }
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }),
        ),
    ))
}

/// The caller as they are now: resolved again from the socket's token claims (a removed user
/// becomes a bare identity; changed roles show), and still allowed to follow `partner`.
async fn caller_now(
    conn: &mut gateway_domain::db::PgConn,
    claims: Option<&Claims>,
    opened_by: &Principal,
    partner: Uuid,
) -> Result<Principal, AppError> {
    let principal = match claims {
        Some(claims) => {
            gateway_domain::users::resolve_caller(conn, claims)
                .await?
                .principal
        }
        None => opened_by.clone(),
    };
    gateway_domain::events::audience(&principal, Some(partner)).map_err(|_| AppError::Forbidden)?;
    Ok(principal)
}

/// Delivers each id's object, loaded with the caller as they are now. When the caller may no
/// longer follow the partner, the stream yields FORBIDDEN and ends; an object the caller may
/// not see (or that is gone) is skipped.
fn deliver<T, F, Fut, S>(
    ctx: &Context<'_>,
    partner: Uuid,
    ids: S,
    load: F,
) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<T>> + use<T, F, Fut, S>>
where
    T: Send + 'static,
    S: Stream<Item = Uuid> + Send + 'static,
    F: Fn(DbPool, Principal, Uuid) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<T>> + Send,
{
    let pool = shared(ctx).pool.clone();
    let opened_by = principal(ctx)?.clone();
    let claims = ctx.data_opt::<SocketClaims>().map(|c| c.0.clone());
    let ids = ids.boxed();
    let load = Arc::new(load);
    Ok(futures::stream::unfold(
        (ids, false),
        move |(mut ids, stopped)| {
            let pool = pool.clone();
            let opened_by = opened_by.clone();
            let claims = claims.clone();
            let load = load.clone();
            async move {
                if stopped {
                    return None;
                }
                loop {
                    let id = ids.next().await?;
                    let checked = match pool.get().await {
                        Ok(mut c) => {
                            caller_now(&mut c, claims.as_deref(), &opened_by, partner).await
                        }
                        Err(e) => Err(e.into()),
                    };
                    match checked {
                        Ok(p) => {
                            if let Some(v) = load(pool.clone(), p, id).await {
                                return Some((Ok(v), (ids, false)));
                            }
                        }
                        Err(e) => return Some((Err(e.into()), (ids, true))),
                    }
                }
            }
        },
    ))
}

/// The live queue overview (`queueStats`): computed once per [`QUEUE_STATS_EVERY`] for every
/// operator watching, not once per browser, and only while someone watches.
pub struct QueueStatsFeed {
    tx: tokio::sync::watch::Sender<Option<Arc<Vec<JobQueue>>>>,
    started: std::sync::atomic::AtomicBool,
}

/// How often `queueStats` pushes.
pub const QUEUE_STATS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Default for QueueStatsFeed {
    fn default() -> Self {
        Self {
            tx: tokio::sync::watch::channel(None).0,
            started: Default::default(),
        }
    }
}

impl QueueStatsFeed {
    fn subscribe(
        &self,
        pool: &DbPool,
        redis: &gateway_domain::redis_conn::RedisClient,
        prefix: &str,
    ) -> tokio::sync::watch::Receiver<Option<Arc<Vec<JobQueue>>>> {
        if !self.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let (tx, pool, redis, prefix) = (
                self.tx.clone(),
                pool.clone(),
                redis.clone(),
                prefix.to_owned(),
            );
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(QUEUE_STATS_EVERY);
                loop {
                    tick.tick().await;
                    if tx.receiver_count() == 0 {
                        continue;
                    }
                    let (Ok(mut c), Ok(mut r)) = (pool.get().await, redis.connection().await)
                    else {
                        continue;
                    };
                    if let Ok(q) =
                        gateway_domain::queues::overview_for_operators(&mut c, &mut r, &prefix)
                            .await
                    {
                        let _ = tx.send(Some(Arc::new(q)));
                    }
                }
            });
        }
        self.tx.subscribe()
    }
}

/// Live updates over WebSocket (graphql-transport-ws at `/graphql/ws`): following one
/// object, the first event is its current state.
#[Subscription]
impl SubscriptionRoot {
    /// Every queue's counts, latency and pause state, pushed at most once a second
    /// (operators). The first event comes within a second.
    ///
    /// Roles: operators.
    async fn queue_stats<'a>(
        &self,
        ctx: &Context<'a>,
    ) -> async_graphql::Result<impl Stream<Item = Vec<JobQueue>> + 'a> {
        principal(ctx)?.require(gateway_domain::permissions::Action::Operate)?;
        let shared = shared(ctx);
        let rx = shared.queue_stats.subscribe(
            &shared.pool,
            &shared.redis,
            &shared.config.redis.queue_prefix,
        );
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            loop {
                rx.changed().await.ok()?;
                let now = rx.borrow_and_update().clone();
                if let Some(q) = now {
                    return Some(((*q).clone(), rx));
                }
            }
        }))
    }

    /// A benefit of the partner changed (activation state, balance, assignment, revocation).
    /// Give `benefitId` to follow one: the first event is then the benefit as it is now (the
    /// subscription is live from there). Operators name the partner. Each event is checked
    /// against the caller as they are then: a removed user or lost role gets FORBIDDEN and
    /// the subscription ends.
    ///
    /// Roles: any partner user; operators.
    async fn benefit_updated<'a>(
        &self,
        ctx: &Context<'a>,
        #[graphql(desc = "Operators: the partner (partner users: their own).")] partner_id: Option<
            ID,
        >,
        #[graphql(desc = "Only this benefit (its first event is its current state).")]
        benefit_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Benefit>> + 'a> {
        let (partner, ids) = events(ctx, partner_id.as_ref(), benefit_id.as_ref(), |e| match e {
            Event::Benefit { id, .. } => Some(*id),
            _ => None,
        })?;
        deliver(
            ctx,
            partner,
            ids,
            |pool: DbPool, p: Principal, id| async move {
                let mut c = pool.get().await.ok()?;
                gateway_domain::benefits::entitlements::load_visible(&mut c, &p, id, false)
                    .await
                    .ok()
                    .map(Benefit)
            },
        )
    }

    /// A subscription of the partner changed: activated, renewed, a renewal charge failed,
    /// auto-renew turned off, entered the renewal window, set to end on its anniversary,
    /// lapsed, cancelled, ended, or its refund moved (pending, refunded, failed). Give
    /// `subscriptionId` to follow one: the first event is then the subscription as it is now
    /// (the subscription is live from there). Operators name the partner. Each event is
    /// checked against the caller as they are then: a removed user or lost role gets
    /// FORBIDDEN and the subscription ends.
    ///
    /// Roles: any partner user; operators.
    async fn subscription_updated<'a>(
        &self,
        ctx: &Context<'a>,
        #[graphql(desc = "Operators: the partner (partner users: their own).")] partner_id: Option<
            ID,
        >,
        #[graphql(desc = "Only this subscription (its first event is its current state).")]
        subscription_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<SubscriptionType>> + 'a>
    {
        let (partner, ids) = events(
            ctx,
            partner_id.as_ref(),
            subscription_id.as_ref(),
            |e| match e {
                Event::Subscription { id, .. } => Some(*id),
                _ => None,
            },
        )?;
        deliver(
            ctx,
            partner,
            ids,
            |pool: DbPool, p: Principal, id| async move {
                let mut c = pool.get().await.ok()?;
                gateway_domain::subscriptions::store::load_visible(&mut c, &p, id, false)
                    .await
                    .ok()
                    .map(SubscriptionType)
            },
        )
    }
}
