//! A fleet of three hashgate instances sharing Redis behind HAProxy (TCP mode), nginx-rtmp as
//! the platform, every component a real process on loopback: blocks, operator cuts, the flood
//! guard and lists served over HTTP hold across instances, and Redis or an instance dying does
//! not open the gate.

mod common;

use std::time::Duration;

use common::attacks::sample;
use common::fleet::*;
use common::*;

fn flagged_list() -> String {
    format!(
        "[[lists]]\npath = \"{}\"\n",
        sample("flagged.pdq").display()
    )
}

fn blocks(gate: &Hashgate) -> String {
    http(gate.admin_port, "GET", "/blocks", None).1
}

/// A key cut on one instance is refused by the others; an unblock on a third lifts it on all;
/// an operator's cut sent to any instance reaches the one HAProxy placed the stream on.
#[test]
fn blocks_and_operator_cuts_hold_across_the_fleet() {
    let dir = temp_dir();
    let fleet = Fleet::start(dir.path(), &flagged_list());
    let benign = sample("benign.flv");

    // A match cut on A (published to A directly): B and C refuse the key at once.
    let (code, out) = replay_once(&sample("flagged.flv"), &fleet.gates[0].url("bad"));
    assert_eq!(code, 2, "the flagged stream is cut on A: {out}");
    for (i, gate) in fleet.gates.iter().enumerate().skip(1) {
        wait_until(
            "the block to reach the instance",
            Duration::from_secs(2),
            || blocks(gate).contains("\"bad\""),
        );
        let (code, out) = replay_once(&benign, &gate.url("bad"));
        assert_eq!(code, 2, "{}: a key cut on A is refused: {out}", NAMES[i]);
        assert!(out.contains("refused"), "{out}");
    }
    assert!(
        fleet
            .redis
            .cli(&["PTTL", "hashgate:block:bad"])
            .parse::<i64>()
            .unwrap_or(0)
            > 0,
        "the block lives in Redis with its TTL"
    );
    // Lifted through C: A takes the key again.
    let (status, body) = http(fleet.gates[2].admin_port, "DELETE", "/blocks/bad", None);
    assert_eq!(status, 200, "{body}");
    wait_until("the unblock to reach A", Duration::from_secs(2), || {
        !blocks(&fleet.gates[0]).contains("\"bad\"")
    });
    assert_eq!(fleet.redis.cli(&["EXISTS", "hashgate:block:bad"]), "0");
    let (code, out) = replay_once(&benign, &fleet.gates[0].url("bad"));
    assert_eq!(code, 0, "the key publishes on A again: {out}");

    // An operator cut sent to an instance that does not carry the stream.
    let mut live = replay_looped(&benign, &fleet.haproxy.url("live1"));
    let carrier = fleet.wait_carrier("live1");
    let other = (carrier + 1) % 3;
    // The carrier's heartbeat lists it within a heartbeat.
    wait_until(
        "the fleet listing to show the stream on its carrier",
        Duration::from_secs(3),
        || {
            let (status, body) = http(
                fleet.gates[other].admin_port,
                "GET",
                "/streams?scope=cluster",
                None,
            );
            status == 200
                && body.contains(&format!(
                    "\"instance\":\"{}\",\"key\":\"live1\"",
                    NAMES[carrier]
                ))
        },
    );
    let (status, body) = http(
        fleet.gates[other].admin_port,
        "POST",
        "/streams/live1/cut?reason=test&block=10m",
        None,
    );
    assert_eq!(status, 202, "{body}");
    assert!(body.contains(NAMES[carrier]), "{body}");
    let ended = live.wait_timeout(Duration::from_secs(10));
    assert!(
        ended.is_some(),
        "the broadcaster on {} was cut",
        NAMES[carrier]
    );
    let carrier_events = read_events(&fleet.events[carrier]);
    assert!(
        of_kind(&carrier_events, "unpublish")
            .iter()
            .any(|e| e["stream"] == "live1" && e["reason"] == "cut"),
        "{carrier_events:?}"
    );
    for gate in &fleet.gates {
        wait_until(
            "the operator's block everywhere",
            Duration::from_secs(2),
            || blocks(gate).contains("\"live1\""),
        );
    }
    // Events of every instance in one Redis Stream.
    let feed = fleet.redis.cli(&["XRANGE", "hashgate:events", "-", "+"]);
    for name in NAMES {
        assert!(
            feed.lines().any(|l| l == name),
            "{name}'s events in the feed: {feed}"
        );
    }
    assert!(feed.contains("\"event\":\"cut\""), "{feed}");
}

/// A broadcaster who has read the source publishes one key through two instances at once (each
/// instance only knows its own live keys), and another while an instance does not yet know a
/// block: a cut of the key ends it on both, and a block that reaches an instance where the key
/// is live ends that stream.
#[test]
fn a_key_live_on_two_instances_is_cut_on_both_and_a_late_block_ends_a_live_stream() {
    let dir = temp_dir();
    // One platform behind the fleet refuses a second publisher of a name: each instance
    // forwards the twin under its own.
    let list = flagged_list();
    let routed =
        |name: &str| format!("{list}[[routes]]\nkey = \"twin\"\nupstream_key = \"twin-{name}\"\n");
    let fleet = Fleet::start_each(dir.path(), &[&routed("a"), &routed("b"), &list]);
    let benign = sample("benign.flv");
    let mut on_a = replay_looped(&benign, &fleet.gates[0].url("twin"));
    let mut on_b = replay_looped(&benign, &fleet.gates[1].url("twin"));
    for gate in &fleet.gates[..2] {
        wait_until(
            "the twin live on the instance",
            Duration::from_secs(15),
            || try_get(gate.admin_port, "/streams").is_some_and(|b| b.contains("\"twin\"")),
        );
    }
    // C knows where the twin is live from the instances' heartbeats.
    wait_until(
        "the twin on both instances in C's view of the fleet",
        Duration::from_secs(10),
        || {
            try_get(fleet.gates[2].admin_port, "/streams?scope=cluster")
                .is_some_and(|b| b.matches("\"key\":\"twin\"").count() >= 2)
        },
    );
    let (status, body) = http(
        fleet.gates[2].admin_port,
        "POST",
        "/streams/twin/cut?reason=test&block=10m",
        None,
    );
    assert_eq!(status, 202, "{body}");
    for (name, replay) in [("A", &mut on_a), ("B", &mut on_b)] {
        assert!(
            replay.wait_timeout(Duration::from_secs(10)).is_some(),
            "the twin on {name} was cut"
        );
    }
    for events in &fleet.events[..2] {
        let events = read_events(events);
        assert!(
            of_kind(&events, "unpublish")
                .iter()
                .any(|e| e["stream"] == "twin" && e["reason"] == "cut"),
            "{events:?}"
        );
    }

    // A block B learns while the key is live there (as after a partition, or a cut lost on
    // its way): the stream ends and the key is refused.
    let mut live = replay_looped(&benign, &fleet.gates[1].url("unaware"));
    fleet.wait_carrier("unaware");
    let message =
        r#"{"origin":"elsewhere","op":"block","key":"unaware","block_ms":600000,"probation_ms":0}"#;
    fleet.redis.cli(&["PUBLISH", "hashgate:control", message]);
    assert!(
        live.wait_timeout(Duration::from_secs(10)).is_some(),
        "the live stream under a key blocked elsewhere was cut"
    );
    let (code, out) = replay_once(&benign, &fleet.gates[1].url("unaware"));
    assert_eq!(code, 2, "and its key is refused: {out}");
}

/// The flood guard counts streams across instances: an entry that matches benign streams on
/// three instances (one each, within every instance's own limit) is demoted fleet-wide.
#[test]
fn the_flood_guard_counts_streams_across_instances() {
    let dir = temp_dir();
    let (card, list) = test_card_list(dir.path());
    let fleet = Fleet::start(
        dir.path(),
        &format!(
            "[[lists]]\npath = \"{}\"\n[verdict]\nflood_streams = 2\n",
            list.display()
        ),
    );
    // One stream per instance: each instance alone has seen one, under its limit of 2.
    let first: Vec<_> = (0..3)
        .map(|i| {
            let url = fleet.gates[i].url(&format!("card{i}"));
            let card = card.clone();
            std::thread::spawn(move || replay_once(&card, &url))
        })
        .collect();
    for t in first {
        let _ = t.join();
    }
    wait_until("the fleet-wide flood", Duration::from_secs(5), || {
        fleet
            .redis
            .cli(&["KEYS", "hashgate:flooded:*"])
            .contains("flooded")
    });
    // The next streams on A and B show the card too: alert only.
    for i in [0, 1] {
        let key = format!("later{i}");
        let (code, out) = replay_once(&card, &fleet.gates[i].url(&key));
        assert_eq!(code, 0, "{key} on {} is not cut: {out}", NAMES[i]);
        let events = read_events(&fleet.events[i]);
        assert!(
            of_kind(&events, "match")
                .iter()
                .any(|e| e["stream"] == key.as_str()),
            "it matched (and was let through): {events:?}"
        );
    }
    let floods: usize = fleet
        .events
        .iter()
        .map(|e| of_kind(&read_events(e), "flood").len())
        .sum();
    assert!(floods >= 1, "a flood event names the entry");
}

/// Redis killed mid-run: streams keep flowing, cuts still happen and block locally, the
/// instances say they are degraded; once Redis is back (empty), the blocks are written through
/// and every instance refuses the key. An instance killed mid-stream: the broadcaster comes
/// back through HAProxy on another instance, and a blocked key stays blocked.
#[test]
fn redis_or_an_instance_dying_does_not_open_the_gate() {
    let dir = temp_dir();
    let mut fleet = Fleet::start(dir.path(), &flagged_list());
    let benign = sample("benign.flv");
    let mut live = replay_looped(&benign, &fleet.gates[1].url("steady"));
    fleet.wait_carrier("steady");

    fleet.redis.kill();
    for gate in &fleet.gates {
        wait_until(
            "the instance to report degraded",
            Duration::from_secs(5),
            || {
                http(gate.admin_port, "GET", "/healthz", None)
                    .1
                    .contains("degraded")
            },
        );
        let metrics = http(gate.admin_port, "GET", "/metrics", None).1;
        assert!(metrics.contains("hashgate_cluster_up 0"), "{metrics}");
    }
    let (code, out) = replay_once(&sample("flagged.flv"), &fleet.gates[0].url("while-down"));
    assert_eq!(code, 2, "cut without Redis: {out}");
    let (code, out) = replay_once(&benign, &fleet.gates[0].url("while-down"));
    assert_eq!(code, 2, "blocked on A without Redis: {out}");
    let (status, body) = http(
        fleet.gates[0].admin_port,
        "DELETE",
        "/blocks/while-down",
        None,
    );
    assert_eq!(
        status, 503,
        "an unblock the fleet cannot hear is refused: {body}"
    );
    assert!(
        live.child.try_wait().ok().flatten().is_none(),
        "the stream on B flowed on through the outage"
    );
    let before = std::fs::metadata(fleet.nginx.recording("steady")).map_or(0, |m| m.len());
    std::thread::sleep(Duration::from_secs(1));
    let after = std::fs::metadata(fleet.nginx.recording("steady")).map_or(0, |m| m.len());
    assert!(
        after > before,
        "the platform still receives it ({before} -> {after} bytes)"
    );

    // An instance started while Redis is down takes no broadcasters from the balancer: not
    // ready until it has read the fleet's blocks.
    let late_log = dir.path().join("events-late.jsonl");
    let late = Hashgate::start(
        dir.path(),
        &format!(
            "{}{}[events]\nlog = \"{}\"\n[cluster]\nredis = \"{}\"\ninstance = \"D\"\njoin_timeout = \"1s\"\n",
            upstream(&fleet.nginx.url()),
            flagged_list(),
            late_log.display(),
            fleet.redis.url()
        ),
    );
    let (status, body) = http(late.admin_port, "GET", "/healthz", None);
    assert_eq!(
        (status, body.as_str()),
        (503, "joining the fleet: blocks not read yet\n")
    );

    fleet.redis.restart();
    wait_until(
        "the late instance to be ready",
        Duration::from_secs(10),
        || http(late.admin_port, "GET", "/healthz", None).0 == 200,
    );
    wait_until("A's block written through", Duration::from_secs(10), || {
        fleet.redis.cli(&["EXISTS", "hashgate:block:while-down"]) == "1"
    });
    for (i, gate) in fleet.gates.iter().chain([&late]).enumerate().skip(1) {
        wait_until("the block on the others", Duration::from_secs(5), || {
            blocks(gate).contains("while-down")
        });
        let (code, out) = replay_once(&benign, &gate.url("while-down"));
        assert_eq!(code, 2, "instance {i} refuses after the outage: {out}");
    }
    drop(late);
    let _ = live.child.kill();

    // An instance dies under a stream; the broadcaster reconnects through HAProxy.
    let (status, _) = http(fleet.gates[0].admin_port, "GET", "/healthz", None);
    assert_eq!(status, 200);
    let mut moving = replay_looped(&benign, &fleet.haproxy.url("moving"));
    let carrier = fleet.wait_carrier("moving");
    let _ = fleet.gates[carrier].process.child.kill();
    assert!(
        moving.wait_timeout(Duration::from_secs(10)).is_some(),
        "the broadcaster lost its instance"
    );
    // The broadcaster reconnects (until HAProxy's check has marked the dead instance down, a
    // connection may still reach it and fail: the broadcaster tries again).
    let mut new_carrier = None;
    for _ in 0..10 {
        let mut again = replay_looped(&benign, &fleet.haproxy.url("moving"));
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while new_carrier.is_none() && std::time::Instant::now() < deadline {
            new_carrier = fleet.carrier("moving");
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = again.child.kill();
        if new_carrier.is_some() {
            break;
        }
    }
    assert!(
        new_carrier.is_some_and(|c| c != carrier),
        "back on another instance: {new_carrier:?}"
    );
    // Until HAProxy's check marks the dead instance down, a connection may reach it and fail
    // (exit 1): never may one publish.
    let mut refused = 0;
    for _ in 0..10 {
        let (code, out) = replay_once(&benign, &fleet.haproxy.url("while-down"));
        assert_ne!(
            code, 0,
            "a blocked key stays blocked through HAProxy: {out}"
        );
        if code == 2 {
            refused += 1;
            if refused == 3 {
                break;
            }
        }
    }
    assert_eq!(refused, 3, "refused three times through HAProxy");
}

fn list_entries(gate: &Hashgate) -> Option<u64> {
    let metrics = http(gate.admin_port, "GET", "/metrics", None).1;
    metrics
        .lines()
        .find(|l| l.starts_with("hashgate_list_entries{list=\"remote\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

/// A list served over HTTP: a change on the server is live on all three instances within one
/// poll; with the server down at startup, the cached copy is enforced; with neither, the
/// instance refuses to start.
#[test]
fn a_list_served_over_http_reaches_every_instance_and_survives_the_server() {
    let dir = temp_dir();
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).expect("served dir");
    let flagged = std::fs::read_to_string(sample("flagged.pdq")).expect("flagged list");
    let lines: Vec<&str> = flagged.lines().collect();
    std::fs::write(
        served.join("list.pdq"),
        format!("{}\n", lines[..lines.len() / 2].join("\n")),
    )
    .expect("first version");
    let (mut server, port) = http_server(&served);
    let url = format!("http://127.0.0.1:{port}/list.pdq");
    // One cache file per instance.
    let extras: Vec<String> = NAMES
        .iter()
        .map(|name| {
            std::fs::create_dir_all(dir.path().join(name)).expect("cache dir");
            format!(
                "[[lists]]\nlabel = \"remote\"\nurl = \"{url}\"\npoll = \"1s\"\npath = \"{}\"\n",
                dir.path().join(name).join("cache.pdq").display()
            )
        })
        .collect();
    let fleet = Fleet::start_each(dir.path(), &[&extras[0], &extras[1], &extras[2]]);
    let first = (lines.len() / 2) as u64;
    for gate in &fleet.gates {
        assert_eq!(list_entries(gate), Some(first));
    }
    // The server's copy changes (a second later: Last-Modified has one-second resolution).
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(served.join("list.pdq"), &flagged).expect("second version");
    let changed = std::time::Instant::now();
    for gate in &fleet.gates {
        wait_until(
            "the new version on the instance",
            Duration::from_secs(4),
            || list_entries(gate) == Some(lines.len() as u64),
        );
    }
    println!(
        "new list live on all three {:?} after the change",
        changed.elapsed()
    );

    // The server goes away: a restarted instance enforces its cache.
    server.terminate(Duration::from_secs(5));
    let cache = dir.path().join("A").join("cache.pdq");
    assert_eq!(std::fs::read_to_string(&cache).expect("cache"), flagged);
    let log = dir.path().join("events-cached.jsonl");
    let cached = Hashgate::start(
        dir.path(),
        &format!(
            "{}[[lists]]\nlabel = \"remote\"\nurl = \"{url}\"\npath = \"{}\"\n[events]\nlog = \"{}\"\n",
            upstream(&fleet.nginx.url()),
            cache.display(),
            log.display()
        ),
    );
    assert!(
        cached.log().contains("enforcing the cached copy"),
        "{}",
        cached.log()
    );
    let (code, out) = replay_once(&sample("flagged.flv"), &cached.url("from-cache"));
    assert_eq!(code, 2, "the cached list cuts: {out}");

    // No server and no cache: refused at startup, with the reason.
    let config = dir.path().join("nocache.toml");
    let err = serve_refused(
        &config,
        &format!(
            "{}[server]\nlisten = \"127.0.0.1:{}\"\n[[lists]]\nurl = \"{url}\"\npath = \"{}\"\n",
            upstream(&fleet.nginx.url()),
            free_port(),
            dir.path().join("missing.pdq").display()
        ),
    );
    assert!(err.contains("no cached copy"), "{err}");
}
