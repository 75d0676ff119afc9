//! Overload is a capacity problem, not a verdict. Costly broadcasters (1080p at 8 Mbit/s,
//! replayed in a loop: costly for the gate, cheap for the attacker) fill inspection; the clip
//! hides in the frames between benign keyframes, where inspection that sheds load to keyframes
//! would not look. hashgate refuses what it has no room for at the publish, keeps inspecting
//! what it took on at full rate, cuts the clip with nothing of it on the platform, and cuts no
//! costly broadcaster for the load.

mod common;

use std::time::Duration;

use common::attacks::*;
use common::crafted::*;
use common::gate::*;
use common::*;

#[test]
fn costly_broadcasters_are_refused_at_publish_never_cut_and_the_clip_is_cut() {
    require("ffmpeg");
    let costly = costly_clip();
    // Room for about three of the costly streams.
    let s = setup("[inspect]\nthreads = 2\ncapacity = 0.9\n");
    let dir = temp_dir();
    let attack = paced(&benign_keyframes(dir.path()));
    let mut publishers = Vec::new();
    for i in 0..2 {
        publishers.push(looping_publisher(
            costly,
            &s.hashgate.url(&format!("costly-{i}")),
        ));
        std::thread::sleep(Duration::from_millis(1500));
    }
    // The clip comes in while there is room; then more costly broadcasters, beyond it.
    let attacker = std::thread::spawn({
        let port = s.hashgate.port;
        move || publish(port, "attacker", &attack, Duration::from_secs(3))
    });
    std::thread::sleep(Duration::from_millis(500));
    for i in 2..6 {
        publishers.push(looping_publisher(
            costly,
            &s.hashgate.url(&format!("costly-{i}")),
        ));
        std::thread::sleep(Duration::from_millis(700));
    }
    let published = attacker.join().expect("attacker");
    assert!(
        matches!(&published.ending, Ending::Refused { code, .. } if code == "NetStream.Publish.Rejected"),
        "{:?}\n{}",
        published.ending,
        s.hashgate.log()
    );
    let refused = !of_kind(&read_events(&s.log), "at_capacity")
        .iter()
        .all(|e| e["stream"] != "attacker");
    if refused {
        // Taken on only while there is room: refused at its publish, nothing aired.
        println!("the attacker was refused at publish");
    } else {
        assert_eq!(decision(&s, "attacker"), "match");
    }
    assert_eq!(aired(&s, "attacker").2, 0, "frames of the clip aired");
    std::thread::sleep(Duration::from_secs(4));
    for p in &mut publishers {
        p.terminate(Duration::from_secs(5));
    }
    std::thread::sleep(Duration::from_secs(1));
    let events = read_events(&s.log);
    let of = |key: &str, kind: &str| {
        events
            .iter()
            .filter(|e| e["stream"] == key && e["event"] == kind)
            .count()
    };
    let (mut admitted, mut refused) = (0, 0);
    for i in 0..6 {
        let key = format!("costly-{i}");
        admitted += usize::from(of(&key, "publish") > 0);
        refused += usize::from(of(&key, "at_capacity") > 0);
        assert_eq!(of(&key, "cut"), 0, "{key} was cut");
        let cut_uninspectable = events.iter().any(|e| {
            e["stream"] == key.as_str() && e["event"] == "uninspectable" && e["action"] == "cut"
        });
        assert!(!cut_uninspectable, "{key} was cut as uninspectable");
    }
    println!("costly broadcasters: {admitted} taken on, {refused} refused at publish");
    assert!(admitted >= 1, "no costly broadcaster was taken on");
    assert!(refused >= 1, "no costly broadcaster was refused at publish");
}
