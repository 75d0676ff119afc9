use super::*;

/// A selector at `fps` with a fixed seed: the same points every run.
fn seeded(fps: f64, seed: u64) -> OnScreen<usize> {
    OnScreen::with_rng(fps, StdRng::seed_from_u64(seed))
}

/// Frames (dts, pts, arrival in ms) pushed in order, then settled: each frame's pick, in
/// arrival order (every frame comes out exactly once, in order).
fn run(s: &mut OnScreen<usize>, frames: &[(i64, i64, u64)]) -> Vec<Pick> {
    let t0 = Instant::now();
    let mut picks = Vec::new();
    let drain = |s: &mut OnScreen<usize>, picks: &mut Vec<Pick>| {
        while let Some((i, pick)) = s.pop() {
            assert_eq!(i, picks.len(), "out of order");
            picks.push(pick.expect("a frame"));
        }
    };
    for (i, &(dts, pts, at)) in frames.iter().enumerate() {
        let arrived = t0 + Duration::from_millis(at);
        s.push_frame(Timing { dts, pts, arrived }, i);
        drain(s, &mut picks);
        assert!(s.held.len() <= MAX_HELD);
    }
    s.settle();
    drain(s, &mut picks);
    assert_eq!(picks.len(), frames.len());
    picks
}

/// Every decided point picked the frame on screen then: the latest presentation time at or
/// before it, among all frames.
fn assert_on_screen(s: &OnScreen<usize>, frames: &[(i64, i64, u64)]) {
    assert!(!s.history.is_empty());
    for &(p, picked) in &s.history {
        let truth = frames
            .iter()
            .map(|f| f.1)
            .filter(|&t| t as f64 <= p)
            .max()
            .expect("a frame before the point");
        assert_eq!(picked, truth, "point {p}");
    }
}

/// 30 fps in real time, no reordering.
fn steady(n: i64) -> Vec<(i64, i64, u64)> {
    (0..n)
        .map(|i| (i * 100 / 3, i * 100 / 3, (i * 100 / 3) as u64))
        .collect()
}

#[test]
fn each_interval_gets_the_frame_on_screen_at_its_point() {
    for seed in 0..20 {
        let frames = steady(300);
        let mut s = seeded(2.0, seed);
        let picks = run(&mut s, &frames);
        assert_on_screen(&s, &frames);
        let taken = picks.iter().filter(|p| p.hashed()).count();
        // 10 s at 2 fps: 20 points, the first frame, perhaps a tie or the settle's last.
        assert!((19..=23).contains(&taken), "{taken} taken");
        assert!(picks.iter().all(|p| *p != Pick::Backstop), "{picks:?}");
    }
}

#[test]
fn b_frame_order_picks_by_presentation_time() {
    // x264's usual pattern: I P B B in decode order, presentation one frame later.
    let mut frames = Vec::new();
    for gop in 0..30i64 {
        let base = gop * 4;
        for (k, offset) in [(0, 1), (1, 4), (2, 2), (3, 3)] {
            let dts = (base + k) * 100 / 3;
            let pts = (base + offset) * 100 / 3;
            frames.push((dts, pts, dts as u64));
        }
    }
    for seed in 0..20 {
        let mut s = seeded(2.0, seed);
        let picks = run(&mut s, &frames);
        assert_on_screen(&s, &frames);
        assert!(picks.iter().filter(|p| p.hashed()).count() >= 7);
    }
}

#[test]
fn frames_shown_for_a_blink_are_sampled_for_a_blink() {
    // Each clip frame shown for 65 ms, a benign frame for 1 ms after it (the attack that put
    // most samples on the benign frames when the first frame at or after a point was taken).
    let frames: Vec<(i64, i64, u64)> = (0..1200i64)
        .map(|i| {
            let t = i / 2 * 66 + i % 2 * 65;
            (t, t, t as u64)
        })
        .collect();
    let (mut clip, mut benign) = (0, 0);
    for seed in 0..10 {
        let mut s = seeded(2.0, seed);
        let picks = run(&mut s, &frames);
        assert_on_screen(&s, &frames);
        for (i, pick) in picks.iter().enumerate().skip(1) {
            if *pick == Pick::OnScreen {
                if i % 2 == 0 {
                    clip += 1;
                } else {
                    benign += 1;
                }
            }
        }
    }
    assert!(
        clip > 50 * benign.max(1) / 2,
        "clip {clip}, benign {benign}"
    );
}

#[test]
fn stretched_timestamps_get_every_frame_taken() {
    // Timestamps x200: each frame is on screen for 6.7 s of stream time.
    let frames: Vec<(i64, i64, u64)> = (0..60i64)
        .map(|i| (i * 6667, i * 6667, (i * 100 / 3) as u64))
        .collect();
    let mut s = seeded(2.0, 1);
    let picks = run(&mut s, &frames);
    assert!(picks.iter().all(|p| p.hashed()), "{picks:?}");
    assert!(s.points.len() <= 2, "gaps drew {} points", s.points.len());
}

#[test]
fn frozen_timestamps_are_taken_by_the_wall_clock_and_never_pile_up() {
    // Every timestamp 0: no point is ever passed in stream time.
    let frames: Vec<(i64, i64, u64)> = (0..900i64).map(|i| (0, 0, (i * 100 / 3) as u64)).collect();
    let mut s = seeded(2.0, 3);
    let picks = run(&mut s, &frames);
    let taken: Vec<usize> = (0..picks.len()).filter(|&i| picks[i].hashed()).collect();
    // 30 s of arrival: a take at least every 2.2 intervals (1.1 s).
    assert!(taken.len() >= 27, "{} taken", taken.len());
    for pair in taken.windows(2) {
        assert!(pair[1] - pair[0] <= 34, "{taken:?}");
    }
}

#[test]
fn timestamps_that_restart_start_the_schedule_again() {
    let mut frames = steady(90);
    frames.extend(steady(90).into_iter().map(|(d, p, a)| (d, p, a + 3000)));
    let mut s = seeded(2.0, 4);
    let picks = run(&mut s, &frames);
    assert_eq!(picks[0], Pick::Start);
    assert_eq!(picks[90], Pick::Start);
    assert!(picks[91..].iter().filter(|p| p.hashed()).count() >= 5);
}

#[test]
fn a_frame_presented_in_a_stretch_already_decided_is_taken_too() {
    // 30 fps; then a frame decoded late whose presentation time lies 100 ms back, inside the
    // stretch a point already picked from: that point's frame was not what played.
    let mut frames = steady(60);
    frames.push((2000, 1910, 2000));
    frames.extend((61..90).map(|i| (i * 100 / 3, i * 100 / 3, (i * 100 / 3) as u64)));
    for seed in 0..20 {
        let mut s = seeded(2.0, seed);
        let picks = run(&mut s, &frames);
        let decided_past = s
            .history
            .iter()
            .any(|&(p, picked)| picked < 1910 && (1910.0..2000.0).contains(&p));
        if decided_past {
            assert_eq!(picks[60], Pick::Late, "seed {seed}");
        }
    }
}

#[test]
fn settling_decides_everything_and_takes_the_frame_on_screen() {
    let mut s = seeded(2.0, 5);
    let t0 = Instant::now();
    for i in 0..20i64 {
        let t = i * 100 / 3;
        let arrived = t0 + Duration::from_millis(t as u64);
        s.push_frame(
            Timing {
                dts: t,
                pts: t,
                arrived,
            },
            i as usize,
        );
    }
    // The video pauses: the newest frame stays on screen, so it is the next point's.
    s.settle();
    let mut last = None;
    while let Some((i, pick)) = s.pop() {
        last = Some((i, pick));
    }
    assert!(s.is_empty());
    assert_eq!(last, Some((19, Some(Pick::OnScreen))));
}

#[test]
fn what_is_not_a_frame_keeps_its_place() {
    let mut s = seeded(2.0, 6);
    let t0 = Instant::now();
    s.push_frame(
        Timing {
            dts: 0,
            pts: 0,
            arrived: t0,
        },
        0,
    );
    s.push_frame(
        Timing {
            dts: 33,
            pts: 33,
            arrived: t0,
        },
        1,
    );
    s.push_other(2);
    assert_eq!(s.pop(), Some((0, Some(Pick::Start))));
    // The frame at 33 waits for its fate, and the header behind it waits with it.
    if s.held.front().is_some_and(|e| e.pick.is_none()) {
        assert_eq!(s.pop(), None);
    }
    s.settle();
    assert_eq!(s.pop().map(|(i, _)| i), Some(1));
    assert_eq!(s.pop(), Some((2, None)));
}

#[test]
fn a_match_makes_points_denser_for_a_while() {
    for seed in 0..20 {
        let t0 = Instant::now();
        let mut s = seeded(2.0, seed);
        let mut taken = Vec::new();
        for i in 0..120i64 {
            let t = i * 100 / 3;
            let arrived = t0 + Duration::from_millis(t as u64);
            if t == 1000 {
                s.boost(t0 + Duration::from_millis(2000));
            }
            s.push_frame(
                Timing {
                    dts: t,
                    pts: t,
                    arrived,
                },
                i as usize,
            );
            while let Some((i, pick)) = s.pop() {
                if pick.is_some_and(Pick::hashed) {
                    taken.push(i as i64 * 100 / 3);
                }
            }
        }
        let during = taken.iter().filter(|&&t| (1000..2000).contains(&t)).count();
        let after = taken.iter().filter(|&&t| (2200..3800).contains(&t)).count();
        assert!(
            (5..=9).contains(&during),
            "4x denser for a second: {taken:?}"
        );
        assert!((2..=4).contains(&after), "back to 2 fps: {taken:?}");
    }
}

#[test]
fn keyframes_mode_takes_the_first_keyframe_at_or_after_each_point() {
    let mut s = seeded(2.0, 7);
    let t0 = Instant::now();
    // A keyframe every 250 ms for 5 s: about one in two taken.
    let taken = (0..20i64)
        .filter(|i| {
            let t = i * 250;
            s.take_at_or_after(t, t0 + Duration::from_millis(t as u64))
        })
        .count();
    assert!((9..=12).contains(&taken), "{taken}");
}

#[test]
fn every_frame_at_fps_zero() {
    let mut s = seeded(0.0, 8);
    let picks = run(&mut s, &steady(10));
    assert!(picks.iter().all(|p| p.hashed()));
}

#[test]
fn no_timestamp_pattern_starves_sampling() {
    let count = |frames: Vec<(i64, i64, u64)>| {
        let mut s = seeded(1.0, 9);
        run(&mut s, &frames).iter().filter(|p| p.hashed()).count()
    };
    let wall = |i: i64| (i * 33) as u64;
    // Timestamps crawling at 1/200 of real time: a frame per 2.2 s of arrival (fps 1).
    let crawl = (0..90i64)
        .map(|i| (i * 33 / 200, i * 33 / 200, wall(i)))
        .collect();
    assert!((2..=4).contains(&count(crawl)));
    // Real-time frames whose arrival jitters by up to 200 ms: about one per interval.
    let jitter = (0..90i64)
        .map(|i| (i * 33, i * 33, wall(i) + ((i * 7919) % 200) as u64))
        .collect();
    assert!((3..=5).contains(&count(jitter)));
}

#[test]
fn keyframes_add_samples_but_not_too_many() {
    // Hybrid mode: a keyframe every frame (an all-intra stream) hashes at most three times
    // the rate; a keyframe right after a sample is not hashed again.
    let t0 = Instant::now();
    let at = |t: i64| t0 + Duration::from_millis(t as u64);
    let mut s = seeded(2.0, 10);
    let extra = (0..300)
        .map(|i| i * 1000 / 30)
        .filter(|&t| s.extra_keyframe(t, at(t)))
        .count();
    assert!(
        (10..=40).contains(&extra),
        "{extra} extras in 10 s at fps 2"
    );
    let mut s = seeded(2.0, 11);
    assert!(s.extra_keyframe(0, t0));
    assert!(!s.extra_keyframe(100, at(100)));
    assert!(s.extra_keyframe(300, at(300)));
}

#[test]
fn keyframes_do_not_stand_in_for_the_wall_clock_backstop() {
    // Every timestamp held within the first half second, keyframes taken as extras once a
    // second: the backstop still takes a frame every 2.2 intervals of arrival.
    let t0 = Instant::now();
    let mut s = seeded(2.0, 12);
    let mut backstop = 0;
    for i in 0..300i64 {
        let arrived = t0 + Duration::from_millis((i * 33) as u64);
        if i % 30 == 0 {
            s.extra_keyframe(i / 30 % 2 * 300, arrived);
        }
        s.push_frame(
            Timing {
                dts: 100,
                pts: 100,
                arrived,
            },
            i as usize,
        );
        while let Some((_, pick)) = s.pop() {
            backstop += usize::from(pick == Some(Pick::Backstop));
        }
    }
    assert!(backstop >= 8, "{backstop} backstop samples in 10 s");
}

#[test]
fn a_tie_that_arrives_after_its_point_was_decided_is_taken_too() {
    // Each benign frame B_k, then 16 frames later the clip frame C_k with the same presentation
    // time (a player that shows the last of two shows the clip all the time).
    let mut frames = Vec::new();
    for k in 0..300i64 {
        let t = k * 100 / 3;
        frames.push((t, t, t as u64));
        if k >= 16 {
            let back = (k - 16) * 100 / 3;
            frames.push((back, back, t as u64 + 1));
        }
    }
    let clip = |i: usize| frames[i].2 != frames[i].1 as u64 && i > 16;
    for seed in 0..10 {
        let mut s = seeded(2.0, seed);
        let picks = run(&mut s, &frames);
        let clip_taken = (0..picks.len())
            .filter(|&i| clip(i) && picks[i] == Pick::Late)
            .count();
        assert!(
            clip_taken >= 15,
            "seed {seed}: {clip_taken} clip frames taken"
        );
    }
}

#[test]
fn a_gap_filled_in_afterwards_still_meets_its_points() {
    // A benign anchor 2.5 s ahead, then a second of clip frames filled in behind it (decode
    // times stepping back under a second, so no restart), again and again.
    let mut frames = vec![(0i64, 0i64, 0u64)];
    for n in 1..24i64 {
        let anchor = 2500 * n;
        let arrived = (anchor - 2400) as u64;
        frames.push((anchor, anchor, arrived));
        for j in 0..30i64 {
            let t = anchor - 980 + 33 * j;
            frames.push((t, t, arrived + 1 + 10 * j as u64));
        }
    }
    let is_clip = |i: usize| i > 0 && (i - 1) % 31 != 0;
    for seed in 0..10 {
        let mut s = seeded(2.0, seed);
        let picks = run(&mut s, &frames);
        let clip_taken = (0..picks.len())
            .filter(|&i| is_clip(i) && picks[i].hashed())
            .count();
        assert!(
            clip_taken >= 23,
            "seed {seed}: {clip_taken} clip frames taken"
        );
        // Bounded: at most a few takes per point.
        assert!(picks.iter().filter(|p| p.hashed()).count() < 200);
    }
}
