//! The fleet: hashgate instances sharing key blocks, probation, operator cuts, the flood guard
//! and an event feed through Redis (or Valkey, KeyDB: any server speaking its protocol), set
//! with `[cluster] redis`. Unset, an instance is an island, as before.
//!
//! The data path never waits on Redis. Each instance keeps its own copy of the fleet's state in
//! the [`StreamRegistry`] (the publish-time check reads only that); local changes leave on a
//! bounded channel to one task that writes them to Redis and publishes them on a control
//! channel; the same task applies what other instances publish. When Redis is down or slow
//! (every call has a deadline), blocks and cuts still apply locally, the instance says it is
//! degraded (log line, `hashgate_cluster_up 0`), and on reconnect it writes its state through.
//!
//! In Redis, under `[cluster] prefix` (`hashgate` by default):
//! - `{prefix}:block:{key}` and `{prefix}:probation:{key}`, expiring with the block or probation;
//! - `{prefix}:instance:{id}`: each instance's heartbeat and its live streams, expiring after
//!   three missed heartbeats;
//! - `{prefix}:flood:{entry}`: a sorted set of the streams that matched the entry off any clip
//!   timeline (scored by time), and `{prefix}:flooded:{entry}` while it is demoted;
//! - `{prefix}:epoch`: a token that tells an instance whether Redis lost its data (restarted
//!   without persistence) since it last saw it, so its state is written through again;
//! - `{prefix}:control`: the pub/sub channel of cuts, blocks, unblocks and flood changes;
//! - `[cluster] events_stream`: the capped stream of every instance's events.
//!
//! Redis operations are O(1) per cut, unblock, publish and unpublish, per (entry, stream) pair
//! for the flood guard, and one per heartbeat: never per frame or per message.

mod wire;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::events::Events;
use crate::registry::StreamRegistry;
use crate::units::{duration_value, secs};

pub use wire::FleetStream;

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS); unset: no fleet.
    pub redis: Option<String>,
    /// This instance's name in the fleet; the host name and process id when unset (in
    /// Kubernetes the host name is the pod's name).
    pub instance: Option<String>,
    /// Prefix of every Redis key and channel (several fleets may share one Redis).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// How often an instance renews its heartbeat and stream list.
    #[serde(default = "secs::<2>", deserialize_with = "duration_value")]
    pub heartbeat: Duration,
    /// Deadline of every Redis call; past it the instance counts Redis as down.
    #[serde(default = "default_timeout", deserialize_with = "duration_value")]
    pub timeout: Duration,
    /// How long `serve` waits at startup to read the fleet's blocks before it takes
    /// broadcasters; past it the instance starts degraded (and says so), and `/healthz`
    /// answers 503 until it has read them.
    #[serde(default = "secs::<5>", deserialize_with = "duration_value")]
    pub join_timeout: Duration,
    /// Redis Stream that gets every event (JSON, field `event`, with `instance`); unset: none.
    pub events_stream: Option<String>,
    /// Approximate cap of `events_stream` (older entries are trimmed).
    #[serde(default = "default_events_maxlen")]
    pub events_maxlen: usize,
    /// The admin API address other tools should use for this instance, shown in
    /// `GET /streams?scope=cluster` (informative).
    pub admin_url: Option<String>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            redis: None,
            instance: None,
            prefix: default_prefix(),
            heartbeat: secs::<2>(),
            timeout: default_timeout(),
            join_timeout: secs::<5>(),
            events_stream: None,
            events_maxlen: default_events_maxlen(),
            admin_url: None,
        }
    }
}

fn default_prefix() -> String {
    "hashgate".into()
}

fn default_timeout() -> Duration {
    Duration::from_millis(500)
}

fn default_events_maxlen() -> usize {
    100_000
}

impl ClusterSettings {
    /// Checks what a config file can get wrong; the message names the problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(url) = &self.redis {
            redis::Client::open(url.as_str()).map_err(|e| ("cluster.redis", e.to_string()))?;
        }
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return Err(("cluster.prefix", "must be a non-empty word".into()));
        }
        if self.heartbeat < Duration::from_millis(100) {
            return Err(("cluster.heartbeat", "must be at least 100ms".into()));
        }
        if self.timeout.is_zero() {
            return Err(("cluster.timeout", "must be more than 0".into()));
        }
        Ok(())
    }

    /// This instance's name: `instance`, or the host name and process id.
    pub fn instance_name(&self) -> String {
        self.instance.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "hashgate".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

/// Why the cluster could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis refused or failed.
    #[error("cluster store: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within `cluster.timeout`.
    #[error("cluster store: no answer within {0:?}")]
    Timeout(Duration),
    /// The instance is not connected to Redis now.
    #[error("cluster store unreachable")]
    Down,
}

/// This instance's membership of the fleet.
pub struct Cluster {
    settings: ClusterSettings,
    instance: String,
    /// This process's id on the control channel.
    origin: String,
    client: redis::Client,
    up: Arc<AtomicBool>,
    /// Set once the fleet's state has been read (the first connection's catch-up).
    synced: AtomicBool,
    synced_now: tokio::sync::Notify,
    stop: CancellationToken,
    /// Set once the worker has sent what was queued and removed the heartbeat.
    left: tokio::sync::Notify,
}

/// Changes queued towards Redis before new ones are dropped (and counted).
const QUEUE: usize = 8192;

impl Cluster {
    /// Joins the fleet in `settings` (which must name a Redis): local changes of `registry` and
    /// events of `events` are sent to it, and other instances' changes applied to `registry`.
    /// Returns at once; the connection is made (and remade) in the background. Must be called
    /// within a tokio runtime.
    pub fn join(
        settings: ClusterSettings,
        registry: Arc<StreamRegistry>,
        events: Arc<Events>,
        flood: FloodLimits,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let url = settings.redis.clone().unwrap_or_default();
        let client = redis::Client::open(url.as_str())?;
        let instance = settings.instance_name();
        let (changes_tx, changes) = tokio::sync::mpsc::channel(QUEUE);
        registry.connect_fleet(changes_tx);
        let feed = match settings.events_stream {
            Some(_) => {
                let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
                events.mirror_to(tx);
                Some(rx)
            }
            None => None,
        };
        let cluster = Arc::new(Cluster {
            origin: format!("{instance}/{:016x}", rand::random::<u64>()),
            settings,
            instance,
            client,
            up: Arc::new(AtomicBool::new(false)),
            synced: AtomicBool::new(false),
            synced_now: tokio::sync::Notify::new(),
            stop: CancellationToken::new(),
            left: tokio::sync::Notify::new(),
        });
        tracing::info!(instance = %cluster.instance, prefix = %cluster.settings.prefix, "joining the fleet");
        tokio::spawn(worker::run(
            cluster.clone(),
            registry,
            events,
            flood,
            changes,
            feed,
        ));
        Ok(cluster)
    }

    /// This instance's name in the fleet.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether Redis answers now (false: degraded, state applies locally only).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Whether the fleet's blocks, probation and demoted entries have been read once: until
    /// then `/healthz` says the instance is not ready.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Waits up to `within` for [`Cluster::is_synced`].
    pub async fn wait_synced(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.synced_now.notified();
            if self.is_synced() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.is_synced();
            }
        }
    }

    fn mark_synced(&self) {
        self.synced.store(true, Ordering::Release);
        self.synced_now.notify_waiters();
    }

    /// Leaves the fleet: what is still queued is sent (within `within`), the heartbeat is
    /// removed and the background task ends.
    pub async fn leave(&self, within: Duration) {
        let left = self.left.notified();
        self.stop.cancel();
        let _ = tokio::time::timeout(within, left).await;
    }

    /// The live streams of every instance whose heartbeat is current, by instance then key.
    pub async fn fleet_streams(&self) -> Result<Vec<FleetStream>, ClusterError> {
        let mut conn = self.connection().await?;
        let records = self
            .deadline(worker::instance_records(&mut conn, &self.settings.prefix))
            .await??;
        let mut out: Vec<FleetStream> = records.into_iter().flat_map(|r| r.streams).collect();
        out.sort_by(|a, b| (&a.instance, &a.key).cmp(&(&b.instance, &b.key)));
        Ok(out)
    }

    /// How long `key`'s block has left in Redis, if it has one.
    pub async fn block_ttl(&self, key: &str) -> Result<Option<Duration>, ClusterError> {
        let mut conn = self.connection().await?;
        let name = wire::block_key(&self.settings.prefix, key);
        let ms: i64 = self
            .deadline(redis::cmd("PTTL").arg(name).query_async(&mut conn))
            .await??;
        Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
    }

    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, ClusterError> {
        if !self.is_up() {
            return Err(ClusterError::Down);
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.timeout))
            .set_response_timeout(Some(self.settings.timeout));
        Ok(self
            .deadline(
                self.client
                    .get_multiplexed_async_connection_with_config(&config),
            )
            .await??)
    }

    async fn deadline<T>(
        &self,
        call: impl std::future::Future<Output = T>,
    ) -> Result<T, ClusterError> {
        tokio::time::timeout(self.settings.timeout, call)
            .await
            .map_err(|_| ClusterError::Timeout(self.settings.timeout))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The flood guard's limits, which the fleet applies to its own counts.
#[derive(Debug, Clone, Copy)]
pub struct FloodLimits {
    /// `verdict.flood_streams`.
    pub streams: usize,
    /// `verdict.flood_window`.
    pub window: Duration,
}
