//! A broadcaster who wants a known clip on air and has read hashgate's source. Each test takes
//! the flagged sample (`samples/flagged.flv`: a synthetic stand-in for known content from 2 s to
//! 5 s), changes it the way an evasion would, publishes it with hashgate's own RTMP client
//! through hashgate (shipped defaults: 2 s delay, 2 fps) into nginx-rtmp, and checks that the
//! stream was cut — by a match or as uninspectable — and that hashing every frame the platform
//! recorded finds none of the clip. Manipulations that do not hide content (header churn with
//! the same parameters, damage players conceal) leave a benign stream alone.

mod common;

use std::time::Duration;

use common::attacks::*;
use common::crafted::*;
use common::gate::*;
use common::*;

#[test]
fn sequence_header_churn_does_not_blind_inspection() {
    let s = setup("");
    let decided = assert_cut_and_nothing_aired(&s, "churn", &paced(&header_churn(&flagged())));
    assert_eq!(
        decided, "match",
        "the clip itself is visible: it is cut by its match"
    );
    let all = read_events(&s.log);
    assert!(
        !events_of(&all, "churn", "anomaly").is_empty(),
        "header churn is itself a signal"
    );
}

#[test]
fn concealable_damage_is_hashed_as_players_show_it() {
    let s = setup("");
    let decided =
        assert_cut_and_nothing_aired(&s, "damaged", &paced(&concealable_damage(&flagged())));
    assert_eq!(decided, "match");
}

#[test]
fn churn_and_damage_that_hide_nothing_leave_a_benign_stream_alone() {
    let s = setup("");
    let tags = concealable_damage(&header_churn(&benign()));
    let published = publish(
        s.hashgate.port,
        "calm",
        &paced(&tags),
        Duration::from_secs(3),
    );
    assert_eq!(published.ending, Ending::Completed, "{}", s.hashgate.log());
    assert_eq!(decision(&s, "calm"), "passed");
    let (seconds, frames, flagged) = aired(&s, "calm");
    let sent_frames = tags
        .iter()
        .filter(|t| t.type_id == VIDEO && is_avc_frame(&t.body))
        .count() as u64;
    assert!(
        seconds > 7.5,
        "the platform got the whole stream: {seconds} s"
    );
    assert!(
        frames + 2 >= sent_frames,
        "{frames} of {sent_frames} frames decoded from the recording"
    );
    assert_eq!(flagged, 0);
    let all = read_events(&s.log);
    assert!(
        !events_of(&all, "calm", "anomaly").iter().any(|e| e["cause"]
            .as_str()
            .unwrap_or("")
            .contains("shown for a blink")),
        "evenly spaced frames are not a blink"
    );
}

#[test]
fn stretched_and_jumping_timestamps_cannot_spread_matches_apart() {
    let s = setup("");
    let tags = flagged();
    assert_cut_and_nothing_aired(
        &s,
        "stretched",
        &retimed(&tags, |_, ts| ts.wrapping_mul(200)),
    );
    assert_cut_and_nothing_aired(
        &s,
        "jumping",
        &retimed(&tags, |frame, ts| {
            ts.wrapping_add((frame as u32).wrapping_mul(3_600_000))
        }),
    );
    // Squeezed: every timestamp 0. Sampling falls back on the wall clock.
    assert_cut_and_nothing_aired(&s, "frozen", &retimed(&tags, |_, _| 0));
}

#[test]
fn picture_over_max_pixels_is_uninspectable_at_once() {
    let s = setup("");
    let tags = declaring_size(&flagged(), 8192, 8192);
    let published = publish(
        s.hashgate.port,
        "huge",
        &paced(&tags),
        Duration::from_secs(3),
    );
    assert!(
        matches!(published.ending, Ending::Refused { .. }),
        "{:?}",
        published.ending
    );
    assert!(
        published.ended.duration_since(published.started) < Duration::from_secs(1),
        "decided at the first sequence header, not after {:?}",
        published.ended.duration_since(published.started)
    );
    assert_eq!(decision(&s, "huge"), "uninspectable");
    let all = read_events(&s.log);
    let cause = events_of(&all, "huge", "uninspectable")[0]["cause"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        cause.contains("8192x8192") && cause.contains("max_pixels"),
        "{cause}"
    );
}

#[test]
fn decoys_where_fixed_sampling_would_fall_do_not_hide_the_clip() {
    let s = setup("");
    let dir = temp_dir();
    let tags = decoys_at_sample_points(dir.path());
    assert_eq!(
        assert_cut_and_nothing_aired(&s, "decoys", &paced(&tags)),
        "match",
        "random sample points see the clip between the decoys"
    );
}

#[test]
fn frames_shown_for_a_blink_are_cut_every_time() {
    // A benign frame shown for a millisecond after each clip frame: when a sample was the
    // first frame after a random point, nearly every sample landed on a benign frame (the
    // keyframes, hashed besides in hybrid mode, are benign too). Samples are the frame on
    // screen at the point now. Ten tries with the flicker made by composition times (decode
    // times evenly spaced), three with decode times.
    let s = setup("");
    let dir = temp_dir();
    let by_cts = cts_blinking(dir.path());
    let by_dts = blinking(dir.path());
    let tries: Vec<(String, &Vec<Send>)> = (0..10)
        .map(|i| (format!("cts-blink-{i}"), &by_cts))
        .chain((0..3).map(|i| (format!("dts-blink-{i}"), &by_dts)))
        .collect();
    std::thread::scope(|scope| {
        for (key, sends) in &tries {
            let s = &s;
            scope.spawn(move || {
                assert_eq!(assert_cut_and_nothing_aired(s, key, sends), "match");
            });
        }
    });
}

#[test]
fn ffmpeg_cannot_be_steered_into_crediting_pictures_to_other_frames() {
    // Repeated presentation times switch FFmpeg's best-effort timestamp to decode times for
    // good; decode times bunched under runs of clip frames then made every run's samples come
    // out as its one benign frame. Pictures are credited by the packet they were coded in.
    let s = setup("");
    let dir = temp_dir();
    let sends = best_effort_collapse(dir.path());
    assert_eq!(
        assert_cut_and_nothing_aired(&s, "collapse", &sends),
        "match"
    );
}

#[test]
fn frames_shown_for_a_blink_raise_an_anomaly() {
    // The flicker watch stays as a second line: a stream whose timestamps make frames blink
    // does not pass silently whatever the samples see. Shadow mode: the stream runs to its end.
    let s = setup("[verdict]\nmode = \"shadow\"\n");
    let dir = temp_dir();
    let published = publish(
        s.hashgate.port,
        "blink",
        &blinking(dir.path()),
        Duration::from_secs(3),
    );
    assert_eq!(published.ending, Ending::Completed, "{}", s.hashgate.log());
    println!("blink: {}", decision(&s, "blink"));
    let all = read_events(&s.log);
    let anomalies = events_of(&all, "blink", "anomaly");
    assert!(
        anomalies.iter().any(|e| e["cause"]
            .as_str()
            .unwrap_or("")
            .contains("shown for a blink")),
        "no anomaly for the blinking stream: {anomalies:?}\n{}",
        s.hashgate.log()
    );
}

#[test]
fn video_inside_aggregate_messages_is_inspected() {
    let s = setup("");
    assert_eq!(
        assert_cut_and_nothing_aired(&s, "aggregate", &paced(&aggregated(&flagged(), 4))),
        "match"
    );
}

#[test]
fn frames_never_flagged_as_keyframes_are_decoded_all_the_same() {
    let s = setup("");
    let tags = unflagged_keyframes(&flagged());
    let decided = assert_cut_and_nothing_aired(&s, "unflagged", &paced(&tags));
    assert_eq!(decided, "match");
}

#[test]
fn video_inspection_cannot_decode_is_uninspectable() {
    let s = setup("");
    // The same H.264 frames, labelled with FLV codec id 4 (VP6) and, on another stream, wrapped
    // as Enhanced RTMP multitrack packets.
    let relabelled = relabelled_codec(&flagged(), 4);
    assert_eq!(
        assert_cut_and_nothing_aired(&s, "vp6", &paced(&relabelled)),
        "uninspectable"
    );
    let multitrack = multitrack(&flagged());
    assert_eq!(
        assert_cut_and_nothing_aired(&s, "multitrack", &paced(&multitrack)),
        "uninspectable"
    );
}

#[test]
fn video_without_a_sequence_header_is_uninspectable_within_the_bound() {
    let s = setup("");
    let tags = without_sequence_header(&flagged());
    let published = publish(
        s.hashgate.port,
        "headless",
        &paced(&tags),
        Duration::from_secs(3),
    );
    assert!(
        matches!(published.ending, Ending::Refused { .. }),
        "{:?}",
        published.ending
    );
    let after = published.ended.duration_since(published.started);
    assert!(
        after < Duration::from_millis(2500),
        "cut {after:?} in: the 1.5 s bound, before the 2 s delay lets anything through"
    );
    assert_eq!(decision(&s, "headless"), "uninspectable");
}

#[test]
fn a_blocked_key_cannot_come_back_with_a_suffix() {
    let s = setup("");
    assert_cut_and_nothing_aired(&s, "banned", &paced(&flagged()));
    for variant in ["banned?x=1", "banned\0", "banned\0?x=1"] {
        let published = publish(
            s.hashgate.port,
            variant,
            &paced(&benign()[..20]),
            Duration::ZERO,
        );
        assert!(
            matches!(&published.ending, Ending::Refused { .. }),
            "{variant:?} was accepted: {:?}",
            published.ending
        );
    }
    let all = read_events(&s.log);
    assert!(
        !events_of(&all, "banned", "blocked").is_empty(),
        "the query string form is recognised as the blocked key"
    );
    // nginx-rtmp saw the key's publish once, the one that was cut.
    let publishes = s
        .nginx
        .error_log()
        .matches("publish: name='banned'")
        .count();
    assert_eq!(publishes, 1, "{}", s.nginx.error_log());
}

#[test]
fn keys_that_would_forge_log_lines_are_refused_and_logged_escaped() {
    let s = setup("");
    let forged = "k\n2026-11-30T00:00:00Z  INFO hashgate: stream cut by operator\x1b[2J";
    let published = publish(
        s.hashgate.port,
        forged,
        &paced(&benign()[..10]),
        Duration::ZERO,
    );
    assert!(
        matches!(&published.ending, Ending::Refused { code, .. } if code == "NetStream.Publish.BadName"),
        "{:?}",
        published.ending
    );
    wait_until("the refusal in the log", Duration::from_secs(5), || {
        s.hashgate.log().contains("control character")
    });
    let log = s.hashgate.log();
    assert!(
        !log.lines().any(|l| l.starts_with("2026-11-30T00:00:00Z")),
        "a forged line made it into the log:\n{log}"
    );
    assert!(!log.contains('\x1b'), "a raw escape made it into the log");
}

#[test]
fn a_broadcaster_is_not_told_where_the_platform_is() {
    let dir = temp_dir();
    let closed = free_port();
    let hashgate = Hashgate::start(
        dir.path(),
        &format!(
            "{}[verdict]\ndelay = \"0s\"\n",
            upstream(&format!("rtmp://127.0.0.1:{closed}/live"))
        ),
    );
    let published = publish(
        hashgate.port,
        "lost",
        &paced(&benign()[..30]),
        Duration::from_secs(1),
    );
    let Ending::Refused { description, .. } = &published.ending else {
        panic!(
            "the broadcaster must be told the stream failed: {:?}",
            published.ending
        );
    };
    assert!(
        !description.contains(&closed.to_string()) && !description.contains("127.0.0.1"),
        "the platform's address leaked: {description}"
    );
    assert!(
        hashgate.log().contains(&closed.to_string()),
        "the operator's log names it"
    );
}

#[test]
fn probation_cuts_a_returning_key_on_its_first_match() {
    // The block lapses after 1 s here (OBS reconnects after 2 s); probation is the default 24 h.
    let s = setup("[verdict]\ncooldown = \"1s\"\n");
    assert_cut_and_nothing_aired(&s, "returning", &paced(&flagged()));
    // Back mid-clip: one frame of the clip (the first, always sampled, matches), then benign.
    let tags = back_mid_clip(&flagged(), &benign());
    std::thread::sleep(Duration::from_millis(1500));
    // A key with no history is not cut for one matching frame (min_matches = 2)...
    let fresh = publish(
        s.hashgate.port,
        "newcomer",
        &paced(&tags),
        Duration::from_secs(2),
    );
    assert_eq!(fresh.ending, Ending::Completed, "{}", s.hashgate.log());
    // ...the key cut a moment ago is.
    let back = publish(
        s.hashgate.port,
        "returning",
        &paced(&tags),
        Duration::from_secs(2),
    );
    assert!(
        matches!(back.ending, Ending::Refused { .. }),
        "{:?}",
        back.ending
    );
    // The event log is written behind the relay: wait for the second cut, then for any third.
    wait_until(
        "the returning key's cut is logged",
        Duration::from_secs(5),
        || events_of(&read_events(&s.log), "returning", "cut").len() >= 2,
    );
    std::thread::sleep(Duration::from_millis(500));
    let all = read_events(&s.log);
    let cuts = events_of(&all, "returning", "cut");
    assert_eq!(cuts.len(), 2, "each publish is cut once: {cuts:?}");
    assert_eq!(cuts[1]["probation"], true);
}

#[test]
fn obs_pacing_does_not_shorten_the_delay() {
    // OBS: onMetaData at once, the first frame 0.7 s later with the same timestamp 0, then
    // frames in bursts as the encoder's lookahead releases them.
    let setup = setup_with("", true);
    let after = setup.platform_side.as_ref().expect("watched");
    // 3 s of benign video first, so that plenty has aired by the time the clip is cut.
    let sends = obs_paced(&after_lead(3000));
    let published = publish(setup.hashgate.port, "obs", &sends, Duration::from_secs(3));
    assert!(
        matches!(published.ending, Ending::Refused { .. }),
        "{:?}",
        published.ending
    );
    std::thread::sleep(Duration::from_secs(1));
    let held = holds(&published.sent, &after.seen());
    assert!(
        held.len() > 20,
        "{} messages reached the platform",
        held.len()
    );
    let shortest = held.iter().map(|(_, _, d)| *d).min().expect("some");
    println!("{} messages; shortest hold {shortest:?}", held.len());
    assert!(
        shortest >= Duration::from_secs(2),
        "a message was held {shortest:?}, under the 2 s delay"
    );
    assert_eq!(decision(&setup, "obs"), "match");
    assert_eq!(aired(&setup, "obs").2, 0);
}

/// Two publishers whose SPS claims `width`x`height` for 640x360 frames, then a flagged stream
/// 1.5 s later: it must be decided as fast as alone (~0.5 s after its first matching frame).
fn victim_behind_costly_streams(width: u32, height: u32) {
    let s = setup("");
    let heavy = declaring_size(&benign(), width, height);
    let port = s.hashgate.port;
    let heavies: Vec<_> = (0..2)
        .map(|i| {
            let tags = heavy.clone();
            std::thread::spawn(move || {
                publish(
                    port,
                    &format!("heavy-{i}"),
                    &paced(&tags),
                    Duration::from_secs(1),
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        assert_cut_and_nothing_aired(&s, "victim", &paced(&flagged())),
        "match"
    );
    let all = read_events(&s.log);
    let latency = events_of(&all, "victim", "cut")[0]["latency_ms"]
        .as_u64()
        .unwrap_or(u64::MAX);
    println!(
        "behind {width}x{height} claims: victim cut {latency} ms after its first counted match"
    );
    assert!(
        latency < 1000,
        "the costly streams delayed the verdict: {latency} ms"
    );
    for h in heavies {
        h.join().expect("heavy publisher");
    }
    for i in 0..2 {
        let key = format!("heavy-{i}");
        if !events_of(&read_events(&s.log), &key, "at_capacity").is_empty() {
            // Refused at its publish: inspection had no room for it.
            println!("{key}: refused at publish");
            continue;
        }
        let decided = decision(&s, &key);
        let all = read_events(&s.log);
        println!(
            "{key}: {decided}; {:?}",
            events_of(&all, &key, "uninspectable")
                .iter()
                .map(|e| e["cause"].clone())
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn streams_claiming_8k_do_not_starve_inspection() {
    // Over max_pixels: refused before anything is decoded, so they cost nothing.
    victim_behind_costly_streams(8192, 8192);
}

#[test]
fn streams_costly_to_decode_do_not_delay_another_streams_verdict() {
    // Under max_pixels: FFmpeg conceals a 4K picture per frame, at many times a 360p frame's
    // cost. They are shed for cost (keyframes only); the fair queue serves the victim first.
    victim_behind_costly_streams(3840, 2160);
}
