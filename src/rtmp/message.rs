//! RTMP messages: the unit the chunk codec produces, plus typed views of the protocol control,
//! user control and command messages a session needs to understand.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::amf0::{self, Amf0Value, AmfError};

/// Message type ids (RTMP 1.0 §5.4, §7.1).
pub mod kind {
    /// Set Chunk Size.
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort Message.
    pub const ABORT: u8 = 2;
    /// Acknowledgement.
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message.
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size.
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth.
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio data.
    pub const AUDIO: u8 = 8;
    /// Video data.
    pub const VIDEO: u8 = 9;
    /// Data message, AMF3.
    pub const DATA_AMF3: u8 = 15;
    /// Shared object, AMF3.
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    /// Command message, AMF3.
    pub const COMMAND_AMF3: u8 = 17;
    /// Data message, AMF0 (@setDataFrame, onMetaData).
    pub const DATA_AMF0: u8 = 18;
    /// Shared object, AMF0.
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    /// Command message, AMF0.
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate message.
    pub const AGGREGATE: u8 = 22;
}

/// Conventional chunk stream ids for what we send. Any id works; these match what Flash, FFmpeg
/// and OBS use, which keeps packet captures familiar.
pub mod csid {
    /// Protocol control and user control messages (fixed by the spec).
    pub const CONTROL: u32 = 2;
    /// Commands on stream 0.
    pub const COMMAND: u32 = 3;
    /// Audio.
    pub const AUDIO: u32 = 4;
    /// Video.
    pub const VIDEO: u32 = 6;
    /// Data messages and commands on a media stream.
    pub const DATA: u32 = 5;
}

/// One RTMP message, reassembled from its chunks.
///
/// `payload` is a `Bytes`: forwarding a message clones a reference, never the media.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Chunk stream the message arrived on (or is to be sent on).
    pub csid: u32,
    /// Absolute timestamp in milliseconds (wrapping 32-bit).
    pub timestamp: u32,
    /// Message type id, see [`kind`].
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    /// Message body.
    pub payload: Bytes,
}

impl Message {
    /// Whether this is audio, video or a data message: what the relay forwards.
    pub fn is_media(&self) -> bool {
        matches!(
            self.type_id,
            kind::AUDIO | kind::VIDEO | kind::DATA_AMF0 | kind::DATA_AMF3 | kind::AGGREGATE
        )
    }
}

/// User control events (RTMP 1.0 §7.1.7).
#[derive(Debug, Clone, PartialEq)]
pub enum UserControl {
    /// Stream Begin with the stream id.
    StreamBegin(u32),
    /// Stream EOF with the stream id.
    StreamEof(u32),
    /// Stream Dry with the stream id.
    StreamDry(u32),
    /// Set Buffer Length: stream id and milliseconds.
    SetBufferLength(u32, u32),
    /// Stream Is Recorded with the stream id.
    StreamIsRecorded(u32),
    /// Ping Request with the sender's timestamp.
    PingRequest(u32),
    /// Ping Response echoing the request's timestamp.
    PingResponse(u32),
    /// Any other event type, kept raw.
    Other(u16, Bytes),
}

/// Protocol control messages the connection layer handles itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// Set Chunk Size (the top bit must be zero).
    SetChunkSize(u32),
    /// Abort the message in progress on a chunk stream.
    Abort(u32),
    /// Acknowledgement: total bytes received so far.
    Acknowledgement(u32),
    /// Window Acknowledgement Size.
    WindowAckSize(u32),
    /// Set Peer Bandwidth: window size and limit type.
    SetPeerBandwidth(u32, u8),
    /// A user control event.
    User(UserControl),
}

/// A protocol control message whose body is too short for its type.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("control message of type {type_id} has a {len}-byte body, too short")]
pub struct ShortControl {
    /// Message type id.
    pub type_id: u8,
    /// Body length received.
    pub len: usize,
}

impl Control {
    /// Parses a protocol control or user control message; `Ok(None)` for other types.
    pub fn parse(msg: &Message) -> Result<Option<Control>, ShortControl> {
        let mut body = msg.payload.clone();
        let need = match msg.type_id {
            kind::SET_CHUNK_SIZE | kind::ABORT | kind::ACKNOWLEDGEMENT | kind::WINDOW_ACK_SIZE => 4,
            kind::SET_PEER_BANDWIDTH => 5,
            kind::USER_CONTROL => 2,
            _ => return Ok(None),
        };
        if body.len() < need {
            return Err(ShortControl {
                type_id: msg.type_id,
                len: body.len(),
            });
        }
        let short = ShortControl {
            type_id: msg.type_id,
            len: msg.payload.len(),
        };
        Ok(Some(match msg.type_id {
            kind::SET_CHUNK_SIZE => Control::SetChunkSize(body.get_u32()),
            kind::ABORT => Control::Abort(body.get_u32()),
            kind::ACKNOWLEDGEMENT => Control::Acknowledgement(body.get_u32()),
            kind::WINDOW_ACK_SIZE => Control::WindowAckSize(body.get_u32()),
            kind::SET_PEER_BANDWIDTH => Control::SetPeerBandwidth(body.get_u32(), body.get_u8()),
            _ => {
                let event = body.get_u16();
                let mut u32_arg = || {
                    if body.remaining() >= 4 {
                        Ok(body.get_u32())
                    } else {
                        Err(short.clone())
                    }
                };
                Control::User(match event {
                    0 => UserControl::StreamBegin(u32_arg()?),
                    1 => UserControl::StreamEof(u32_arg()?),
                    2 => UserControl::StreamDry(u32_arg()?),
                    3 => {
                        let stream = u32_arg()?;
                        UserControl::SetBufferLength(stream, u32_arg()?)
                    }
                    4 => UserControl::StreamIsRecorded(u32_arg()?),
                    6 => UserControl::PingRequest(u32_arg()?),
                    7 => UserControl::PingResponse(u32_arg()?),
                    other => UserControl::Other(other, body.clone()),
                })
            }
        }))
    }

    /// Builds the message for this control on chunk stream 2, message stream 0.
    pub fn to_message(&self) -> Message {
        let mut body = BytesMut::with_capacity(10);
        let type_id = match self {
            Control::SetChunkSize(v) => {
                body.put_u32(*v);
                kind::SET_CHUNK_SIZE
            }
            Control::Abort(v) => {
                body.put_u32(*v);
                kind::ABORT
            }
            Control::Acknowledgement(v) => {
                body.put_u32(*v);
                kind::ACKNOWLEDGEMENT
            }
            Control::WindowAckSize(v) => {
                body.put_u32(*v);
                kind::WINDOW_ACK_SIZE
            }
            Control::SetPeerBandwidth(v, limit) => {
                body.put_u32(*v);
                body.put_u8(*limit);
                kind::SET_PEER_BANDWIDTH
            }
            Control::User(event) => {
                match event {
                    UserControl::StreamBegin(s) => put_event(&mut body, 0, &[*s]),
                    UserControl::StreamEof(s) => put_event(&mut body, 1, &[*s]),
                    UserControl::StreamDry(s) => put_event(&mut body, 2, &[*s]),
                    UserControl::SetBufferLength(s, ms) => put_event(&mut body, 3, &[*s, *ms]),
                    UserControl::StreamIsRecorded(s) => put_event(&mut body, 4, &[*s]),
                    UserControl::PingRequest(t) => put_event(&mut body, 6, &[*t]),
                    UserControl::PingResponse(t) => put_event(&mut body, 7, &[*t]),
                    UserControl::Other(e, raw) => {
                        body.put_u16(*e);
                        body.put_slice(raw);
                    }
                }
                kind::USER_CONTROL
            }
        };
        Message {
            csid: csid::CONTROL,
            timestamp: 0,
            type_id,
            stream_id: 0,
            payload: body.freeze(),
        }
    }
}

fn put_event(body: &mut BytesMut, event: u16, args: &[u32]) {
    body.put_u16(event);
    for arg in args {
        body.put_u32(*arg);
    }
}

/// An AMF command: name, transaction id, command object and further arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Procedure name (`connect`, `publish`, `_result`, `onStatus`, …).
    pub name: String,
    /// Transaction id; 0 for commands that expect no reply.
    pub transaction_id: f64,
    /// Command object, or `Null`.
    pub object: Amf0Value,
    /// Remaining arguments.
    pub args: Vec<Amf0Value>,
}

/// Why a command message could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CommandError {
    /// The AMF body is malformed.
    #[error(transparent)]
    Amf(#[from] AmfError),
    /// The body does not start with a name and transaction id.
    #[error("command without a name and transaction id")]
    Shape,
}

impl Command {
    /// Builds a command.
    pub fn new(name: &str, transaction_id: f64, object: Amf0Value, args: Vec<Amf0Value>) -> Self {
        Command {
            name: name.to_owned(),
            transaction_id,
            object,
            args,
        }
    }

    /// Reads a command from a type 20 (AMF0) or type 17 (AMF3 envelope, AMF0 body) message.
    pub fn parse(msg: &Message) -> Result<Command, CommandError> {
        let mut body = msg.payload.clone();
        // Type 17 puts one format byte (0 = AMF0) before the AMF0 values.
        if msg.type_id == kind::COMMAND_AMF3 && body.first() == Some(&0) {
            body.advance(1);
        }
        let mut values = amf0::decode_all(body)?.into_iter();
        let name = match values.next() {
            Some(Amf0Value::String(name)) => name,
            _ => return Err(CommandError::Shape),
        };
        // Some encoders omit the transaction id and object for onStatus-like calls.
        let transaction_id = values.next().and_then(|v| v.as_number()).unwrap_or(0.0);
        let object = values.next().unwrap_or(Amf0Value::Null);
        Ok(Command {
            name,
            transaction_id,
            object,
            args: values.collect(),
        })
    }

    /// Encodes the command as a type 20 message on `csid` and `stream_id`.
    pub fn to_message(&self, csid: u32, stream_id: u32) -> Message {
        let mut values = vec![
            Amf0Value::String(self.name.clone()),
            Amf0Value::Number(self.transaction_id),
            self.object.clone(),
        ];
        values.extend(self.args.iter().cloned());
        Message {
            csid,
            timestamp: 0,
            type_id: kind::COMMAND_AMF0,
            stream_id,
            payload: amf0::encode_all(&values),
        }
    }

    /// The first argument as a string (the stream name of publish, FCPublish, releaseStream).
    pub fn first_string_arg(&self) -> Option<&str> {
        self.args.first().and_then(Amf0Value::as_str)
    }
}

/// The info object of an `onStatus` call.
pub fn status_object(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
        ("description", Amf0Value::string(description)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control_message(type_id: u8, payload: &'static [u8]) -> Message {
        Message {
            csid: 2,
            timestamp: 0,
            type_id,
            stream_id: 0,
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn control_messages_round_trip() {
        for control in [
            Control::SetChunkSize(4096),
            Control::Abort(4),
            Control::Acknowledgement(123_456),
            Control::WindowAckSize(2_500_000),
            Control::SetPeerBandwidth(2_500_000, 2),
            Control::User(UserControl::StreamBegin(1)),
            Control::User(UserControl::SetBufferLength(1, 3000)),
            Control::User(UserControl::PingRequest(77)),
            Control::User(UserControl::PingResponse(77)),
        ] {
            let msg = control.to_message();
            assert_eq!(msg.csid, 2);
            assert_eq!(msg.stream_id, 0);
            assert_eq!(Control::parse(&msg), Ok(Some(control)));
        }
    }

    #[test]
    fn control_bytes_match_the_specification() {
        // RTMP 1.0 §5.4.1: Set Chunk Size is a 4-byte big-endian size.
        let msg = Control::SetChunkSize(4096).to_message();
        assert_eq!(msg.payload.as_ref(), &[0, 0, 0x10, 0]);
        // §7.1.7: ping request = event type 6 then the timestamp.
        let msg = Control::User(UserControl::PingRequest(0x01020304)).to_message();
        assert_eq!(msg.payload.as_ref(), &[0, 6, 1, 2, 3, 4]);
        // §5.4.5: Set Peer Bandwidth = window size then limit type.
        let msg = Control::SetPeerBandwidth(5_000_000, 2).to_message();
        assert_eq!(msg.payload.as_ref(), &[0x00, 0x4C, 0x4B, 0x40, 2]);
    }

    #[test]
    fn short_control_bodies_are_errors() {
        assert!(Control::parse(&control_message(kind::SET_CHUNK_SIZE, &[0, 1])).is_err());
        assert!(Control::parse(&control_message(kind::USER_CONTROL, &[0, 6, 1])).is_err());
        assert_eq!(Control::parse(&control_message(kind::AUDIO, &[])), Ok(None));
    }

    #[test]
    fn commands_round_trip_and_amf3_envelope_is_unwrapped() {
        let cmd = Command::new(
            "publish",
            5.0,
            Amf0Value::Null,
            vec![Amf0Value::string("key"), Amf0Value::string("live")],
        );
        let msg = cmd.to_message(csid::DATA, 1);
        assert_eq!(Command::parse(&msg), Ok(cmd.clone()));
        let mut amf3 = BytesMut::from(&[0u8][..]);
        amf3.extend_from_slice(&msg.payload);
        let wrapped = Message {
            type_id: kind::COMMAND_AMF3,
            payload: amf3.freeze(),
            ..msg
        };
        assert_eq!(Command::parse(&wrapped), Ok(cmd));
    }

    #[test]
    fn command_without_name_is_rejected() {
        let msg = Message {
            csid: 3,
            timestamp: 0,
            type_id: kind::COMMAND_AMF0,
            stream_id: 0,
            payload: amf0::encode_all(&[Amf0Value::Number(1.0)]),
        };
        assert_eq!(Command::parse(&msg), Err(CommandError::Shape));
    }
}
