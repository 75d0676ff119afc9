//! Enhanced RTMP through the relay: the broadcaster's `fourCcList` reaches the platform's
//! `connect`, and ExVideoTagHeader messages (here HEVC, `hvc1`) pass byte for byte.
//!
//! FFmpeg 5.1 on Debian 12 predates Enhanced RTMP, so both ends are this crate's own RTMP client
//! and server sessions; the relay in between is the real binary.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use hashgate::rtmp::amf0::Amf0Value;
use hashgate::rtmp::chunk::DecoderLimits;
use hashgate::rtmp::client::{PublishTarget, UpstreamPublisher};
use hashgate::rtmp::connection::Connection;
use hashgate::rtmp::handshake;
use hashgate::rtmp::message::{kind, Message};
use hashgate::rtmp::server::{PublisherEvent, ServerSession};
use hashgate::rtmp::url::RtmpUrl;

fn ex_video(first: u8, body: &[u8]) -> Bytes {
    let mut out = vec![first];
    out.extend_from_slice(b"hvc1");
    out.extend_from_slice(body);
    Bytes::from(out)
}

#[tokio::test]
async fn fourcc_list_and_extended_video_pass_through() {
    let dir = temp_dir();
    let platform = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let platform_port = platform.local_addr().expect("addr").port();
    let received = tokio::spawn(async move {
        let (mut tcp, _) = platform.accept().await.expect("accept relay");
        handshake::accept(&mut tcp, Duration::from_secs(5))
            .await
            .expect("handshake");
        let mut session =
            ServerSession::new(Connection::new(Box::new(tcp), DecoderLimits::default()));
        let request = session.wait_for_publish().await.expect("publish");
        session.accept_publish(&request).await.expect("accept");
        let mut media = Vec::new();
        while let Ok(PublisherEvent::Media(msg)) = session.next_event().await {
            media.push((msg.type_id, msg.timestamp, msg.payload));
        }
        (request, media)
    });

    let hashgate = Hashgate::start(
        dir.path(),
        &upstream(&format!("rtmp://127.0.0.1:{platform_port}/live")),
    );
    let fourccs = Amf0Value::StrictArray(vec![
        Amf0Value::string("hvc1"),
        Amf0Value::string("av01"),
        Amf0Value::string("vp09"),
    ]);
    let target = PublishTarget {
        url: RtmpUrl::parse(&format!("rtmp://127.0.0.1:{}/live", hashgate.port)).expect("url"),
        stream_key: "ertmp".into(),
        publish_type: "live".into(),
        fourcc_list: Some(fourccs.clone()),
    };
    let mut publisher = UpstreamPublisher::publish(
        &target,
        None,
        DecoderLimits::default(),
        Duration::from_secs(5),
    )
    .await
    .expect("publish through hashgate");
    // SequenceStart (keyframe), CodedFrames keyframe (composition time 33 ms), CodedFramesX
    // inter frame, SequenceEnd.
    let mut coded = vec![0, 0, 33];
    coded.extend_from_slice(&[0xAA; 6000]);
    let sent = vec![
        (0u32, ex_video(0x90, &[1, 2, 3, 4, 5])),
        (0, ex_video(0x91, &coded)),
        (33, ex_video(0xA3, &[0xBB; 700])),
        (66, ex_video(0x92, &[])),
    ];
    for (timestamp, payload) in &sent {
        publisher.queue_media(&Message {
            csid: 6,
            timestamp: *timestamp,
            type_id: kind::VIDEO,
            stream_id: 1,
            payload: payload.clone(),
        });
    }
    publisher.flush().await.expect("send");
    publisher.unpublish().await.expect("unpublish");

    let (request, media) = tokio::time::timeout(Duration::from_secs(20), received)
        .await
        .expect("platform finished")
        .expect("platform task");
    assert_eq!(request.fourcc_list, Some(fourccs));
    assert_eq!(request.stream_key, "ertmp");
    let want: Vec<(u8, u32, Bytes)> = sent.into_iter().map(|(t, p)| (kind::VIDEO, t, p)).collect();
    assert_eq!(media, want);
}
