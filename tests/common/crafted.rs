//! A broadcaster who has read hashgate's source: FLV tags read from a file, changed by hand, and
//! published with hashgate's own RTMP client on a schedule of the test's choosing; and a
//! platform that notes when each message arrives, so a test can measure how long hashgate held
//! it. Both run in the test process (one monotonic clock), on loopback.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashgate::rtmp::chunk::DecoderLimits;
use hashgate::rtmp::client::{PublishTarget, UpstreamEvent, UpstreamPublisher};
use hashgate::rtmp::url::RtmpUrl;
use hashgate::rtmp::{Message, RtmpError};

/// RTMP message types of FLV tags.
pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;
pub const DATA: u8 = 18;

/// One FLV tag: what RTMP carries as one message.
#[derive(Debug, Clone)]
pub struct Tag {
    pub type_id: u8,
    pub ts: u32,
    pub body: Bytes,
}

/// Every tag of an FLV file, in file order.
pub fn read_flv(path: &Path) -> Vec<Tag> {
    let data = std::fs::read(path).expect("read flv");
    let mut pos = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize + 4;
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let ts = u32::from_be_bytes([data[pos + 7], data[pos + 4], data[pos + 5], data[pos + 6]]);
        if pos + 11 + size > data.len() {
            break;
        }
        tags.push(Tag {
            type_id: data[pos],
            ts,
            body: Bytes::copy_from_slice(&data[pos + 11..pos + 11 + size]),
        });
        pos += 11 + size + 4;
    }
    tags
}

/// The `onMetaData` of a file, as a publisher sends it (`@setDataFrame` first).
pub fn set_data_frame(tag: &Tag) -> Tag {
    let mut body = b"\x02\x00\x0d@setDataFrame".to_vec();
    body.extend_from_slice(&tag.body);
    Tag {
        body: body.into(),
        ..tag.clone()
    }
}

/// Whether a video tag body is an AVC sequence header.
pub fn is_avc_header(body: &[u8]) -> bool {
    body.len() > 5 && body[0] & 0x0F == 7 && body[1] == 0
}

/// Whether a video tag body is an AVC coded frame.
pub fn is_avc_frame(body: &[u8]) -> bool {
    body.len() > 5 && body[0] & 0x0F == 7 && body[1] == 1
}

/// A message to send `at` after the publish starts.
#[derive(Debug, Clone)]
pub struct Send {
    pub at: Duration,
    pub tag: Tag,
}

/// Tags sent at their timestamps, like a live encoder (the first at 0).
pub fn paced(tags: &[Tag]) -> Vec<Send> {
    let first = tags.iter().map(|t| t.ts).min().unwrap_or(0);
    tags.iter()
        .map(|t| Send {
            at: Duration::from_millis(u64::from(t.ts - first)),
            tag: if t.type_id == DATA {
                set_data_frame(t)
            } else {
                t.clone()
            },
        })
        .collect()
}

/// How a crafted publish ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// Everything was sent and unpublished.
    Completed,
    /// The server refused or cut the stream with this status.
    Refused { code: String, description: String },
    /// Anything else.
    Failed(String),
}

/// A crafted publish: how it ended, and when each message left.
#[derive(Debug)]
pub struct Published {
    pub ending: Ending,
    /// Each message sent: queued (first) and written to the socket (last).
    pub sent: Seen,
    /// When the publish was accepted.
    pub started: Instant,
    /// When it ended.
    pub ended: Instant,
}

fn ending_of(e: RtmpError) -> Ending {
    match e {
        RtmpError::Refused { code, description } => Ending::Refused { code, description },
        other => Ending::Failed(other.to_string()),
    }
}

/// Publishes `sends` to `rtmp://127.0.0.1:PORT/live` under `key` with hashgate's own client;
/// after the last message waits `linger` for the server's verdict, then unpublishes.
pub fn publish(port: u16, key: &str, sends: &[Send], linger: Duration) -> Published {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(publish_async(port, key, sends, linger))
}

async fn publish_async(port: u16, key: &str, sends: &[Send], linger: Duration) -> Published {
    let step = Duration::from_secs(5);
    let target = PublishTarget {
        url: RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/live")).expect("url"),
        stream_key: key.to_owned(),
        publish_type: "live".into(),
        fourcc_list: None,
    };
    let mut sent = Vec::with_capacity(sends.len());
    let started = Instant::now();
    let mut up =
        match UpstreamPublisher::publish(&target, None, DecoderLimits::default(), step).await {
            Ok(up) => up,
            Err(e) => {
                return Published {
                    ending: ending_of(e),
                    sent,
                    started,
                    ended: Instant::now(),
                }
            }
        };
    let started = Instant::now();
    let done = |ending, sent| Published {
        ending,
        sent,
        started,
        ended: Instant::now(),
    };
    for s in sends {
        let due = tokio::time::Instant::from_std(started + s.at);
        loop {
            tokio::select! {
                biased;
                event = up.next_event() => match event {
                    Ok(UpstreamEvent::Nothing) => continue,
                    Ok(UpstreamEvent::Closed) => return done(Ending::Failed("closed".into()), sent),
                    Err(e) => return done(ending_of(e), sent),
                },
                _ = tokio::time::sleep_until(due) => break,
            }
        }
        up.queue_media(&Message {
            csid: 0,
            timestamp: s.tag.ts,
            type_id: s.tag.type_id,
            stream_id: 0,
            payload: s.tag.body.clone(),
        });
        let queued = Instant::now();
        match tokio::time::timeout(step, up.flush()).await {
            Ok(Ok(())) => sent.push(Passed {
                type_id: s.tag.type_id,
                ts: s.tag.ts,
                first: queued,
                last: Instant::now(),
                digest: digest(&s.tag.body),
            }),
            Ok(Err(e)) => {
                // A server that cuts says why, then closes: read the reason if it is there.
                let reason = tokio::time::timeout(Duration::from_secs(1), async {
                    loop {
                        match up.next_event().await {
                            Ok(UpstreamEvent::Nothing) => continue,
                            Ok(UpstreamEvent::Closed) => return None,
                            Err(e) => return Some(e),
                        }
                    }
                })
                .await
                .ok()
                .flatten();
                return done(ending_of(reason.unwrap_or(e)), sent);
            }
            Err(_) => return done(Ending::Failed("write timed out".into()), sent),
        }
    }
    let until = tokio::time::Instant::now() + linger;
    loop {
        tokio::select! {
            event = up.next_event() => match event {
                Ok(UpstreamEvent::Nothing) => continue,
                Ok(UpstreamEvent::Closed) => break,
                Err(e) => return done(ending_of(e), sent),
            },
            _ = tokio::time::sleep_until(until) => break,
        }
    }
    let _ = tokio::time::timeout(step, up.unpublish()).await;
    done(Ending::Completed, sent)
}

/// A media message seen passing a point: its type and timestamp, and when its first and its
/// last byte passed; `digest` fingerprints its body.
#[derive(Debug, Clone, Copy)]
pub struct Passed {
    pub type_id: u8,
    pub ts: u32,
    pub first: Instant,
    pub last: Instant,
    pub digest: u64,
}

/// RTMP aggregate messages (type 22).
pub const AGGREGATE: u8 = 22;

/// A fingerprint of a message body (the same in every run).
pub fn digest(body: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    body.hash(&mut hasher);
    hasher.finish()
}

/// Media messages seen passing a point, in order.
pub type Seen = Vec<Passed>;

/// A TCP proxy on loopback that notes when each media message from the client side passes it,
/// by decoding the RTMP chunk stream with hashgate's own decoder (after the handshake) while it
/// forwards every byte unchanged and at once. Put one before hashgate and one after it, and the
/// difference is how long hashgate held each message.
///
/// Times are the kernel's receive timestamps of the proxy's inbound socket (`SO_TIMESTAMPNS`,
/// what a packet capture on that socket records), not when the proxy's thread got round to
/// the bytes: a busy machine that runs the thread late cannot shorten or stretch a hold.
pub struct TimingProxy {
    pub port: u16,
    seen: Arc<Mutex<Seen>>,
}

impl TimingProxy {
    /// Forwards connections to 127.0.0.1:`target`.
    pub fn start(target: u16) -> TimingProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let notes = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                std::thread::spawn(move || copy_plain(server2, client2));
                let notes = notes.clone();
                std::thread::spawn(move || copy_noting(client, server, notes));
            }
        });
        TimingProxy { port, seen }
    }

    /// What passed so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn copy_plain(mut from: std::net::TcpStream, mut to: std::net::TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Reads from a socket with `SO_TIMESTAMPNS` on: the bytes, and when the kernel received the
/// newest of them, on the monotonic clock.
struct StampedReader {
    socket: std::net::TcpStream,
    /// `CLOCK_REALTIME` and `Instant` read together: kernel stamps are wall-clock times.
    anchor: (std::time::SystemTime, Instant),
}

impl StampedReader {
    fn new(socket: std::net::TcpStream) -> StampedReader {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option of the right size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_TIMESTAMPNS: {}", std::io::Error::last_os_error());
        StampedReader {
            socket,
            anchor: (std::time::SystemTime::now(), Instant::now()),
        }
    }

    /// Reads into `buf`: (bytes read, 0 at the end; when the newest arrived).
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<(usize, Instant)> {
        use std::os::fd::AsRawFd;
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = [0u64; 16];
        // SAFETY: msghdr is plain data; every pointer in it outlives the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: as above.
        let n = unsafe { libc::recvmsg(self.socket.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let read_at = Instant::now();
        let mut stamp = None;
        // SAFETY: the control buffer was filled by recvmsg and its length set in msg.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let ts =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                    stamp = Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        let (wall0, mono0) = self.anchor;
        let since_epoch0 = wall0
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let at = stamp
            .and_then(|s| mono0.checked_add(s.checked_sub(since_epoch0)?))
            .map_or(read_at, |at| at.min(read_at));
        Ok((n as usize, at))
    }
}

fn copy_noting(from: std::net::TcpStream, mut to: std::net::TcpStream, seen: Arc<Mutex<Seen>>) {
    use std::io::Write;
    use tokio_util::codec::Decoder;
    let mut from = StampedReader::new(from);
    let mut decoder = hashgate::rtmp::chunk::ChunkDecoder::new(DecoderLimits {
        max_message_size: 16 << 20,
        max_chunk_streams: 1024,
    });
    // C0 + C1 + C2 come before any chunk.
    let mut handshake_left = 1 + 1536 + 1536;
    let mut pending = bytes::BytesMut::new();
    let mut buf = vec![0u8; 64 * 1024];
    // (offset after the read's last byte, when the read's newest segment arrived) of the reads
    // that may hold bytes of messages not yet decoded; and where the next message starts.
    let mut reads: std::collections::VecDeque<(u64, Instant)> = Default::default();
    let (mut fed, mut next_start) = (0u64, 0u64);
    loop {
        let (n, at) = match from.read(&mut buf) {
            Ok((0, _)) | Err(_) => break,
            Ok(read) => read,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        let skip = handshake_left.min(n);
        handshake_left -= skip;
        if skip == n {
            continue;
        }
        pending.extend_from_slice(&buf[skip..n]);
        fed += (n - skip) as u64;
        reads.push_back((fed, at));
        while let Ok(Some(msg)) = decoder.decode(&mut pending) {
            // The messages of one chunk stream follow each other whole: a message's first
            // byte is the one after the previous message's last.
            let start = next_start;
            next_start = decoder.bytes_consumed();
            let first = reads
                .iter()
                .find(|(end, _)| *end > start)
                .map_or(at, |(_, t)| *t);
            if matches!(msg.type_id, AUDIO | VIDEO | DATA | AGGREGATE) {
                if let Ok(mut s) = seen.lock() {
                    s.push(Passed {
                        type_id: msg.type_id,
                        ts: msg.timestamp,
                        first,
                        last: at,
                        digest: digest(&msg.payload),
                    });
                }
            }
        }
        while reads.front().is_some_and(|(end, _)| *end <= next_start) {
            reads.pop_front();
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// How long each message was held between `before` and `after` (matched by type and timestamp,
/// in order): from when its last byte passed `before` to when its first byte passed `after`,
/// so every byte of it was held at least that long. (type, timestamp, hold).
pub fn holds(before: &Seen, after: &Seen) -> Vec<(u8, u32, Duration)> {
    let mut unmatched: Vec<&Passed> = before.iter().collect();
    let mut out = Vec::new();
    for passed in after {
        if let Some(i) = unmatched
            .iter()
            .position(|b| b.type_id == passed.type_id && b.ts == passed.ts)
        {
            let sent = unmatched.remove(i);
            out.push((
                passed.type_id,
                passed.ts,
                passed.first.saturating_duration_since(sent.last),
            ));
        }
    }
    out
}

/// Bits, most significant first.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> u32 {
        let b = u32::from(self.data[self.pos / 8] >> (7 - self.pos % 8) & 1);
        self.pos += 1;
        b
    }
    fn bits(&mut self, n: usize) -> u32 {
        (0..n).fold(0, |v, _| v << 1 | self.bit())
    }
    fn ue(&mut self) -> u32 {
        let mut zeros = 0;
        while self.bit() == 0 {
            zeros += 1;
        }
        (1 << zeros) - 1 + self.bits(zeros)
    }
    fn se(&mut self) {
        self.ue();
    }
}

#[derive(Default)]
struct BitSink {
    bits: Vec<u8>,
}

impl BitSink {
    fn push(&mut self, bit: u32) {
        self.bits.push(bit as u8);
    }
    fn ue(&mut self, v: u32) {
        let code = u64::from(v) + 1;
        let len = 64 - code.leading_zeros() as usize;
        for _ in 1..len {
            self.push(0);
        }
        for i in (0..len).rev() {
            self.push((code >> i & 1) as u32);
        }
    }
    fn bytes(mut self) -> Vec<u8> {
        while self.bits.len() % 8 != 0 {
            self.bits.push(0);
        }
        self.bits
            .chunks(8)
            .map(|c| c.iter().fold(0u8, |b, bit| b << 1 | bit))
            .collect()
    }
}

fn unescape(data: &[u8]) -> Vec<u8> {
    let (mut out, mut zeros) = (Vec::new(), 0);
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

fn escape(data: &[u8]) -> Vec<u8> {
    let (mut out, mut zeros) = (Vec::new(), 0);
    for &b in data {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// An H.264 SPS (NAL header included) rewritten to declare a `width`×`height` picture (in
/// macroblocks, progressive), everything else kept.
pub fn sps_declaring(sps: &[u8], width: u32, height: u32) -> Vec<u8> {
    let rbsp = unescape(&sps[1..]);
    let mut r = Bits {
        data: &rbsp,
        pos: 0,
    };
    let profile = r.bits(8);
    r.bits(16);
    r.ue();
    if matches!(profile, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128) {
        let chroma = r.ue();
        if chroma == 3 {
            r.bit();
        }
        r.ue();
        r.ue();
        r.bit();
        assert_eq!(r.bit(), 0, "scaling matrices are not handled here");
    }
    r.ue();
    let poc_type = r.ue();
    if poc_type == 0 {
        r.ue();
    } else if poc_type == 1 {
        r.bit();
        r.se();
        r.se();
        for _ in 0..r.ue() {
            r.se();
        }
    }
    r.ue();
    r.bit();
    let before_size = r.pos;
    r.ue();
    r.ue();
    let frame_mbs_only = r.bit();
    assert_eq!(frame_mbs_only, 1, "progressive SPS expected");
    let after = r.pos;
    let mut w = BitSink::default();
    let mut copy = Bits {
        data: &rbsp,
        pos: 0,
    };
    while copy.pos < before_size {
        let b = copy.bit();
        w.push(b);
    }
    w.ue(width / 16 - 1);
    w.ue(height / 16 - 1);
    w.push(1);
    // The rest up to and including the stop bit.
    let total = rbsp.len() * 8;
    let last_one = (0..total)
        .rev()
        .find(|&i| rbsp[i / 8] >> (7 - i % 8) & 1 == 1)
        .expect("stop bit");
    copy.pos = after;
    while copy.pos <= last_one {
        let b = copy.bit();
        w.push(b);
    }
    let mut nal = vec![sps[0]];
    nal.extend(escape(&w.bytes()));
    nal
}

/// An AVC sequence header tag body whose SPS declares `width`×`height`.
pub fn avc_header_declaring(body: &[u8], width: u32, height: u32) -> Bytes {
    let record = &body[5..];
    let sps_len = u16::from_be_bytes([record[6], record[7]]) as usize;
    let sps = &record[8..8 + sps_len];
    let new_sps = sps_declaring(sps, width, height);
    let mut out = body[..5].to_vec();
    out.extend_from_slice(&record[..6]);
    out.extend((new_sps.len() as u16).to_be_bytes());
    out.extend(&new_sps);
    out.extend_from_slice(&record[8 + sps_len..]);
    out.into()
}

/// The same AVC sequence header with its reserved bits cleared (they must be all ones): the
/// bytes differ, the decoding configuration does not.
pub fn avc_header_reserved_bits_flipped(body: &[u8]) -> Bytes {
    let mut out = body.to_vec();
    out[5 + 4] &= 0x03;
    out[5 + 5] &= 0x1F;
    out.into()
}

/// An AVC frame with its last NAL unit shortened by `percent` (its length prefix fixed).
pub fn shorten_last_nal(body: &[u8], percent: usize) -> Bytes {
    let mut nals = Vec::new();
    let mut pos = 5;
    while pos + 4 <= body.len() {
        let len =
            u32::from_be_bytes([body[pos], body[pos + 1], body[pos + 2], body[pos + 3]]) as usize;
        if pos + 4 + len > body.len() {
            break;
        }
        nals.push((pos, len));
        pos += 4 + len;
    }
    let Some(&(last, len)) = nals.last() else {
        return Bytes::copy_from_slice(body);
    };
    let cut = (len * percent / 100).max(1);
    let new_len = len.saturating_sub(cut).max(1);
    let mut out = body[..last].to_vec();
    out.extend((new_len as u32).to_be_bytes());
    out.extend_from_slice(&body[last + 4..last + 4 + new_len]);
    out.into()
}
