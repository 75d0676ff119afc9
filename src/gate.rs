//! The whole data path assembled from a config: lists, the event log, the verdict, the
//! inspection pool and the relay, wired together. `hashgate serve` runs one; `hashgate demo`
//! runs two side by side.

use std::sync::Arc;

use anyhow::Context;

use crate::bank::live::Banks;
use crate::cluster::{Cluster, FloodLimits};
use crate::config::Config;
use crate::events::Events;
use crate::inspect::audio_pool::{AudioPool, AudioPoolSettings};
use crate::inspect::pool::Inspector;
use crate::matcher::Matcher;
use crate::registry::StreamRegistry;
use crate::relay::{Relay, StreamInfo};
use crate::verdict::policy::PolicySettings;
use crate::verdict::Verdict;

/// A relay with inspection and verdict attached.
pub struct Gate {
    /// Accepts broadcasters and forwards their streams.
    pub relay: Arc<Relay>,
    /// Live streams, blocks and probation: the relay claims keys in it, the verdict and the
    /// admin API cut and unblock through it.
    pub registry: Arc<StreamRegistry>,
    /// The verdict's settings (an operator's cut blocks and puts on probation like the verdict).
    pub policy: PolicySettings,
    /// The lists in force.
    pub matcher: Arc<Matcher>,
    /// The media banks, when `[media_bank]` names any.
    pub banks: Option<Arc<Banks>>,
    /// The event log.
    pub events: Arc<Events>,
    /// This instance's fleet, when `[cluster] redis` is set.
    pub cluster: Option<Arc<Cluster>>,
}

impl Gate {
    /// Loads the lists (a broken list is an error: running without it would fail open), opens
    /// the event log, starts the inspection workers and, with `[cluster] redis`, joins the
    /// fleet (in the background: a Redis that is down only makes the instance degraded). Call
    /// within a tokio runtime when a cluster is configured.
    pub fn build(config: Config) -> anyhow::Result<Gate> {
        crate::registry::key::set_redacted(config.events.redact_keys);
        let matcher = Arc::new(Matcher::load(config.lists.clone()).context("loading hash lists")?);
        for list in matcher.lists().iter() {
            if list.is_empty() {
                tracing::warn!(
                    list = list.name(),
                    "hash list loaded empty: it matches nothing"
                );
            } else {
                tracing::info!(list = list.name(), entries = list.len(), "hash list loaded");
            }
        }
        let events = Arc::new(
            Events::open(&config.events)
                .with_context(|| format!("opening event log {}", config.events.log.display()))?,
        );
        let banks = load_banks(&config)?;
        let registry = Arc::new(StreamRegistry::new());
        let mut verdict = Verdict::new(
            matcher.clone(),
            config.verdict.clone(),
            events.clone(),
            registry.clone(),
        );
        if let Some(banks) = &banks {
            verdict = verdict.with_banks(banks.clone());
        }
        let verdict = Arc::new(verdict);
        let settings_config = config.clone();
        let inspector = Inspector::start(
            config.inspect.pool(),
            Box::new(move |stream: &StreamInfo| {
                settings_config.inspect_settings(&stream.stream_key)
            }),
            verdict.clone(),
        )
        .context("starting the inspection workers")?;
        // The soundtrack is decoded only when some list can match it.
        let window_items = matcher.audio_window_items();
        let audio = if window_items > 0 {
            Some(Arc::new(
                AudioPool::start(
                    AudioPoolSettings {
                        threads: config.inspect.audio_threads.max(1),
                        queue: config.inspect.audio_queue.max(1),
                        window_items,
                        keep_audio: config.events.evidence_dir.is_some(),
                    },
                    verdict.clone(),
                )
                .context("starting the audio workers")?,
            ))
        } else {
            None
        };
        let policy = config.verdict.clone();
        let config_cluster = config.cluster.clone();
        let mut relay = Relay::new(config.relay_settings(), registry.clone())?
            .with_taps(Arc::new(inspector))
            .with_events(events.clone());
        if let Some(audio) = audio {
            relay = relay.with_audio_taps(audio);
        }
        let relay = Arc::new(relay);
        verdict.watch_coverage();
        let cluster = match &config_cluster.redis {
            Some(_) => Some(
                Cluster::join(
                    config_cluster.clone(),
                    registry.clone(),
                    events.clone(),
                    FloodLimits {
                        streams: policy.flood_streams,
                        window: policy.flood_window,
                    },
                )
                .context("joining the cluster")?,
            ),
            None => None,
        };
        Ok(Gate {
            relay,
            registry,
            policy,
            matcher,
            banks,
            events,
            cluster,
        })
    }
}

/// The media banks `[media_bank]` names (a broken one is an error, as a broken list is).
fn load_banks(config: &Config) -> anyhow::Result<Option<Arc<Banks>>> {
    if !config.media_bank.is_on() {
        return Ok(None);
    }
    let banks = Banks::load(config.media_bank.clone()).context("loading media banks")?;
    for loaded in banks.banks().iter() {
        tracing::info!(
            bank = %loaded.name,
            clips = loaded.bank.bank.clips.len(),
            frames = loaded.bank.bank.frames.len(),
            "media bank loaded"
        );
    }
    Ok(Some(Arc::new(banks)))
}
