//! `hashgate replay FILE URL`: publishes a file like a broadcaster and says whether the server
//! cut it. Exit code 0: every publisher sent the whole file; 2: the server cut or refused at
//! least one; 1: an error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::replay::{self, MediaSource, Outcome, ReplayOptions};
use crate::rtmp::tls::TlsClient;
use crate::rtmp::url::{RtmpUrl, Scheme};

/// Arguments of `hashgate replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Media file (FLV, MP4, MKV, MOV) with H.264 video; AAC or MP3 audio goes along.
    pub file: PathBuf,
    /// Where to publish: `rtmp[s]://host[:port]/app/KEY`.
    pub url: String,
    /// Send as fast as the server reads instead of in real time.
    #[arg(long)]
    pub as_fast_as_possible: bool,
    /// Start over at the end, until interrupted (Ctrl-C unpublishes cleanly).
    #[arg(long = "loop")]
    pub looped: bool,
    /// Concurrent publishers; with more than one their keys are `KEY-0` .. `KEY-<N-1>`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub count: u32,
    /// After the last frame, how long to wait for the server's verdict before unpublishing.
    #[arg(long, default_value = "3s", value_parser = crate::units::parse_duration)]
    pub linger: Duration,
    /// Certificates (PEM) to trust for rtmps:// instead of the system roots: a CA, or the
    /// server's own self-signed certificate (accepted exactly as it is).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Accept an rtmps:// server whose public key has this SHA-256 (base64, `sha256//…` or
    /// hex); repeatable.
    #[arg(long = "pin-sha256")]
    pub pin_sha256: Vec<String>,
}

/// Splits `rtmp://host/app/KEY` into the application URL and the key.
fn split_key(url: &str) -> anyhow::Result<(RtmpUrl, String)> {
    let (app_url, key) = url
        .trim_end_matches('/')
        .rsplit_once('/')
        .filter(|(base, key)| !key.is_empty() && base.matches('/').count() >= 3)
        .with_context(|| format!("{url}: expected rtmp[s]://host[:port]/app/KEY"))?;
    Ok((RtmpUrl::parse(app_url)?, key.to_owned()))
}

/// Runs `replay`.
pub fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let (url, key) = split_key(&args.url)?;
    let tls = match url.scheme {
        Scheme::Rtmps => Some(TlsClient::with_trust(&crate::rtmp::tls::UpstreamTrust {
            ca_file: args.ca_file.clone(),
            pin_sha256: args.pin_sha256.clone(),
        })?),
        Scheme::Rtmp => None,
    };
    let keys: Vec<String> = match args.count {
        1 => vec![key],
        n => (0..n).map(|i| format!("{key}-{i}")).collect(),
    };
    // Opened up front, one per publisher, so a bad file fails before anything connects.
    let sources = keys
        .iter()
        .map(|_| MediaSource::open(&args.file))
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let outcomes = runtime.block_on(publish_all(args, &url, &keys, sources, tls));
    let summary = summarize(&keys, &outcomes);
    println!("{}", summary.line);
    Ok(summary.code)
}

async fn publish_all(
    args: &ReplayArgs,
    url: &RtmpUrl,
    keys: &[String],
    sources: Vec<MediaSource>,
    tls: Option<TlsClient>,
) -> Vec<Outcome> {
    let stop = CancellationToken::new();
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} ms {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let tls = tls.map(Arc::new);
    let mut tasks = Vec::with_capacity(keys.len());
    for (key, source) in keys.iter().zip(sources) {
        let options = ReplayOptions {
            url: url.clone(),
            key: key.clone(),
            realtime: !args.as_fast_as_possible,
            looped: args.looped,
            linger: args.linger,
            timeout: Duration::from_secs(10),
        };
        let length = if args.looped {
            None
        } else {
            source.duration_ms
        };
        let bar = bars.add(match length {
            Some(ms) => ProgressBar::new(ms).with_style(style.clone()),
            None => ProgressBar::new_spinner(),
        });
        bar.set_message(key.clone());
        let (tls, stop) = (tls.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let outcome = replay::publish(source, &options, tls.as_deref(), stop, |ms| {
                bar.set_position(u64::from(ms))
            })
            .await;
            bar.finish_and_clear();
            outcome
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(
            task.await
                .unwrap_or_else(|e| Outcome::Failed(format!("publisher task: {e}"))),
        );
    }
    outcomes
}

struct Summary {
    line: String,
    code: ExitCode,
}

fn seconds(ms: u32) -> String {
    format!("{:.1} s", f64::from(ms) / 1000.0)
}

fn summarize(keys: &[String], outcomes: &[Outcome]) -> Summary {
    let describe = |key: &str, outcome: &Outcome| match outcome {
        Outcome::Completed { sent_ms } => format!("{key}: complete, {} sent", seconds(*sent_ms)),
        Outcome::Cut {
            sent_ms: 0,
            code,
            reason,
        } => format!("{key}: refused by the server ({code}: {reason})"),
        Outcome::Cut {
            sent_ms,
            code,
            reason,
        } => format!(
            "{key}: cut by the server at {} ({code}: {reason})",
            seconds(*sent_ms)
        ),
        Outcome::Failed(e) => format!("{key}: failed: {e}"),
    };
    let failed = outcomes.iter().any(|o| matches!(o, Outcome::Failed(_)));
    let cut = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Cut { .. }))
        .count();
    let code = if failed {
        ExitCode::FAILURE
    } else if cut > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    };
    let line = match (keys, outcomes) {
        ([key], [outcome]) => describe(key, outcome),
        _ => {
            let complete = outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Completed { .. }))
                .count();
            let others: Vec<String> = keys
                .iter()
                .zip(outcomes)
                .filter(|(_, o)| !matches!(o, Outcome::Completed { .. }))
                .map(|(k, o)| describe(k, o))
                .collect();
            let mut line = format!(
                "{} publishers: {complete} complete, {cut} cut or refused, {} failed",
                keys.len(),
                outcomes.len() - complete - cut
            );
            if !others.is_empty() {
                line.push_str(&format!(" ({})", others.join("; ")));
            }
            line
        }
    };
    Summary { line, code }
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_splits_into_application_and_key() {
        let (url, key) = super::split_key("rtmp://127.0.0.1:1935/live/cam").expect("url");
        assert_eq!(
            (url.app.as_str(), url.port, key.as_str()),
            ("live", 1935, "cam")
        );
        let (url, key) = super::split_key("rtmps://h/a/b/k/").expect("nested app");
        assert_eq!((url.app.as_str(), key.as_str()), ("a/b", "k"));
        assert!(super::split_key("rtmp://h/live").is_err(), "no key");
        assert!(super::split_key("rtmp://h").is_err());
    }
}
