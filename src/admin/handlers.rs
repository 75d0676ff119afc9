//! One function per admin endpoint.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::AdminState;
use crate::events::EventKind;
use crate::matcher::ReloadOptions;
use crate::metrics::{metrics as process_metrics, Exposition};
use crate::registry::key::{for_api, shown};
use crate::registry::seconds_left;
use crate::registry::Change;

type Shared = State<Arc<AdminState>>;

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// `GET /livez`: 200 while the process serves HTTP at all (liveness: unlike `/healthz`, never
/// 503 while draining or while the fleet's blocks are not read yet).
pub async fn livez() -> &'static str {
    "ok\n"
}

/// `GET /healthz`: 200 while the instance takes streams (readiness), 503 once it is draining.
/// A fleet member whose Redis is away is still ready (it enforces blocks locally): the body
/// says it is degraded.
pub async fn healthz(State(state): Shared) -> Response {
    if state.draining.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response();
    }
    match &state.cluster {
        // Not ready before the fleet's blocks are known here: a blocked key would publish.
        Some(cluster) if !cluster.is_synced() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "joining the fleet: blocks not read yet\n",
        )
            .into_response(),
        Some(cluster) if !cluster.is_up() => "ok (cluster degraded)\n".into_response(),
        _ => "ok\n".into_response(),
    }
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): Shared) -> Response {
    let mut out = Exposition::default();
    process_metrics().render(&mut out);
    let streams = state.registry.streams();
    out.gauge(
        "hashgate_streams_active",
        "Streams being published through the relay.",
        streams.len() as f64,
    );
    out.gauge(
        "hashgate_blocks_active",
        "Stream keys refused at publish after a cut.",
        state.registry.blocks().len() as f64,
    );
    let lag_ms = streams
        .iter()
        .map(|s| s.stats.inspection_lag_ms.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    out.gauge(
        "hashgate_inspection_lag_seconds",
        "How far the most lagging stream's inspection is behind the live edge.",
        lag_ms as f64 / 1000.0,
    );
    let level = streams
        .iter()
        .map(|s| s.stats.degraded.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    out.gauge(
        "hashgate_inspection_level",
        "Sampling level of the most degraded stream: 0 as configured, 1 keyframes only, 2 fewer keyframes.",
        level as f64,
    );
    // Per stream, labelled by key (its SHA-256 with events.redact_keys): at most
    // limits.max_connections series each.
    let label = for_api;
    out.family(
        "hashgate_stream_sampling_ratio",
        "Frames hashed per second lately over the stream's target rate (1 = on target; streams sampling every frame are left out).",
        "gauge",
    );
    for s in &streams {
        let target = s.stats.target_fps();
        if target > 0.0 {
            let key = label(&s.stream_key);
            let ratio = s.stats.hashed_fps() / target;
            out.sample(
                "hashgate_stream_sampling_ratio",
                &[("stream", &key)],
                (ratio * 1000.0).round() / 1000.0,
            );
        }
    }
    out.family(
        "hashgate_stream_blind_seconds",
        "Video of the stream with no hashed frame after it, in wall-clock or stream time, whichever is longer (verdict.max_blind is the bound).",
        "gauge",
    );
    for s in &streams {
        let (wall, stream) = s.stats.blind();
        let key = label(&s.stream_key);
        out.sample(
            "hashgate_stream_blind_seconds",
            &[("stream", &key)],
            wall.max(stream).as_secs_f64(),
        );
    }
    out.family(
        "hashgate_list_entries",
        "Entries of each list in force.",
        "gauge",
    );
    for list in state.matcher.lists().iter() {
        out.sample(
            "hashgate_list_entries",
            &[("list", list.name())],
            list.len() as f64,
        );
    }
    if let Some(cluster) = &state.cluster {
        out.gauge(
            "hashgate_cluster_up",
            "1 while the cluster store (Redis) answers; 0: degraded, blocks and cuts apply on this instance only.",
            if cluster.is_up() { 1.0 } else { 0.0 },
        );
    }
    (
        [(header::CONTENT_TYPE, Exposition::CONTENT_TYPE)],
        out.finish(),
    )
        .into_response()
}

/// Options of `GET /streams`.
#[derive(Debug, Deserialize)]
pub struct StreamsQuery {
    /// `cluster`: every instance's streams (from their heartbeats); `local` (default): this
    /// instance's, with their counters.
    scope: Option<String>,
}

/// `GET /streams[?scope=cluster]`: live streams.
pub async fn streams(State(state): Shared, Query(query): Query<StreamsQuery>) -> Response {
    match query.scope.as_deref() {
        None | Some("local") => local_streams(&state).into_response(),
        Some("cluster") => {
            let Some(cluster) = &state.cluster else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "this instance is not in a cluster ([cluster] redis is unset)".into(),
                );
            };
            match cluster.fleet_streams().await {
                Ok(rows) => Json(json!(rows)).into_response(),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            }
        }
        Some(other) => error(
            StatusCode::BAD_REQUEST,
            format!("scope {other:?}: use local or cluster"),
        ),
    }
}

/// This instance's streams with their counters.
fn local_streams(state: &AdminState) -> Json<Value> {
    let rows: Vec<Value> = state
        .registry
        .streams()
        .iter()
        .map(|s| {
            let stats = &s.stats;
            let last_hash = stats.last_hash_unix_ms.load(Ordering::Relaxed);
            json!({
                "key": for_api(&s.stream_key),
                "app": s.app,
                "peer": s.peer.to_string(),
                "since": rfc3339(stats.since),
                "seconds": (stats.age() * 10.0).round() / 10.0,
                "bitrate_bps": stats.bitrate().round() as u64,
                "fps": (stats.fps() * 100.0).round() / 100.0,
                "last_hash_at": (last_hash > 0)
                    .then(|| rfc3339(UNIX_EPOCH + Duration::from_millis(last_hash))),
                "inspection_lag_ms": stats.inspection_lag_ms.load(Ordering::Relaxed),
                "target_fps": stats.target_fps(),
                "hashed_fps": (stats.hashed_fps() * 100.0).round() / 100.0,
                "sampling_level": stats.degraded.load(Ordering::Relaxed),
                "blind_ms": blind_ms(stats),
                "inspection_dropped": stats.inspection_dropped.load(Ordering::Relaxed),
                "audio_dropped": stats.audio_dropped.load(Ordering::Relaxed),
                "decode_errors": stats.decode_errors.load(Ordering::Relaxed),
                "matches": stats.matches.load(Ordering::Relaxed),
            })
        })
        .collect();
    Json(Value::Array(rows))
}

/// Coverage of a stream for `GET /streams`: video with no hashed frame after it, in ms.
fn blind_ms(stats: &crate::relay::StreamStats) -> Value {
    let (wall, stream) = stats.blind();
    json!({ "wall": wall.as_millis() as u64, "stream": stream.as_millis() as u64 })
}

/// Options of `POST /streams/{key}/cut`.
#[derive(Debug, Deserialize)]
pub struct CutOptions {
    /// Told to the broadcaster and recorded; "cut by operator" by default.
    reason: Option<String>,
    /// How long the key stays blocked (`"10m"`, `"0s"` for no block); the verdict's cooldown
    /// by default.
    block: Option<String>,
}

/// `POST /streams/{key}/cut?reason=..&block=..`: ends a live stream now and blocks its key.
pub async fn cut(
    State(state): Shared,
    Path(key): Path<String>,
    Query(options): Query<CutOptions>,
) -> Response {
    let block = match options.block.as_deref().map(crate::units::parse_duration) {
        None => state.cut_block,
        Some(Ok(block)) => block,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("block: {e}")),
    };
    let key = state.registry.resolve(&key);
    let local = state
        .registry
        .streams()
        .into_iter()
        .find(|s| s.stream_key == key);
    // Not live here: in a fleet, the instance that carries it (from the heartbeats).
    let carrier = match (&local, &state.cluster) {
        (Some(_), _) | (None, None) => None,
        (None, Some(cluster)) => match cluster.fleet_streams().await {
            // The listing shows keys as the API does (their hash with events.redact_keys): the
            // operator may give the key or that hash.
            Ok(fleet) => fleet
                .into_iter()
                .find(|s| s.key == for_api(&key) || s.key == key),
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        },
    };
    let peer = match (&local, &carrier) {
        (Some(stream), _) => stream.peer,
        (None, Some(_)) => std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        (None, None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no live stream under \"{}\"", shown(&key)),
            )
        }
    };
    let reason = options.reason.unwrap_or_else(|| "cut by operator".into());
    let probation = state.cut_probation;
    process_metrics().cuts.inc(&["operator"]);
    // Logged before cutting: the stream's unpublish line and event follow its cut.
    let instance = carrier.as_ref().map_or("", |c| c.instance.as_str());
    tracing::warn!(key = %shown(&key), instance, reason = %reason.escape_debug(), block_s = block.as_secs(), "cut by operator");
    state.events.emit(
        &key,
        peer,
        EventKind::Operator {
            action: "cut".into(),
            reason: reason.clone(),
        },
    );
    let Some(carrier) = carrier else {
        let was_live = state.registry.cut(&key, &reason, block, probation);
        return Json(json!({ "key": for_api(&key), "cut": was_live, "reason": reason, "blocked_s": block.as_secs() }))
            .into_response();
    };
    if carrier.key == key && crate::registry::key::looks_hashed(&key) {
        // The operator named the stream by its hash (redacted listing): the carrier, which
        // knows the key, resolves it, then cuts and blocks the key itself.
        let now = std::time::Instant::now();
        state.registry.tell_fleet(Change::Cut {
            key: key.clone(),
            reason: reason.clone(),
            block_until: (!block.is_zero()).then(|| now + block),
            probation_until: (!probation.is_zero()).then(|| now + probation),
            live_here: false,
            by_hash: true,
        });
    } else {
        state.registry.cut(&key, &reason, block, probation);
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({ "key": carrier.key, "cut": "sent", "instance": carrier.instance, "reason": reason, "blocked_s": block.as_secs() })),
    )
        .into_response()
}

/// `GET /blocks`: blocked keys and the seconds each block has left.
pub async fn blocks(State(state): Shared) -> Json<Value> {
    let rows: Vec<Value> = state
        .registry
        .blocks()
        .into_iter()
        .map(|(key, left)| json!({ "key": for_api(&key), "remaining_s": seconds_left(left) }))
        .collect();
    Json(Value::Array(rows))
}

/// `DELETE /blocks/{key}`: lets the key publish again.
pub async fn unblock(State(state): Shared, Path(key): Path<String>) -> Response {
    let key = state.registry.resolve(&key);
    // An unblock made while Redis is away would be replayed later, possibly over a newer block
    // made elsewhere meanwhile: refused until the fleet can hear it.
    if state.cluster.as_ref().is_some_and(|c| !c.is_up()) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the cluster store is unreachable: an unblock now could not reach the fleet; retry when hashgate_cluster_up is 1".into(),
        );
    }
    let elsewhere = match &state.cluster {
        Some(cluster) => cluster.block_ttl(&key).await.ok().flatten().is_some(),
        None => false,
    };
    if !state.registry.unblock(&key) && !elsewhere {
        return error(
            StatusCode::NOT_FOUND,
            format!("\"{}\" is not blocked", shown(&key)),
        );
    }
    tracing::info!(key = %shown(&key), "block lifted by operator");
    let nobody = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    state.events.emit(
        &key,
        nobody,
        EventKind::Operator {
            action: "unblock".into(),
            reason: String::new(),
        },
    );
    Json(json!({ "key": for_api(&key), "unblocked": true })).into_response()
}

/// Options of `POST /lists/reload`.
#[derive(Debug, Deserialize)]
pub struct ReloadQuery {
    /// Apply lists that empty or shrink past their `max_shrink`.
    #[serde(default)]
    force: bool,
}

/// `POST /lists/reload[?force=true]`: reloads every list now. 200 when all loaded; 422 when one
/// failed or would shrink past its `max_shrink` without `force` (its previous version stays in
/// force), with the reason per list.
pub async fn reload_lists(State(state): Shared, Query(query): Query<ReloadQuery>) -> Response {
    let matcher = state.matcher.clone();
    let how = if query.force {
        ReloadOptions::FORCED
    } else {
        ReloadOptions::ALL
    };
    if query.force {
        tracing::warn!("lists reloaded with force: a list may empty or shrink");
    }
    let Ok(outcomes) = tokio::task::spawn_blocking(move || matcher.reload(how)).await else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reload task failed".into(),
        );
    };
    outcomes.iter().for_each(crate::matcher::log_reload);
    let failed = outcomes.iter().any(|o| o.result.is_err());
    let rows: Vec<Value> = outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(entries) => json!({ "list": o.list, "result": "ok", "entries": entries }),
            Err(e) => json!({ "list": o.list, "result": "error", "error": e.to_string() }),
        })
        .collect();
    let status = if failed {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (status, Json(Value::Array(rows))).into_response()
}

/// `?name=` of `POST /banks/{bank}/clips`.
#[derive(Debug, Deserialize)]
pub struct ClipQuery {
    /// The clip's name (the label its matches carry).
    name: String,
}

/// `POST /banks/{bank}/clips?name=LABEL` with a video or image as the body (at most
/// `media_bank.max_upload`): added to the configured bank of that name, mirrored too, written
/// whole and in force at once. 404 for a bank not configured, 400 for media that does not
/// decode or a name that cannot be a label.
pub async fn add_bank_clip(
    State(state): Shared,
    Path(bank): Path<String>,
    Query(query): Query<ClipQuery>,
    body: axum::body::Bytes,
) -> Response {
    let Some(banks) = state.banks.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "no media banks: [media_bank] paths is empty".into(),
        );
    };
    let name = query.name.trim().to_owned();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return error(
            StatusCode::BAD_REQUEST,
            "name: 1-200 characters, no control characters".into(),
        );
    }
    let upload = std::env::temp_dir().join(format!(
        "hashgate-upload-{}-{}",
        std::process::id(),
        UPLOADS.fetch_add(1, Ordering::Relaxed)
    ));
    let added = tokio::task::spawn_blocking({
        let (bank, name, upload) = (bank.clone(), name.clone(), upload.clone());
        move || {
            std::fs::write(&upload, &body)
                .map_err(|e| crate::bank::live::AddError::Bank(format!("upload: {e}")))?;
            let added = banks.add_clip(&bank, &name, &upload);
            let _ = std::fs::remove_file(&upload);
            added
        }
    })
    .await;
    use crate::bank::live::AddError;
    match added {
        Ok(Ok(frames)) => {
            tracing::warn!(bank = %bank, clip = %name.escape_debug(), frames, "clip added to media bank by operator");
            Json(json!({ "bank": bank, "clip": name, "frames": frames })).into_response()
        }
        Ok(Err(e @ AddError::NoSuchBank(_))) => error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e @ AddError::Media(_))) => error(StatusCode::BAD_REQUEST, e.to_string()),
        // Full and Known: only learning is refused so, never an operator's clip.
        Ok(Err(e @ (AddError::Bank(_) | AddError::Full(_) | AddError::Known))) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "adding the clip failed".into(),
        ),
    }
}

/// Uploads so far, to name their temporary files.
static UPLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
