//! The server session a broadcaster talks to: connect, releaseStream, FCPublish, createStream,
//! publish, then media until FCUnpublish/deleteStream, with the replies OBS, FFmpeg and
//! GStreamer expect. It decides nothing: the relay says whether a publish is accepted.

use std::time::Duration;

use super::amf0::Amf0Value;
use super::connection::Connection;
use super::error::RtmpError;
use super::message::Control;
use super::message::{csid, kind, status_object, Command, Message, UserControl};

/// Window Acknowledgement Size and peer bandwidth we announce (the values nginx-rtmp and FMS
/// use).
const WINDOW: u32 = 5_000_000;
/// Chunk size we send with: large enough that a typical video frame is a handful of chunks.
pub const OUT_CHUNK_SIZE: u32 = 4096;

/// What a broadcaster asked to publish.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// Application from `connect`.
    pub app: String,
    /// `tcUrl` from `connect`, when sent.
    pub tc_url: Option<String>,
    /// Stream name (the stream key), with any `?query` as sent.
    pub stream_key: String,
    /// Publishing type: `live`, `record` or `append`.
    pub publish_type: String,
    /// Message stream id the media will arrive on.
    pub stream_id: u32,
    /// Enhanced RTMP `fourCcList` from `connect`, when sent.
    pub fourcc_list: Option<Amf0Value>,
}

/// What a publishing broadcaster did next.
#[derive(Debug)]
pub enum PublisherEvent {
    /// Audio, video or a data message on the published stream.
    Media(Message),
    /// FCUnpublish, closeStream or deleteStream: the broadcaster ended the stream.
    Unpublished,
    /// The connection closed.
    Closed,
}

/// A publisher connection on the server side.
pub struct ServerSession {
    conn: Connection,
    app: Option<String>,
    tc_url: Option<String>,
    fourcc_list: Option<Amf0Value>,
    next_stream_id: u32,
    publishing: Option<u32>,
}

impl ServerSession {
    /// A session on a connection whose handshake is done.
    pub fn new(conn: Connection) -> Self {
        ServerSession {
            conn,
            app: None,
            tc_url: None,
            fourcc_list: None,
            next_stream_id: 1,
            publishing: None,
        }
    }

    /// The connection, for byte counters.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Answers commands until the broadcaster calls `publish`, and returns what it asked for.
    /// The caller then calls [`accept_publish`](Self::accept_publish) or
    /// [`reject_publish`](Self::reject_publish).
    pub async fn wait_for_publish(&mut self) -> Result<PublishRequest, RtmpError> {
        loop {
            let msg = self.conn.read_message().await?.ok_or(RtmpError::Closed)?;
            if msg.is_media() {
                return Err(RtmpError::Protocol(format!(
                    "media message (type {}) before publish",
                    msg.type_id
                )));
            }
            if !matches!(msg.type_id, kind::COMMAND_AMF0 | kind::COMMAND_AMF3) {
                continue;
            }
            let cmd = Command::parse(&msg)?;
            if let Some(request) = self.handle_setup_command(&msg, cmd)? {
                self.conn.flush().await?;
                return Ok(request);
            }
            self.conn.flush().await?;
        }
    }

    fn handle_setup_command(
        &mut self,
        msg: &Message,
        cmd: Command,
    ) -> Result<Option<PublishRequest>, RtmpError> {
        let tid = cmd.transaction_id;
        match cmd.name.as_str() {
            "connect" => {
                if self.app.is_some() {
                    return Err(RtmpError::Protocol(
                        "second connect on one connection".into(),
                    ));
                }
                let app = cmd
                    .object
                    .get("app")
                    .and_then(Amf0Value::as_str)
                    .unwrap_or("");
                self.app = Some(app.trim_matches('/').to_owned());
                let client = cmd
                    .object
                    .get("flashVer")
                    .and_then(Amf0Value::as_str)
                    .unwrap_or("");
                tracing::info!(app, client, "connect");
                self.tc_url = cmd
                    .object
                    .get("tcUrl")
                    .and_then(Amf0Value::as_str)
                    .map(str::to_owned);
                self.fourcc_list = cmd.object.get("fourCcList").cloned();
                let encoding = cmd
                    .object
                    .get("objectEncoding")
                    .and_then(Amf0Value::as_number);

                self.conn.announce_window(WINDOW);
                self.conn
                    .queue(&Control::SetPeerBandwidth(WINDOW, 2).to_message());
                self.conn.set_chunk_size(OUT_CHUNK_SIZE);
                let mut info = vec![
                    ("level", Amf0Value::string("status")),
                    ("code", Amf0Value::string("NetConnection.Connect.Success")),
                    ("description", Amf0Value::string("Connection succeeded.")),
                    ("objectEncoding", Amf0Value::Number(encoding.unwrap_or(0.0))),
                ];
                // Enhanced RTMP: a relay passes the codecs through, so it accepts the list the
                // broadcaster offered; the platform's own answer comes on the upstream leg.
                if let Some(list) = &self.fourcc_list {
                    info.push(("fourCcList", list.clone()));
                }
                let props = Amf0Value::object([
                    ("fmsVer", Amf0Value::string("FMS/3,5,7,7009")),
                    ("capabilities", Amf0Value::Number(31.0)),
                    ("mode", Amf0Value::Number(1.0)),
                ]);
                self.reply("_result", tid, props, vec![Amf0Value::object(info)]);
            }
            _ if self.app.is_none() => {
                return Err(RtmpError::Protocol(format!("{} before connect", cmd.name)));
            }
            "releaseStream" | "FCPublish" | "FCUnpublish" | "_checkbw" | "getStreamLength" => {
                if cmd.name == "FCPublish" {
                    let name = cmd.first_string_arg().unwrap_or("").to_owned();
                    let info = status_object("status", "NetStream.Publish.Start", &name);
                    self.reply("onFCPublish", 0.0, Amf0Value::Null, vec![info]);
                }
                if tid != 0.0 {
                    self.reply("_result", tid, Amf0Value::Null, vec![Amf0Value::Undefined]);
                }
            }
            "createStream" => {
                let id = self.next_stream_id;
                self.next_stream_id += 1;
                self.reply(
                    "_result",
                    tid,
                    Amf0Value::Null,
                    vec![Amf0Value::Number(id as f64)],
                );
            }
            "publish" => {
                if msg.stream_id == 0 || msg.stream_id >= self.next_stream_id {
                    return Err(RtmpError::Protocol(format!(
                        "publish on stream {} that createStream did not create",
                        msg.stream_id
                    )));
                }
                let stream_key = cmd.first_string_arg().unwrap_or("").to_owned();
                let publish_type = cmd
                    .args
                    .get(1)
                    .and_then(Amf0Value::as_str)
                    .unwrap_or("live")
                    .to_owned();
                return Ok(Some(PublishRequest {
                    app: self.app.clone().unwrap_or_default(),
                    tc_url: self.tc_url.clone(),
                    stream_key,
                    publish_type,
                    stream_id: msg.stream_id,
                    fourcc_list: self.fourcc_list.clone(),
                }));
            }
            "deleteStream" | "closeStream" => {}
            other => tracing::debug!(command = other, "ignoring command"),
        }
        Ok(None)
    }

    fn reply(&mut self, name: &str, tid: f64, object: Amf0Value, args: Vec<Amf0Value>) {
        let cmd = Command::new(name, tid, object, args);
        self.conn.queue(&cmd.to_message(csid::COMMAND, 0));
    }

    fn status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        let info = status_object(level, code, description);
        let cmd = Command::new("onStatus", 0.0, Amf0Value::Null, vec![info]);
        self.conn.queue(&cmd.to_message(csid::DATA, stream_id));
    }

    /// Tells the broadcaster its publish started.
    pub async fn accept_publish(&mut self, request: &PublishRequest) -> Result<(), RtmpError> {
        self.publishing = Some(request.stream_id);
        self.conn
            .queue(&Control::User(UserControl::StreamBegin(request.stream_id)).to_message());
        let text = format!("{} is now published.", request.stream_key);
        self.status(
            request.stream_id,
            "status",
            "NetStream.Publish.Start",
            &text,
        );
        self.conn.flush().await
    }

    /// Refuses a publish with an error status (`NetStream.Publish.BadName`, …).
    pub async fn reject_publish(
        &mut self,
        request: &PublishRequest,
        code: &str,
        description: &str,
    ) -> Result<(), RtmpError> {
        self.status(request.stream_id, "error", code, description);
        self.conn.flush().await
    }

    /// Sends an error status on the published stream and closes the connection. Used when the
    /// upstream fails or a stream is cut.
    pub async fn fail(mut self, code: &str, description: &str) -> Result<(), RtmpError> {
        if let Some(stream_id) = self.publishing {
            self.status(stream_id, "error", code, description);
        }
        self.conn.shutdown().await
    }

    /// Closes the connection after a clean unpublish, once the broadcaster has hung up or
    /// `linger` has passed: closing under a client that is still sending its last commands
    /// (deleteStream after FCUnpublish) makes some, GStreamer's rtmp2sink among them, report an
    /// error for a stream that ended well.
    pub async fn close(mut self, linger: Duration) -> Result<(), RtmpError> {
        if let Some(stream_id) = self.publishing.take() {
            self.status(
                stream_id,
                "status",
                "NetStream.Unpublish.Success",
                "Stream unpublished.",
            );
        }
        self.conn.flush().await?;
        let hang_up = async { while let Ok(Some(_)) = self.conn.read_message().await {} };
        let _ = tokio::time::timeout(linger, hang_up).await;
        self.conn.shutdown().await
    }

    /// The next thing the publishing broadcaster did. Cancel-safe: replies are only queued, and
    /// go out with [`flush`](Self::flush).
    pub async fn next_event(&mut self) -> Result<PublisherEvent, RtmpError> {
        loop {
            let Some(msg) = self.conn.read_message().await? else {
                return Ok(PublisherEvent::Closed);
            };
            if msg.is_media() {
                if Some(msg.stream_id) == self.publishing {
                    return Ok(PublisherEvent::Media(msg));
                }
                tracing::debug!(stream_id = msg.stream_id, "media on an unpublished stream");
                continue;
            }
            if !matches!(msg.type_id, kind::COMMAND_AMF0 | kind::COMMAND_AMF3) {
                continue;
            }
            let cmd = Command::parse(&msg)?;
            match cmd.name.as_str() {
                "FCUnpublish" | "deleteStream" | "closeStream" => {
                    if cmd.transaction_id != 0.0 && cmd.name == "FCUnpublish" {
                        self.reply("_result", cmd.transaction_id, Amf0Value::Null, vec![]);
                    }
                    return Ok(PublisherEvent::Unpublished);
                }
                "publish" => {
                    return Err(RtmpError::Protocol(
                        "second publish on one connection".into(),
                    ))
                }
                _ => {
                    if cmd.transaction_id != 0.0 {
                        self.reply("_result", cmd.transaction_id, Amf0Value::Null, vec![]);
                    }
                }
            }
        }
    }

    /// Sends queued replies (acknowledgements, pongs, command results).
    pub async fn flush(&mut self) -> Result<(), RtmpError> {
        self.conn.flush().await
    }
}
