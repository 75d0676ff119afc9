//! One RTMP connection after the handshake: messages in, messages out.
//!
//! Reading goes through the [`ChunkDecoder`]; protocol control is handled here so sessions only
//! see commands and media: acknowledgements are queued when the peer's window is reached, pings
//! are answered, Set Peer Bandwidth is acknowledged. Writing queues chunk segments and sends them
//! with vectored writes on [`Connection::flush`].
//!
//! [`Connection::read_message`] only ever awaits the socket read, so it is cancel-safe and can sit
//! in a `select!`; replies it queues go out with the next flush.

use std::io::IoSlice;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_util::codec::FramedRead;

use super::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits};
use super::error::RtmpError;
use super::message::{Control, Message, UserControl};

/// A byte stream RTMP can run on: TCP, or TLS over TCP.
pub trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// A boxed transport, so plain and TLS connections share one code path.
pub type BoxTransport = Box<dyn Transport>;

/// Most segments handed to one vectored write (Linux accepts 1024; this keeps the stack small).
const MAX_IOVECS: usize = 64;

/// A message-level RTMP connection. See the module documentation.
pub struct Connection {
    reader: FramedRead<ReadHalf<BoxTransport>, ChunkDecoder>,
    writer: WriteHalf<BoxTransport>,
    encoder: ChunkEncoder,
    pending: Vec<Bytes>,
    /// Window Acknowledgement Size the peer asked of us.
    ack_window: Option<u32>,
    acked_at: u64,
    /// Last Window Acknowledgement Size we announced.
    our_window: Option<u32>,
    bytes_written: u64,
}

impl Connection {
    /// Wraps a transport on which the handshake is complete.
    pub fn new(io: BoxTransport, limits: DecoderLimits) -> Self {
        let (read, write) = tokio::io::split(io);
        Connection {
            reader: FramedRead::with_capacity(read, ChunkDecoder::new(limits), 64 * 1024),
            writer: write,
            encoder: ChunkEncoder::default(),
            pending: Vec::with_capacity(64),
            ack_window: None,
            acked_at: 0,
            our_window: None,
            bytes_written: 0,
        }
    }

    /// Next command, media or data message; `Ok(None)` when the peer closed cleanly.
    ///
    /// Protocol control messages are consumed here. Cancel-safe.
    pub async fn read_message(&mut self) -> Result<Option<Message>, RtmpError> {
        loop {
            let Some(msg) = self.reader.next().await.transpose()? else {
                return Ok(None);
            };
            self.acknowledge_if_due();
            if msg.stream_id != 0 || msg.type_id > 6 {
                return Ok(Some(msg));
            }
            match Control::parse(&msg)? {
                Some(Control::WindowAckSize(size)) => self.ack_window = Some(size.max(1)),
                Some(Control::SetPeerBandwidth(size, _)) if self.our_window != Some(size) => {
                    self.announce_window(size);
                }
                Some(Control::User(UserControl::PingRequest(time))) => {
                    self.queue(&Control::User(UserControl::PingResponse(time)).to_message());
                }
                // Chunk size and abort were applied by the decoder; the rest needs no action.
                Some(_) => {}
                None => return Ok(Some(msg)),
            }
        }
    }

    fn acknowledge_if_due(&mut self) {
        let Some(window) = self.ack_window else {
            return;
        };
        let total = self.reader.decoder().bytes_consumed();
        if total - self.acked_at >= window as u64 {
            self.acked_at = total;
            // The sequence number is the byte count modulo 2^32, as the specification says.
            self.queue(&Control::Acknowledgement(total as u32).to_message());
        }
    }

    /// Queues a Window Acknowledgement Size announcement.
    pub fn announce_window(&mut self, size: u32) {
        self.our_window = Some(size);
        self.queue(&Control::WindowAckSize(size).to_message());
    }

    /// Queues Set Chunk Size and switches the encoder to it.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.queue(&Control::SetChunkSize(size).to_message());
        self.encoder.set_chunk_size(size as usize);
    }

    /// Queues a message; it is sent by the next [`flush`](Self::flush).
    pub fn queue(&mut self, msg: &Message) {
        self.encoder.encode(msg, &mut self.pending);
    }
    /// Sends everything queued, with as few system calls as the socket allows.
    pub async fn flush(&mut self) -> Result<(), RtmpError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut first = 0;
        let mut skip = 0;
        while first < self.pending.len() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, seg) in self.pending[first..].iter().take(MAX_IOVECS).enumerate() {
                slices[i] = IoSlice::new(if i == 0 { &seg[skip..] } else { seg });
                count += 1;
            }
            let mut written = self.writer.write_vectored(&slices[..count]).await?;
            if written == 0 {
                return Err(RtmpError::Io(std::io::ErrorKind::WriteZero.into()));
            }
            self.bytes_written += written as u64;
            while written > 0 {
                let left = self.pending[first].len() - skip;
                if written >= left {
                    written -= left;
                    first += 1;
                    skip = 0;
                } else {
                    skip += written;
                    written = 0;
                }
            }
        }
        self.pending.clear();
        self.writer.flush().await?;
        Ok(())
    }

    /// Queues and flushes one message.
    pub async fn send(&mut self, msg: &Message) -> Result<(), RtmpError> {
        self.queue(msg);
        self.flush().await
    }
    /// Bytes written to the peer since the handshake.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Flushes what is queued and closes the write side (TLS close_notify, TCP FIN).
    pub async fn shutdown(&mut self) -> Result<(), RtmpError> {
        self.flush().await?;
        self.writer.shutdown().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::message::kind;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn answers_pings_and_acknowledges_the_window() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        let mut conn = Connection::new(Box::new(ours), DecoderLimits::default());
        let mut peer = ChunkEncoder::default();
        let mut segs = Vec::new();
        peer.encode(&Control::WindowAckSize(1000).to_message(), &mut segs);
        peer.encode(
            &Control::User(UserControl::PingRequest(42)).to_message(),
            &mut segs,
        );
        for ts in 0..20u32 {
            peer.encode(
                &Message {
                    csid: 4,
                    timestamp: ts,
                    type_id: kind::AUDIO,
                    stream_id: 1,
                    payload: Bytes::from(vec![1u8; 100]),
                },
                &mut segs,
            );
        }
        let sent: Vec<u8> = segs.concat();
        theirs.write_all(&sent).await.expect("write");
        drop(theirs.shutdown().await);

        let mut media = 0;
        while let Some(msg) = conn.read_message().await.expect("valid stream") {
            assert_eq!(msg.type_id, kind::AUDIO);
            media += 1;
        }
        assert_eq!(media, 20);
        conn.shutdown().await.expect("flush");

        let mut back = Vec::new();
        theirs.read_to_end(&mut back).await.expect("read");
        let mut dec = ChunkDecoder::new(DecoderLimits::default());
        let mut buf = bytes::BytesMut::from(&back[..]);
        let mut controls = Vec::new();
        while let Some(msg) = tokio_util::codec::Decoder::decode(&mut dec, &mut buf).expect("ok") {
            controls.push(Control::parse(&msg).expect("control").expect("is control"));
        }
        assert_eq!(controls[0], Control::User(UserControl::PingResponse(42)));
        // Acknowledgements carry the running total of bytes read, at least one per 1000 bytes.
        let acks: Vec<u32> = controls
            .iter()
            .filter_map(|c| match c {
                Control::Acknowledgement(n) => Some(*n),
                _ => None,
            })
            .collect();
        assert!(acks.len() >= 2, "{controls:?}");
        assert!(acks.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] >= 1000));
        assert!(*acks.last().expect("some") as usize <= sent.len());
    }
}
