//! hashgate with the shipped defaults (2 s delay, 2 fps) and the flagged sample's list in front
//! of nginx-rtmp, for tests that publish crafted streams through it: how each stream was
//! decided and what of the clip the platform recorded.

use std::path::PathBuf;
use std::time::Duration;

use super::attacks::sample;
use super::crafted::*;
use super::*;
use hashgate::matcher::list::ListSettings;
use hashgate::matcher::Matcher;

pub struct Setup {
    /// Kept for the life of the test: nginx and hashgate write under it.
    pub _dir: tempfile::TempDir,
    pub nginx: Nginx,
    pub hashgate: Hashgate,
    pub log: PathBuf,
    /// Between hashgate and nginx, when asked for: what the platform was sent.
    pub platform_side: Option<TimingProxy>,
}

/// nginx-rtmp and hashgate with the shipped defaults, the sample list and `extra` config.
pub fn setup(extra: &str) -> Setup {
    setup_with(extra, false)
}

/// [`setup`], with a [`TimingProxy`] between hashgate and nginx when `watch` is set.
pub fn setup_with(extra: &str, watch: bool) -> Setup {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let log = dir.path().join("events.jsonl");
    let platform_side = watch.then(|| TimingProxy::start(nginx.port));
    let platform = match &platform_side {
        Some(proxy) => format!("rtmp://127.0.0.1:{}/live", proxy.port),
        None => nginx.url(),
    };
    let config = format!(
        "{}[[lists]]\npath = \"{}\"\n[events]\nlog = \"{}\"\n{extra}",
        upstream(&platform),
        sample("flagged.pdq").display(),
        log.display()
    );
    let hashgate = Hashgate::start(dir.path(), &config);
    Setup {
        _dir: dir,
        nginx,
        hashgate,
        log,
        platform_side,
    }
}

pub fn events_of<'a>(
    all: &'a [serde_json::Value],
    key: &str,
    kind: &str,
) -> Vec<&'a serde_json::Value> {
    all.iter()
        .filter(|e| e["stream"] == key && e["event"] == kind)
        .collect()
}

/// How the stream was decided: `"match"`, `"uninspectable"`, or `"passed"`.
pub fn decision(setup: &Setup, key: &str) -> String {
    wait_until("the unpublish event", Duration::from_secs(20), || {
        !events_of(&read_events(&setup.log), key, "unpublish").is_empty()
    });
    let all = read_events(&setup.log);
    if !events_of(&all, key, "cut").is_empty() {
        "match".into()
    } else if events_of(&all, key, "uninspectable")
        .iter()
        .any(|e| e["action"] == "cut")
    {
        "uninspectable".into()
    } else {
        "passed".into()
    }
}

/// Frames of the clip the platform recorded under `key` (every frame decoded and hashed).
/// Call after hashgate's `unpublish` event: its platform leg is over by then.
pub fn aired(setup: &Setup, key: &str) -> (f64, u64, u64) {
    std::thread::sleep(Duration::from_millis(300));
    if !setup
        .nginx
        .error_log()
        .contains(&format!("publish: name='{key}'"))
    {
        // Cut before the platform leg was even set up.
        return (0.0, 0, 0);
    }
    setup.nginx.wait_closed(key, Duration::from_secs(30));
    let matcher = Matcher::load(vec![ListSettings::for_path(sample("flagged.pdq"))]).expect("list");
    let recording = setup.nginx.recording(key);
    match hashgate::demo::count_flagged(&recording, &matcher) {
        Ok(counts) => counts,
        // Metadata and audio only, or nothing at all (a cut before the first release leaves
        // nginx a recording with no stream): no video reached the platform.
        Err(e)
            if e.to_string().contains("no video stream")
                || e.to_string().contains("Invalid data found") =>
        {
            (0.0, 0, 0)
        }
        Err(e) => panic!("cannot decode the recording of {key}: {e}"),
    }
}

/// Publishes `tags` in real time (by timestamp) and asserts hashgate cut it before any frame
/// of the clip reached the platform. Returns the decision.
pub fn assert_cut_and_nothing_aired(setup: &Setup, key: &str, sends: &[Send]) -> String {
    let published = publish(setup.hashgate.port, key, sends, Duration::from_secs(3));
    assert!(
        matches!(&published.ending, Ending::Refused { code, .. } if code == "NetStream.Publish.Rejected"),
        "{key}: the broadcaster must see the stream refused: {:?}\n{}",
        published.ending,
        setup.hashgate.log()
    );
    let decided = decision(setup, key);
    assert_ne!(decided, "passed", "{key} was not cut");
    let (seconds, frames, flagged) = aired(setup, key);
    println!(
        "{key}: {decided}; the platform recorded {frames} frames ({seconds:.2} s), {flagged} of the clip"
    );
    assert_eq!(flagged, 0, "{key}: frames of the clip reached the platform");
    decided
}
