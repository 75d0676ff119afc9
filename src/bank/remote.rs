//! Media banks served over HTTP(S) (`[[media_bank.remote]]`), so a clip added on one instance
//! (or by the platform's incident tooling) reaches the whole fleet: fetched once before the
//! banks load, then polled with conditional requests. A fetched bank is read whole (format,
//! checksum, counts) before it is written over the cache, atomically; the file watcher then
//! puts it in force. What the server sends that does not read keeps the bank in force. Fetching
//! itself is the URL lists' ([`crate::matcher::remote`]).

use std::sync::Arc;

use anyhow::Context;

use super::file::decode;
use super::live::{Banks, RemoteBank};
use crate::matcher::remote::{fetch, write_cache, Fetched, Validators, DEFAULT_POLL};
use crate::rtmp::tls::TlsClient;

/// Checks that `body` is a bank that reads cleanly and writes it over the remote bank's cache.
/// Returns the bank's frames.
fn take(remote: &RemoteBank, body: &[u8]) -> anyhow::Result<usize> {
    let bank = decode(body, &remote.url)?;
    write_cache(&remote.path, body)
        .with_context(|| format!("caching the bank at {}", remote.path.display()))?;
    Ok(bank.frames.len())
}

/// Fetches every remote bank once, before the banks load: a good copy replaces the cache; when
/// the server cannot be reached or sends something that is not a bank, the cache stays and is
/// enforced (with a warning). A remote bank with neither is an error: starting without it
/// would fail open. Returns each remote bank's validators, for the pollers.
pub async fn prefetch(remotes: &[RemoteBank]) -> anyhow::Result<Vec<Validators>> {
    let tls = TlsClient::new(None)?;
    let mut out = Vec::new();
    for remote in remotes {
        let problem = match fetch(&remote.url, &Validators::default(), &tls).await {
            Ok(Fetched::Modified { body, validators }) => match take(remote, &body) {
                Ok(frames) => {
                    tracing::info!(url = %remote.url, frames, "media bank fetched");
                    out.push(validators);
                    continue;
                }
                Err(e) => format!("{e:#}"),
            },
            Ok(Fetched::NotModified) => "it answered 304 to an unconditional request".into(),
            Err(e) => e.to_string(),
        };
        if !remote.path.is_file() {
            anyhow::bail!(
                "media bank: cannot fetch {} ({problem}) and there is no cached copy at {}",
                remote.url,
                remote.path.display()
            );
        }
        tracing::warn!(url = %remote.url, cache = %remote.path.display(), "cannot fetch the media bank ({problem}); enforcing the cached copy");
        out.push(Validators::default());
    }
    Ok(out)
}

/// Polls every remote bank on its own schedule until `banks` is dropped; a new version that
/// reads cleanly is cached and put in force at once.
pub fn poll(banks: &Arc<Banks>, validators: Vec<Validators>) -> anyhow::Result<()> {
    let tls = TlsClient::new(None)?;
    for (remote, mut validators) in banks.settings().remote.clone().into_iter().zip(validators) {
        let weak = Arc::downgrade(banks);
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(remote.poll.unwrap_or(DEFAULT_POLL)).await;
                let Some(banks) = weak.upgrade() else {
                    return;
                };
                let outcome = match fetch(&remote.url, &validators, &tls).await {
                    Ok(Fetched::NotModified) => Ok(None),
                    Ok(Fetched::Modified {
                        body,
                        validators: fresh,
                    }) => {
                        let r = remote.clone();
                        match tokio::task::spawn_blocking(move || take(&r, &body)).await {
                            Ok(Ok(frames)) => Ok(Some((frames, fresh))),
                            Ok(Err(e)) => Err(format!("the bank it sent is refused: {e:#}")),
                            Err(e) => Err(format!("reading the bank failed: {e}")),
                        }
                    }
                    Err(e) => Err(format!("cannot fetch the media bank: {e}")),
                };
                match outcome {
                    Ok(fresh) => {
                        if failing {
                            tracing::info!(url = %remote.url, "media bank server answers again");
                        }
                        failing = false;
                        if let Some((frames, fresh)) = fresh {
                            validators = fresh;
                            put_in_force(&banks, frames, &remote.url);
                        }
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(url = %remote.url, "{e}; the bank in force stays");
                        }
                        failing = true;
                    }
                }
            }
        });
    }
    Ok(())
}

/// Reloads the cache just written (the watcher would, at its next poll).
fn put_in_force(banks: &Banks, frames: usize, url: &str) {
    for (path, outcome) in banks.reload_changed() {
        match outcome {
            Ok(frames) => tracing::info!(bank = %path.display(), frames, "media bank reloaded"),
            Err(e) => tracing::error!("{e}; the bank in force stays"),
        }
    }
    tracing::info!(url = %url, frames, "media bank fetched");
}
