//! Media banks served over HTTP(S) (`[[media_bank.remote]]`), so a clip added on one instance
//! (or by the platform's incident tooling) reaches the whole fleet: fetched once before the
//! banks load, then polled with conditional requests. A fetched bank is read whole (format,
//! checksum, counts) and must not drop more than `max_shrink` of the reference frames in force
//! (nor all of them) before it is written over the cache, atomically, and put in force. What
//! the server sends that does not qualify keeps the bank in force. The checksum only shows the
//! file is whole, not who made it: serve banks over `https` from a server the platform runs.
//! Fetching itself is the URL lists' ([`crate::matcher::remote`]).

use std::sync::Arc;

use anyhow::Context;

use super::file::decode;
use super::live::{Banks, RemoteBank};
use crate::matcher::remote::{fetch, write_cache, Fetched, Validators, DEFAULT_POLL};
use crate::rtmp::tls::TlsClient;

/// Why a fetched bank of `fetched` reference frames may not replace one of `in_force`: it
/// drops more than `max_shrink` of them, or all of them.
fn shrink_refused(in_force: usize, fetched: usize, max_shrink: f64) -> Option<String> {
    if fetched >= in_force {
        return None;
    }
    let lost = (in_force - fetched) as f64 / in_force as f64;
    (fetched == 0 || lost > max_shrink).then(|| {
        format!(
            "it would go from {in_force} to {fetched} reference frames ({:.0}% fewer; \
             max_shrink is {:.0}%)",
            lost * 100.0,
            max_shrink * 100.0
        )
    })
}

/// Checks that `body` is a bank that reads cleanly and does not shrink one of `in_force`
/// frames too far, and writes it over the remote bank's cache. Returns the bank's frames.
fn take(remote: &RemoteBank, body: &[u8], in_force: usize) -> anyhow::Result<usize> {
    let bank = decode(body, &remote.url)?;
    if let Some(why) = shrink_refused(in_force, bank.frames.len(), remote.max_shrink) {
        anyhow::bail!("{why}");
    }
    write_cache(&remote.path, body)
        .with_context(|| format!("caching the bank at {}", remote.path.display()))?;
    Ok(bank.frames.len())
}

/// The reference frames of the cached copy (0 when there is none or it does not read).
fn cached_frames(remote: &RemoteBank) -> usize {
    super::file::load(&remote.path).map_or(0, |b| b.frames.len())
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
            Ok(Fetched::Modified { body, validators }) => {
                match take(remote, &body, cached_frames(remote)) {
                    Ok(frames) => {
                        tracing::info!(url = %remote.url, frames, "media bank fetched");
                        out.push(validators);
                        continue;
                    }
                    Err(e) => format!("{e:#}"),
                }
            }
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
            // The last problem logged: a server that keeps failing the same way is logged once.
            let mut failing: Option<String> = None;
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
                        // Reading, indexing and swapping a bank takes a while: off the runtime.
                        let (r, b) = (remote.clone(), banks.clone());
                        let taken = tokio::task::spawn_blocking(move || {
                            let in_force = b
                                .banks()
                                .iter()
                                .find(|l| l.path == r.path)
                                .map_or(0, |l| l.bank.bank.frames.len());
                            let frames = take(&r, &body, in_force)?;
                            put_in_force(&b);
                            anyhow::Ok(frames)
                        })
                        .await;
                        match taken {
                            Ok(Ok(frames)) => Ok(Some((frames, fresh))),
                            Ok(Err(e)) => Err(format!("the bank it sent is refused: {e:#}")),
                            Err(e) => Err(format!("reading the bank failed: {e}")),
                        }
                    }
                    Err(e) => Err(format!("cannot fetch the media bank: {e}")),
                };
                match outcome {
                    Ok(fresh) => {
                        if failing.take().is_some() {
                            tracing::info!(url = %remote.url, "media bank server answers again");
                        }
                        if let Some((frames, fresh)) = fresh {
                            validators = fresh;
                            tracing::info!(url = %remote.url, frames, "media bank fetched");
                        }
                    }
                    Err(e) => {
                        if failing.as_ref() != Some(&e) {
                            tracing::warn!(url = %remote.url, "{e}; the bank in force stays");
                        }
                        failing = Some(e);
                    }
                }
            }
        });
    }
    Ok(())
}

/// Reloads the cache just written (the watcher would, at its next poll).
fn put_in_force(banks: &Banks) {
    for (path, outcome) in banks.reload_changed() {
        match outcome {
            Ok(frames) => tracing::info!(bank = %path.display(), frames, "media bank reloaded"),
            Err(e) => tracing::error!("{e}; the bank in force stays"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shrink_refused;

    #[test]
    fn a_fetched_bank_may_grow_or_shrink_a_little_but_not_empty_or_gut_one() {
        assert_eq!(shrink_refused(0, 0, 0.5), None);
        assert_eq!(shrink_refused(10, 12, 0.5), None);
        assert_eq!(shrink_refused(10, 5, 0.5), None);
        assert!(shrink_refused(10, 4, 0.5).is_some_and(|why| why.contains("10 to 4")));
        assert!(shrink_refused(10, 0, 1.0).is_some());
    }
}
