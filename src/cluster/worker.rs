//! The one task that talks to Redis for an instance: writes local changes through, applies
//! other instances' changes, renews the heartbeat, feeds the event stream, and reconnects.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, RedisResult};
use tokio::sync::mpsc::Receiver;

use super::wire::{self, Control, FleetStream, InstanceRecord, Op};
use super::{Cluster, ClusterError, FloodLimits};
use crate::events::{EventKind, Events};
use crate::metrics::metrics;
use crate::registry::{key, Change, StreamRegistry};

/// Changes kept while Redis is away, written through when it returns (oldest dropped first).
const BACKLOG: usize = 10_000;
/// Pause between reconnection attempts.
const RETRY: Duration = Duration::from_secs(1);
/// A change in the stream list is published this soon (several changes share one write).
const STREAMS_DEBOUNCE: Duration = Duration::from_millis(50);
/// Most events appended to the feed in one round trip.
const EVENTS_BATCH: usize = 256;

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

fn left(until: Option<Instant>) -> u64 {
    until.map_or(0, |t| millis(t.saturating_duration_since(Instant::now())))
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// Tells [`Cluster::leave`] the worker is done, however it ends.
struct Left(Arc<Cluster>);

impl Drop for Left {
    fn drop(&mut self) {
        self.0.left.notify_waiters();
    }
}

struct Worker {
    cluster: Arc<Cluster>,
    registry: Arc<StreamRegistry>,
    events: Arc<Events>,
    flood: FloodLimits,
    prefix: String,
    backlog: VecDeque<Change>,
    known_epoch: Option<String>,
    /// Blocked keys known to be in Redis (written or read there). On a reconnect, a local block
    /// Redis no longer has was lifted elsewhere if it is in here, and is written through if not.
    confirmed: HashSet<String>,
}

/// Runs until the cluster is left.
pub(super) async fn run(
    cluster: Arc<Cluster>,
    registry: Arc<StreamRegistry>,
    events: Arc<Events>,
    flood: FloodLimits,
    mut changes: Receiver<Change>,
    mut feed: Option<Receiver<String>>,
) {
    let prefix = cluster.settings.prefix.clone();
    let _left = Left(cluster.clone());
    let mut worker = Worker {
        cluster,
        registry,
        events,
        flood,
        prefix,
        backlog: VecDeque::new(),
        known_epoch: None,
        confirmed: HashSet::new(),
    };
    let mut warned = false;
    loop {
        let outcome = worker.session(&mut changes, &mut feed).await;
        let stop = worker.cluster.stop.clone();
        match outcome {
            Ok(()) => return,
            Err(e) => {
                metrics().cluster_errors.inc();
                if worker.cluster.up.swap(false, Ordering::Relaxed) || !warned {
                    tracing::warn!(
                        "cluster degraded: {e}; blocks and cuts apply on this instance only until Redis answers"
                    );
                    warned = true;
                }
            }
        }
        // Down: keep what must be written through, and retry.
        let retry_at = tokio::time::Instant::now() + RETRY;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(retry_at) => break,
                Some(change) = changes.recv() => worker.keep(change),
                Some(_) = next_line(&mut feed) => metrics().cluster_dropped.inc(),
            }
        }
    }
}

async fn next_line(feed: &mut Option<Receiver<String>>) -> Option<String> {
    match feed {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Worker {
    fn keep(&mut self, change: Change) {
        // A flood sighting replayed later would be scored as fresh: it is left out.
        if matches!(
            change,
            Change::FloodSeen { .. } | Change::FloodForget { .. }
        ) {
            return;
        }
        if self.backlog.len() >= BACKLOG {
            self.backlog.pop_front();
            metrics().cluster_dropped.inc();
        }
        self.backlog.push_back(change);
    }

    async fn deadline<T>(
        &self,
        call: impl std::future::Future<Output = RedisResult<T>>,
    ) -> Result<T, ClusterError> {
        self.cluster
            .deadline(call)
            .await?
            .map_err(ClusterError::from)
    }

    /// One connection's life: connect, catch up, then serve until an error or the stop.
    async fn session(
        &mut self,
        changes: &mut Receiver<Change>,
        feed: &mut Option<Receiver<String>>,
    ) -> Result<(), ClusterError> {
        let settings = &self.cluster.settings;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout));
        let mut conn = self
            .deadline(
                self.cluster
                    .client
                    .get_multiplexed_async_connection_with_config(&config),
            )
            .await?;
        let mut pubsub = self
            .deadline(self.cluster.client.get_async_pubsub())
            .await?;
        self.deadline(pubsub.subscribe(wire::control_channel(&self.prefix)))
            .await?;
        let mut control = pubsub.into_on_message();

        // What was queued before this connection is caught up with, not missed by it.
        while let Ok(change) = changes.try_recv() {
            self.keep(change);
        }
        for key in self.registry.take_unblocks_behind() {
            self.keep(Change::Unblock {
                key,
                by_hash: false,
            });
        }
        let lost = self.check_epoch(&mut conn).await?;
        if lost {
            self.confirmed.clear();
        }
        while let Some(change) = self.backlog.pop_front() {
            if let Err(e) = self.send(&mut conn, change.clone(), true).await {
                self.backlog.push_front(change);
                return Err(e);
            }
        }
        self.reconcile(&mut conn, lost).await?;
        self.heartbeat(&mut conn).await?;
        if !self.cluster.up.swap(true, Ordering::Relaxed) {
            tracing::info!(instance = %self.cluster.instance, "cluster connected: blocks, cuts and the flood guard are fleet-wide");
        }
        self.cluster.mark_synced();

        let beat = self.cluster.settings.heartbeat;
        let mut next_beat = tokio::time::Instant::now() + beat;
        let mut tick = tokio::time::interval(STREAMS_DEBOUNCE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = self.cluster.stop.clone();
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    // Leaving: what is queued goes out, then the heartbeat is removed.
                    while let Ok(change) = changes.try_recv() {
                        if self.send(&mut conn, change, false).await.is_err() {
                            break;
                        }
                    }
                    let name = wire::instance_key(&self.prefix, &self.cluster.instance);
                    let _ = self.deadline(conn.del::<_, ()>(name)).await;
                    return Ok(());
                }
                // First among the rest: a busy queue must not starve the heartbeat.
                _ = tick.tick() => {
                    if self.registry.take_fleet_behind() {
                        for key in self.registry.take_unblocks_behind() {
                            let unblock = Change::Unblock { key, by_hash: false };
                            if let Err(e) = self.send(&mut conn, unblock.clone(), false).await {
                                self.keep(unblock);
                                return Err(e);
                            }
                        }
                        self.write_unconfirmed(&mut conn).await?;
                    }
                    let now = tokio::time::Instant::now();
                    if self.registry.take_streams_changed() || now >= next_beat {
                        self.heartbeat(&mut conn).await?;
                        next_beat = now + beat;
                    }
                }
                message = control.next() => {
                    let Some(message) = message else {
                        return Err(ClusterError::Down);
                    };
                    self.receive(&mut conn, &message).await?;
                }
                Some(change) = changes.recv() => {
                    if let Err(e) = self.send(&mut conn, change.clone(), false).await {
                        self.keep(change);
                        return Err(e);
                    }
                }
                Some(line) = next_line(feed) => {
                    let mut lines = vec![line];
                    if let Some(rx) = feed.as_mut() {
                        while lines.len() < EVENTS_BATCH {
                            let Ok(line) = rx.try_recv() else { break };
                            lines.push(line);
                        }
                    }
                    self.append_events(&mut conn, lines).await;
                }
            }
        }
    }

    /// Whether Redis lost its data since this instance last saw it (or this is the first
    /// connection): then the local state is written through.
    async fn check_epoch(
        &mut self,
        conn: &mut MultiplexedConnection,
    ) -> Result<bool, ClusterError> {
        let name = wire::epoch_key(&self.prefix);
        let token = format!("{:016x}", rand::random::<u64>());
        let _: Option<String> = self
            .deadline(
                redis::cmd("SET")
                    .arg(&name)
                    .arg(&token)
                    .arg("NX")
                    .query_async(conn),
            )
            .await?;
        let current: Option<String> = self.deadline(conn.get(&name)).await?;
        let lost = current.is_none() || self.known_epoch != current;
        if lost && self.known_epoch.is_some() {
            tracing::warn!("cluster store lost its data (restarted?): writing this instance's blocks and probation through");
        }
        self.known_epoch = current;
        Ok(lost)
    }

    /// Brings the local copy and Redis together after a (re)connection. Blocks: a local block
    /// Redis does not have is written through unless Redis kept its data and had it before
    /// (then it was lifted elsewhere while this instance was away, and is lifted here); Redis's
    /// blocks are taken. Probation is the union. Demoted entries are Redis's.
    async fn reconcile(
        &mut self,
        conn: &mut MultiplexedConnection,
        lost: bool,
    ) -> Result<(), ClusterError> {
        let now = Instant::now();
        let remote_blocks = self.scan_ttls(conn, "block").await?;
        let remote: HashSet<&str> = remote_blocks.iter().map(|(k, _)| k.as_str()).collect();
        let remote_probation = self.scan_ttls(conn, "probation").await?;
        let on_probation: HashSet<&str> =
            remote_probation.iter().map(|(k, _)| k.as_str()).collect();
        for (k, left) in self.registry.blocks() {
            if remote.contains(k.as_str()) {
                continue;
            }
            // Gone from Redis: lifted elsewhere while this instance was away if Redis remembers
            // the unblock; otherwise lost (evicted, an older snapshot) and written again.
            if !lost && self.confirmed.contains(&k) {
                let lifted: bool = self
                    .deadline(conn.exists(wire::unblocked_key(&self.prefix, &k)))
                    .await?;
                if lifted {
                    self.registry.apply_unblock(&k);
                    self.confirmed.remove(&k);
                    tracing::info!(key = %key::shown(&k), "block lifted elsewhere while this instance was away");
                    continue;
                }
            }
            self.write_block(conn, &k, now + left, None).await?;
        }
        for (k, left) in self.registry.probations() {
            if !on_probation.contains(k.as_str()) {
                self.write_block(conn, &k, now, Some(now + left)).await?;
            }
        }
        for (k, ttl) in &remote_blocks {
            if self.registry.apply_block(k, Some(now + *ttl), None) {
                tracing::warn!(key = %key::shown(k), "cut: its key is blocked in the fleet");
            }
            self.confirmed.insert(k.clone());
        }
        for (k, ttl) in &remote_probation {
            self.registry.apply_block(k, None, Some(now + *ttl));
        }
        let flooded = self.scan_ttls(conn, "flooded").await?;
        let demoted: HashSet<&str> = flooded.iter().map(|(e, _)| e.as_str()).collect();
        for (entry, _) in self.registry.fleet_floods() {
            if !demoted.contains(entry.as_str()) {
                self.registry.apply_flood_lift(&entry);
            }
        }
        for (entry, ttl) in &flooded {
            self.registry.apply_flood(entry, now + *ttl);
        }
        self.trim_confirmed();
        Ok(())
    }

    /// Writes local blocks Redis may not have (a change was dropped on its way out).
    async fn write_unconfirmed(
        &mut self,
        conn: &mut MultiplexedConnection,
    ) -> Result<(), ClusterError> {
        let now = Instant::now();
        for (k, left) in self.registry.blocks() {
            if !self.confirmed.contains(&k) {
                self.write_block(conn, &k, now + left, None).await?;
            }
        }
        Ok(())
    }

    /// Writes one block or probation through (keeping a longer one) and tells the others.
    async fn write_block(
        &mut self,
        conn: &mut MultiplexedConnection,
        k: &str,
        block_until: Instant,
        probation_until: Option<Instant>,
    ) -> Result<(), ClusterError> {
        let block = (block_until > Instant::now()).then_some(block_until);
        let change = Change::Cut {
            key: k.to_owned(),
            reason: String::new(),
            block_until: block,
            probation_until,
            live_here: true,
            by_hash: false,
        };
        self.send(conn, change, true).await
    }

    /// Keeps the confirmed set within the keys remembered locally.
    fn trim_confirmed(&mut self) {
        if self.confirmed.len() > crate::registry::MAX_REMEMBERED_KEYS {
            let local: HashSet<String> =
                self.registry.blocks().into_iter().map(|(k, _)| k).collect();
            self.confirmed.retain(|k| local.contains(k));
        }
    }

    /// Every `{prefix}:{kind}:*` key (the part after the prefix) with its time to live.
    async fn scan_ttls(
        &self,
        conn: &mut MultiplexedConnection,
        kind: &str,
    ) -> Result<Vec<(String, Duration)>, ClusterError> {
        let head = format!("{}:{kind}:", self.prefix);
        let names = self.scan(conn, &format!("{head}*")).await?;
        let mut out = Vec::with_capacity(names.len());
        for chunk in names.chunks(500) {
            let mut pipe = redis::pipe();
            for name in chunk {
                pipe.cmd("PTTL").arg(name);
            }
            let ttls: Vec<i64> = self.deadline(pipe.query_async(conn)).await?;
            for (name, ttl) in chunk.iter().zip(ttls) {
                if ttl > 0 {
                    if let Some(rest) = name.strip_prefix(&head) {
                        out.push((rest.to_owned(), Duration::from_millis(ttl as u64)));
                    }
                }
            }
        }
        Ok(out)
    }

    async fn scan(
        &self,
        conn: &mut MultiplexedConnection,
        pattern: &str,
    ) -> Result<Vec<String>, ClusterError> {
        scan(conn, pattern, self.cluster.settings.timeout).await
    }

    /// Writes one local change to Redis and publishes it. `replayed`: it happened while Redis
    /// was away; its state is written, but no stream is cut for it now.
    async fn send(
        &mut self,
        conn: &mut MultiplexedConnection,
        change: Change,
        replayed: bool,
    ) -> Result<(), ClusterError> {
        let channel = wire::control_channel(&self.prefix);
        let control = |op: Op| {
            serde_json::to_string(&Control {
                origin: self.cluster.origin.clone(),
                op,
            })
            .unwrap_or_default()
        };
        match change {
            Change::Cut {
                key,
                reason,
                block_until,
                probation_until,
                live_here,
                by_hash,
            } => {
                let (block_ms, probation_ms) = (left(block_until), left(probation_until));
                if replayed && (by_hash || (block_ms == 0 && probation_ms == 0)) {
                    return Ok(());
                }
                let mut pipe = redis::pipe();
                // A hash is not a key: the carrier that resolves it writes the key's block.
                if !by_hash {
                    if block_ms > 0 {
                        pipe.del(wire::unblocked_key(&self.prefix, &key)).ignore();
                    }
                    keep_longest(
                        &mut pipe,
                        &wire::block_key(&self.prefix, &key),
                        &reason,
                        block_ms,
                    );
                    keep_longest(
                        &mut pipe,
                        &wire::probation_key(&self.prefix, &key),
                        &reason,
                        probation_ms,
                    );
                }
                let confirmed = (block_ms > 0 && !by_hash).then(|| key.clone());
                let op = if replayed || (live_here && block_ms == 0 && probation_ms == 0) {
                    Op::Block {
                        key,
                        block_ms,
                        probation_ms,
                    }
                } else {
                    Op::Cut {
                        key,
                        reason,
                        block_ms,
                        probation_ms,
                        by_hash,
                    }
                };
                pipe.cmd("PUBLISH").arg(&channel).arg(control(op)).ignore();
                self.deadline(pipe.query_async::<()>(conn)).await?;
                metrics().cluster_ops.inc(&["cut"]);
                if let Some(k) = confirmed {
                    self.confirmed.insert(k);
                }
            }
            Change::Unblock { key, by_hash } => {
                let mut pipe = redis::pipe();
                if !by_hash {
                    pipe.del(wire::block_key(&self.prefix, &key)).ignore();
                    pipe.cmd("SET")
                        .arg(wire::unblocked_key(&self.prefix, &key))
                        .arg(1)
                        .arg("PX")
                        .arg(wire::UNBLOCK_MEMORY_MS)
                        .ignore();
                }
                self.confirmed.remove(&key);
                pipe.cmd("PUBLISH")
                    .arg(&channel)
                    .arg(control(Op::Unblock { key, by_hash }))
                    .ignore();
                self.deadline(pipe.query_async::<()>(conn)).await?;
                metrics().cluster_ops.inc(&["unblock"]);
            }
            Change::FloodSeen {
                entry,
                label,
                list,
                stream,
            } => {
                let window = millis(self.flood.window).max(1);
                let now = now_unix_ms();
                let name = wire::flood_key(&self.prefix, &entry);
                let (count,): (usize,) = self
                    .deadline(
                        redis::pipe()
                            .zadd(&name, &stream, now)
                            .ignore()
                            .zrembyscore(&name, "-inf", now.saturating_sub(window) as f64)
                            .ignore()
                            .zcard(&name)
                            .pexpire(&name, window as i64)
                            .ignore()
                            .query_async(conn),
                    )
                    .await?;
                metrics().cluster_ops.inc(&["flood"]);
                if count <= self.flood.streams || replayed {
                    return Ok(());
                }
                let tipped: Option<String> = self
                    .deadline(
                        redis::cmd("SET")
                            .arg(wire::flooded_key(&self.prefix, &entry))
                            .arg(count)
                            .arg("NX")
                            .arg("PX")
                            .arg(window)
                            .query_async(conn),
                    )
                    .await?;
                if tipped.is_some() {
                    self.registry
                        .apply_flood(&entry, Instant::now() + self.flood.window);
                    tracing::warn!(entry = %label, source = %entry, streams = count, "flood guard (fleet): entry matches too many streams off any clip timeline across the fleet, now alert only");
                    let nobody = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
                    self.events.emit(
                        &stream,
                        nobody,
                        EventKind::Flood {
                            list,
                            entry: label,
                            source: entry.clone(),
                            streams: count,
                        },
                    );
                    let op = Op::Flood {
                        entry,
                        window_ms: window,
                    };
                    self.deadline(conn.publish::<_, _, ()>(&channel, control(op)))
                        .await?;
                }
            }
            Change::FloodForget { stream, entries } => {
                for entry in entries {
                    let name = wire::flood_key(&self.prefix, &entry);
                    let (count,): (usize,) = self
                        .deadline(
                            redis::pipe()
                                .zrem(&name, &stream)
                                .ignore()
                                .zcard(&name)
                                .query_async(conn),
                        )
                        .await?;
                    metrics().cluster_ops.inc(&["flood"]);
                    if count > self.flood.streams {
                        continue;
                    }
                    let lifted: usize = self
                        .deadline(conn.del(wire::flooded_key(&self.prefix, &entry)))
                        .await?;
                    if lifted > 0 {
                        self.registry.apply_flood_lift(&entry);
                        tracing::info!(source = %entry, "flood guard (fleet) lifted: the streams that tripped it are re-streams of a clip");
                        self.deadline(
                            conn.publish::<_, _, ()>(&channel, control(Op::FloodLift { entry })),
                        )
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies another instance's change.
    async fn receive(
        &mut self,
        conn: &mut MultiplexedConnection,
        message: &redis::Msg,
    ) -> Result<(), ClusterError> {
        let Ok(text) = message.get_payload::<String>() else {
            return Ok(());
        };
        let control: Control = match serde_json::from_str(&text) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cluster: ignored a control message that does not parse: {e}");
                return Ok(());
            }
        };
        if control.origin == self.cluster.origin {
            return Ok(());
        }
        let until = |ms: u64| (ms > 0).then(|| Instant::now() + Duration::from_millis(ms));
        match control.op {
            Op::Cut {
                key: k,
                reason,
                block_ms,
                probation_ms,
                by_hash,
            } => {
                // Keys travel as they are; only an operator's unresolved hash is looked up, and
                // then the instance that knows the key cuts it under its own name (which the
                // fleet then hears).
                if by_hash {
                    let resolved = self.registry.resolve(&k);
                    if resolved != k {
                        let block = Duration::from_millis(block_ms);
                        let probation = Duration::from_millis(probation_ms);
                        if self.registry.cut(&resolved, &reason, block, probation) {
                            metrics().cuts.inc(&["fleet"]);
                            tracing::warn!(key = %key::shown(&resolved), origin = %control.origin, reason = %reason.escape_debug(), "cut on request of another instance");
                        }
                    }
                    return Ok(());
                }
                if block_ms > 0 {
                    self.confirmed.insert(k.clone());
                }
                if self
                    .registry
                    .apply_cut(&k, &reason, until(block_ms), until(probation_ms))
                {
                    metrics().cuts.inc(&["fleet"]);
                    tracing::warn!(key = %key::shown(&k), origin = %control.origin, reason = %reason.escape_debug(), "cut on request of another instance");
                }
            }
            Op::Block {
                key: k,
                block_ms,
                probation_ms,
            } => {
                if block_ms > 0 {
                    self.confirmed.insert(k.clone());
                }
                if self
                    .registry
                    .apply_block(&k, until(block_ms), until(probation_ms))
                {
                    tracing::warn!(key = %key::shown(&k), "cut: its key is blocked in the fleet");
                }
            }
            Op::Unblock { key: k, by_hash } => {
                if by_hash {
                    let resolved = self.registry.resolve(&k);
                    if resolved != k {
                        self.registry.unblock(&resolved);
                    }
                    return Ok(());
                }
                // Redis orders a block and an unblock of one key; messages from two instances
                // may arrive the other way round. A block Redis still has was made after this
                // unblock (here or elsewhere), and stays.
                let still: bool = self
                    .deadline(conn.exists(wire::block_key(&self.prefix, &k)))
                    .await?;
                if still {
                    return Ok(());
                }
                self.confirmed.remove(&k);
                if self.registry.apply_unblock(&k) {
                    tracing::info!(key = %key::shown(&k), origin = %control.origin, "block lifted by another instance");
                }
            }
            Op::Flood { entry, window_ms } => {
                self.registry
                    .apply_flood(&entry, Instant::now() + Duration::from_millis(window_ms));
            }
            Op::FloodLift { entry } => self.registry.apply_flood_lift(&entry),
        }
        self.trim_confirmed();
        Ok(())
    }

    async fn heartbeat(&self, conn: &mut MultiplexedConnection) -> Result<(), ClusterError> {
        let instance = self.cluster.instance.clone();
        let streams = self
            .registry
            .streams()
            .iter()
            .map(|s| FleetStream {
                instance: instance.clone(),
                key: key::for_api(&s.stream_key),
                app: s.app.clone(),
                peer: s.peer.to_string(),
                uptime_s: s.stats.age() as u64,
                bytes_in: s.stats.bytes_in.load(Ordering::Relaxed),
            })
            .collect();
        let record = InstanceRecord {
            instance: instance.clone(),
            admin_url: self.cluster.settings.admin_url.clone(),
            draining: self.cluster.stop.is_cancelled(),
            streams,
        };
        let text = serde_json::to_string(&record).unwrap_or_default();
        let ttl = millis(self.cluster.settings.heartbeat * 3);
        self.deadline(conn.pset_ex::<_, _, ()>(
            wire::instance_key(&self.prefix, &instance),
            text,
            ttl,
        ))
        .await?;
        metrics().cluster_ops.inc(&["heartbeat"]);
        Ok(())
    }

    /// Appends events to the fleet's stream in one round trip. A failure loses these lines
    /// from the feed (counted; the JSONL files have them) without ending the session: the
    /// heartbeat finds out whether Redis is gone.
    async fn append_events(&self, conn: &mut MultiplexedConnection, lines: Vec<String>) {
        let Some(stream) = &self.cluster.settings.events_stream else {
            return;
        };
        let n = lines.len() as u64;
        let mut pipe = redis::pipe();
        for line in lines {
            pipe.cmd("XADD")
                .arg(stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.cluster.settings.events_maxlen)
                .arg("*")
                .arg("instance")
                .arg(&self.cluster.instance)
                .arg("event")
                .arg(line)
                .ignore();
        }
        metrics().cluster_ops.add(&["event"], n);
        if let Err(e) = self.deadline(pipe.query_async::<()>(conn)).await {
            metrics().cluster_dropped.add(n);
            tracing::debug!("cluster: events not appended to the feed: {e}");
        }
    }
}

/// Sets `name` to `value` for `ms` unless it already lives longer.
fn keep_longest(pipe: &mut redis::Pipeline, name: &str, value: &str, ms: u64) {
    if ms == 0 {
        return;
    }
    let value = if value.is_empty() { "1" } else { value };
    pipe.cmd("SET")
        .arg(name)
        .arg(value)
        .arg("NX")
        .arg("PX")
        .arg(ms)
        .ignore();
    pipe.cmd("PEXPIRE").arg(name).arg(ms).arg("GT").ignore();
}

async fn scan(
    conn: &mut MultiplexedConnection,
    pattern: &str,
    timeout: Duration,
) -> Result<Vec<String>, ClusterError> {
    let mut cursor: u64 = 0;
    let mut out = Vec::new();
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000);
        let call = cmd.query_async::<(u64, Vec<String>)>(conn);
        let (next, names) = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| ClusterError::Timeout(timeout))??;
        out.extend(names);
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

/// Every current heartbeat record.
pub(super) async fn instance_records(
    conn: &mut MultiplexedConnection,
    prefix: &str,
) -> Result<Vec<InstanceRecord>, ClusterError> {
    let names = scan(
        conn,
        &format!("{prefix}:instance:*"),
        Duration::from_secs(5),
    )
    .await?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&names).query_async(conn).await?;
    Ok(values
        .into_iter()
        .flatten()
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect())
}
