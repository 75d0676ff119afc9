//! One reading of the stream for the gate and the platform. nginx-rtmp reads some message
//! bodies differently from a careful parser (aggregates unpacked at any depth with every message
//! inside acted on, data messages run as commands by their name, video command frames muxed as
//! video by its HLS, negative composition times read as unsigned): a broadcaster who hides the
//! clip in such a reading must be cut with nothing of it recorded, and what a legitimate
//! stream sends must arrive as it was sent.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::attacks::*;
use common::crafted::*;
use common::gate::*;
use common::*;

/// The flagged sample's tags within the clip (2 s to 5 s).
fn in_clip(t: &Tag) -> bool {
    (2000..5000).contains(&t.ts)
}

/// The benign sample's first `ms` milliseconds.
fn benign_for(ms: u32) -> Vec<Tag> {
    benign().into_iter().filter(|t| t.ts < ms).collect()
}

#[test]
fn video_in_aggregates_nested_two_and_three_deep_is_cut() {
    let s = setup("");
    let cases: Vec<(String, Vec<Tag>)> = [2usize, 3]
        .iter()
        .flat_map(|&depth| {
            [
                (
                    format!("nest{depth}-clip"),
                    nested_aggregates(&flagged(), 4, depth, in_clip),
                ),
                (
                    format!("nest{depth}-all"),
                    nested_aggregates(&flagged(), 4, depth, |_| true),
                ),
            ]
        })
        .collect();
    std::thread::scope(|scope| {
        for (key, tags) in &cases {
            let s = &s;
            scope.spawn(move || {
                assert_eq!(assert_cut_and_nothing_aired(s, key, &paced(tags)), "match");
            });
        }
    });
}

/// Publishes `tags` and asserts the broadcaster was refused with a reason containing `why`,
/// and that the platform recorded nothing of the clip.
fn assert_refused(s: &Setup, key: &str, tags: &[Tag], why: &str) {
    let published = publish(s.hashgate.port, key, &paced(tags), Duration::from_secs(1));
    match &published.ending {
        Ending::Refused { code, description } => {
            assert_eq!(code, "NetStream.Publish.Rejected");
            assert!(description.contains(why), "{key}: {description}");
        }
        other => panic!("{key} was not refused: {other:?}\n{}", s.hashgate.log()),
    }
    wait_until("the unpublish event", Duration::from_secs(20), || {
        read_events(&s.log)
            .iter()
            .any(|e| e["stream"] == key && e["event"] == "unpublish" && e["reason"] == "refused")
    });
    assert_eq!(aired(s, key).2, 0, "{key}: frames of the clip aired");
}

/// A plain aggregate of `tags` with one sub-message of `type_id` (body `body`) after them.
fn aggregate_carrying(tags: &[&Tag], type_id: u8, body: &[u8]) -> Tag {
    let extra = Tag {
        type_id,
        ts: tags[0].ts,
        body: Bytes::copy_from_slice(body),
    };
    let mut all = tags.to_vec();
    all.push(&extra);
    Tag {
        type_id: AGGREGATE,
        ts: tags[0].ts,
        body: aggregate_body(&all, 0).into(),
    }
}

#[test]
fn aggregates_past_the_depth_bound_or_carrying_commands_are_refused() {
    let s = setup("");
    // Nine levels: one past the bound.
    let deep = nested_aggregates(&flagged(), 4, 9, in_clip);
    assert_refused(&s, "deep", &deep, "nested deeper than 8");
    // Set Chunk Size inside an aggregate: nginx-rtmp would read every later chunk hashgate
    // sends at the size it sets, and a message's body could then smuggle whole messages.
    let mut tags = flagged();
    let at = tags
        .iter()
        .position(|t| t.type_id == VIDEO && t.ts >= 1000)
        .expect("video at 1 s");
    tags[at] = aggregate_carrying(&[&tags[at]], 1, &64u32.to_be_bytes());
    assert_refused(&s, "chunk-size", &tags, "carries a message of type 1");
}

#[test]
fn plain_aggregates_reach_the_platform_bit_exact() {
    let s = setup_with("", true);
    let tags = aggregated(&benign_for(3000), 4);
    let published = publish(
        s.hashgate.port,
        "plain",
        &paced(&tags),
        Duration::from_secs(1),
    );
    assert_eq!(published.ending, Ending::Completed, "{}", s.hashgate.log());
    assert_eq!(decision(&s, "plain"), "passed");
    s.nginx.wait_closed("plain", Duration::from_secs(20));
    let aggregates = |seen: &Seen| -> Vec<(u32, u64)> {
        seen.iter()
            .filter(|p| p.type_id == AGGREGATE)
            .map(|p| (p.ts, p.digest))
            .collect()
    };
    let platform = s.platform_side.as_ref().expect("watched").seen();
    assert!(aggregates(&published.sent).len() > 10);
    assert_eq!(
        aggregates(&platform),
        aggregates(&published.sent),
        "every aggregate reached the platform as it was sent"
    );
}

/// An AMF0 data message of these values, at `ts`.
fn data_message(ts: u32, values: &[hashgate::rtmp::amf0::Amf0Value]) -> Tag {
    Tag {
        type_id: DATA,
        ts,
        body: hashgate::rtmp::amf0::encode_all(values),
    }
}

#[test]
fn data_messages_named_as_commands_never_reach_the_platform() {
    use hashgate::rtmp::amf0::Amf0Value;
    let s = setup("");
    let string = Amf0Value::string;
    let mut tags = benign_for(3000);
    // nginx-rtmp runs these by name whatever the message type: unpublish, then publish under
    // another name (the gate's key, blocks and probation would no longer be the platform's),
    // truncating the recording of the first.
    let unpublish = data_message(1000, &[string("deleteStream"), Amf0Value::Number(0.0)]);
    let republish = data_message(
        1000,
        &[
            string("PUBLISH"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            string("elsewhere"),
            string("live"),
        ],
    );
    let at = tags.iter().position(|t| t.ts >= 1000).expect("1 s in");
    let video = tags
        .iter()
        .position(|t| t.type_id == VIDEO && t.ts >= 1500)
        .expect("video at 1.5 s");
    // The same inside an aggregate, beside a video frame.
    tags[video] = aggregate_carrying(&[&tags[video]], DATA, &unpublish.body);
    tags.insert(at, republish);
    tags.insert(at, unpublish);
    let published = publish(
        s.hashgate.port,
        "named",
        &paced(&tags),
        Duration::from_secs(1),
    );
    assert_eq!(published.ending, Ending::Completed, "{}", s.hashgate.log());
    assert_eq!(decision(&s, "named"), "passed");
    s.nginx.wait_closed("named", Duration::from_secs(20));
    let log = s.nginx.error_log();
    assert!(
        !log.contains("elsewhere"),
        "the platform published another name:\n{log}"
    );
    // Nothing was unpublished or truncated: the platform has every frame.
    let frames = tags
        .iter()
        .filter(|t| t.type_id == VIDEO && is_avc_frame(&t.body))
        .count()
        + 1;
    assert_eq!(video_md5s(&s.nginx.recording("named")).len(), frames);
    assert!(s.hashgate.log().contains("not forwarded"));
}

#[test]
fn command_frames_and_odd_packet_types_never_reach_the_platform() {
    let s = setup_with("", true);
    // Every interframe relabelled: as a video info/command frame (frame type 5; FFmpeg skips
    // them, nginx-rtmp's HLS would mux them as video), or, every other one, under AVC packet
    // type 3 (FFmpeg decodes them, nginx-rtmp's HLS drops them: decoys only inspection sees).
    let mut n = 0;
    let tags: Vec<Tag> = benign_for(3000)
        .into_iter()
        .map(|t| match t.body.first() {
            Some(0x27) if t.type_id == VIDEO => {
                let mut body = t.body.to_vec();
                n += 1;
                if n % 2 == 0 {
                    body[0] = 0x57;
                } else {
                    body[1] = 3;
                }
                Tag {
                    body: body.into(),
                    ..t
                }
            }
            _ => t,
        })
        .collect();
    let commands: Vec<u64> = tags
        .iter()
        .filter(|t| t.type_id == VIDEO && (t.body[0] == 0x57 || t.body[1] == 3))
        .map(|t| digest(&t.body))
        .collect();
    assert!(commands.len() > 50);
    let published = publish(
        s.hashgate.port,
        "commands",
        &paced(&tags),
        Duration::from_secs(1),
    );
    assert_eq!(published.ending, Ending::Completed, "{}", s.hashgate.log());
    s.nginx.wait_closed("commands", Duration::from_secs(20));
    let platform = s.platform_side.as_ref().expect("watched").seen();
    let videos: Vec<&Passed> = platform.iter().filter(|p| p.type_id == VIDEO).collect();
    assert!(videos.len() >= 3, "the keyframes went on");
    assert!(
        videos.iter().all(|p| !commands.contains(&p.digest)),
        "a command frame or an odd packet type reached the platform"
    );
}

#[test]
fn video_switching_to_enhanced_rtmp_tags_is_refused() {
    // nginx-rtmp reads no Enhanced RTMP: an `avc1` sequence header after classic ones would
    // reconfigure inspection (a crop to a corner, say) and not the platform.
    let s = setup("");
    let mut tags = flagged();
    let header = tags
        .iter()
        .find(|t| t.type_id == VIDEO && is_avc_header(&t.body))
        .cloned()
        .expect("a header");
    let mut enhanced = vec![0x90];
    enhanced.extend_from_slice(b"avc1");
    enhanced.extend_from_slice(&header.body[5..]);
    let at = tags.iter().position(|t| t.ts >= 1000).expect("1 s in");
    tags.insert(
        at,
        Tag {
            ts: tags[at].ts,
            body: enhanced.into(),
            ..header
        },
    );
    assert_refused(&s, "enhanced", &tags, "classic FLV and Enhanced RTMP");
}

#[test]
fn negative_composition_times_are_refused() {
    let s = setup("");
    let mut tags = flagged();
    let at = tags
        .iter()
        .position(|t| t.type_id == VIDEO && t.ts >= 1000 && is_avc_frame(&t.body))
        .expect("a frame at 1 s");
    let mut body = tags[at].body.to_vec();
    body[2..5].copy_from_slice(&[0xFF, 0xFF, 0xDF]);
    tags[at].body = body.into();
    assert_refused(&s, "early", &tags, "negative composition time");
}

/// `source` re-encoded by x264 with its SPS and PPS repeated inside every keyframe (as some
/// encoders send them), GOPs of 1 s.
fn with_inband_parameter_sets(dir: &std::path::Path, source: &str) -> Vec<Tag> {
    let out = dir.join(format!("inband-{source}"));
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(sample(source))
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "0",
        ])
        .args([
            "-x264-params",
            "repeat-headers=1",
            "-c:a",
            "copy",
            "-f",
            "flv",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    read_flv(&out)
}

/// A frame body's NAL units (4-byte lengths).
fn nals_of(body: &[u8]) -> Vec<Vec<u8>> {
    let mut nals = Vec::new();
    let mut pos = 5;
    while pos + 4 <= body.len() {
        let len = u32::from_be_bytes([body[pos], body[pos + 1], body[pos + 2], body[pos + 3]]);
        let end = pos + 4 + len as usize;
        nals.push(body[pos + 4..end].to_vec());
        pos = end;
    }
    nals
}

fn frame_of(header: &[u8], nals: &[Vec<u8>]) -> Bytes {
    let mut body = header[..5].to_vec();
    for nal in nals {
        body.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        body.extend_from_slice(nal);
    }
    body.into()
}

#[test]
fn parameter_sets_inside_frames_unlike_the_header_are_uninspectable() {
    let s = setup("");
    // The control: an encoder repeating its own parameter sets in every keyframe passes.
    let repeated = with_inband_parameter_sets(s._dir.path(), "benign.flv");
    let keyframe_sps = |t: &Tag| {
        t.type_id == VIDEO
            && t.body[0] == 0x17
            && is_avc_frame(&t.body)
            && nals_of(&t.body).iter().any(|n| n[0] & 0x1F == 7)
    };
    assert!(repeated.iter().filter(|t| keyframe_sps(t)).count() > 3);
    let published = publish(
        s.hashgate.port,
        "repeats",
        &paced(&repeated),
        Duration::from_secs(1),
    );
    assert_eq!(published.ending, Ending::Completed, "{}", s.hashgate.log());
    assert_eq!(decision(&s, "repeats"), "passed");
    // The attack: from the keyframe at 1 s on, the SPS inside keyframes declares another
    // picture than the header's. FFmpeg would apply it; nginx-rtmp's HLS puts the header's
    // in its place.
    let mut tags = with_inband_parameter_sets(s._dir.path(), "flagged.flv");
    for t in tags.iter_mut().filter(|t| t.ts >= 1000) {
        if keyframe_sps(t) {
            let nals: Vec<Vec<u8>> = nals_of(&t.body)
                .into_iter()
                .map(|n| {
                    if n[0] & 0x1F == 7 {
                        sps_declaring(&n, 640, 384)
                    } else {
                        n
                    }
                })
                .collect();
            t.body = frame_of(&t.body, &nals);
        }
    }
    assert_eq!(
        assert_cut_and_nothing_aired(&s, "foreign-sps", &paced(&tags)),
        "uninspectable"
    );
}
