//! The flood guard in a mass re-streaming wave, against real peers: many concurrent re-streams
//! of a known clip are all cut (their matches follow the clip's timeline, so the guard never
//! disarms them), while a list entry that every benign stream shows — a test card — stops
//! cutting once it has matched more than `flood_streams` streams off any timeline.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::attacks::sample;
use common::*;

fn replay(file: &Path, url: &str, count: usize) -> Output {
    Command::new("timeout")
        .arg("120")
        .arg(env!("CARGO_BIN_EXE_hashgate"))
        .arg("replay")
        .arg(file)
        .arg(url)
        .args(["--count", &count.to_string(), "--linger", "2s"])
        .output()
        .expect("run hashgate replay")
}

fn gate(dir: &Path, nginx: &Nginx, list: &Path, log: &Path) -> Hashgate {
    Hashgate::start(
        dir,
        &format!(
            "{}[[lists]]\npath = \"{}\"\n[events]\nlog = \"{}\"\n",
            upstream(&nginx.url()),
            list.display(),
            log.display()
        ),
    )
}

/// Concurrent re-streams of the clip: more than `flood_streams` (5, the default) at once.
const WAVE: usize = 16;

#[test]
fn every_re_stream_of_a_clip_in_a_wave_is_cut() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let log = dir.path().join("events.jsonl");
    let hashgate = gate(dir.path(), &nginx, &sample("flagged.pdq"), &log);
    let out = replay(&sample("flagged.flv"), &hashgate.url("wave"), WAVE);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "{WAVE} publishers: 0 complete, {WAVE} cut or refused"
        )),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("every unpublish", Duration::from_secs(20), || {
        of_kind(&read_events(&log), "unpublish").len() >= WAVE
    });
    let all = read_events(&log);
    let cuts = of_kind(&all, "cut");
    assert_eq!(cuts.len(), WAVE, "every stream is cut by its match");
    assert!(
        cuts.iter()
            .all(|c| c["stream_ms"].as_i64().unwrap_or(0) < 4000),
        "cut within the clip's first 2 s: {cuts:?}"
    );
}

#[test]
fn a_test_card_entry_does_not_cut_every_stream_that_shows_it() {
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    // Benign streams showing a test card, and a list that (wrongly) holds the card: every entry
    // of `hashgate hash --fps 2 card.flv` is the same picture at another second.
    let (card, list) = test_card_list(dir.path());
    let log = dir.path().join("events.jsonl");
    let hashgate = gate(dir.path(), &nginx, &list, &log);
    let streams = 12;
    let out = replay(&card, &hashgate.url("card"), streams);
    println!("{}", String::from_utf8_lossy(&out.stdout));
    wait_until("every unpublish", Duration::from_secs(20), || {
        of_kind(&read_events(&log), "unpublish").len() >= streams
    });
    let all = read_events(&log);
    let cuts = of_kind(&all, "cut").len();
    assert!(
        cuts <= 5,
        "{cuts} of {streams} benign streams cut: the guard allows at most flood_streams = 5"
    );
    assert!(
        !of_kind(&all, "flood").is_empty(),
        "a flood event names the entry"
    );
    assert!(!of_kind(&all, "match").is_empty());
    println!("{cuts} of {streams} streams showing the card were cut");
}
