//! The client session towards the platform: dial, handshake, connect (with tcUrl and the
//! broadcaster's Enhanced RTMP `fourCcList`), releaseStream, FCPublish, createStream, publish;
//! then media; then FCUnpublish and deleteStream.

use std::time::Duration;

use super::amf0::Amf0Value;
use super::chunk::DecoderLimits;
use super::connection::Connection;
use super::error::RtmpError;
use super::handshake::{self, HandshakeKind};
use super::message::{csid, kind, Command, Message};
use super::server::OUT_CHUNK_SIZE;
use super::tls::{self, TlsClient};
use super::url::RtmpUrl;

/// What to publish where.
#[derive(Debug, Clone)]
pub struct PublishTarget {
    /// Upstream URL (`rtmp[s]://host[:port]/app`).
    pub url: RtmpUrl,
    /// Stream name to publish under.
    pub stream_key: String,
    /// Publishing type (`live` unless the broadcaster asked otherwise).
    pub publish_type: String,
    /// Enhanced RTMP `fourCcList` to offer, as the broadcaster sent it.
    pub fourcc_list: Option<Amf0Value>,
}

/// Something the platform sent while we publish.
#[derive(Debug)]
pub enum UpstreamEvent {
    /// Nothing that needs action (acknowledgement, status, bandwidth check).
    Nothing,
    /// The platform closed the connection.
    Closed,
}

/// An established publish towards the platform.
pub struct UpstreamPublisher {
    conn: Connection,
    stream_id: u32,
    stream_key: String,
    /// Handshake variant the platform answered with.
    pub handshake: HandshakeKind,
}

impl UpstreamPublisher {
    /// Dials the platform and runs the whole publish sequence. Each step has `step_timeout`.
    pub async fn publish(
        target: &PublishTarget,
        tls: Option<&TlsClient>,
        limits: DecoderLimits,
        step_timeout: Duration,
    ) -> Result<UpstreamPublisher, RtmpError> {
        let mut io = tls::dial(&target.url, tls, step_timeout).await?;
        let handshake = handshake::connect(&mut io, step_timeout).await?;
        let mut conn = Connection::new(io, limits);
        conn.set_chunk_size(OUT_CHUNK_SIZE);

        let mut props = vec![
            ("app", Amf0Value::string(target.url.app.clone())),
            ("type", Amf0Value::string("nonprivate")),
            (
                "flashVer",
                Amf0Value::string("FMLE/3.0 (compatible; hashgate)"),
            ),
            ("tcUrl", Amf0Value::string(target.url.tc_url())),
        ];
        if let Some(list) = &target.fourcc_list {
            props.push(("fourCcList", list.clone()));
        }
        let connect = Command::new("connect", 1.0, Amf0Value::object(props), vec![]);
        conn.send(&connect.to_message(csid::COMMAND, 0)).await?;
        expect_result(&mut conn, 1.0, "connect", step_timeout).await?;

        let key = Amf0Value::string(target.stream_key.clone());
        for (tid, name) in [(2.0, "releaseStream"), (3.0, "FCPublish")] {
            let cmd = Command::new(name, tid, Amf0Value::Null, vec![key.clone()]);
            conn.queue(&cmd.to_message(csid::COMMAND, 0));
        }
        let create = Command::new("createStream", 4.0, Amf0Value::Null, vec![]);
        conn.send(&create.to_message(csid::COMMAND, 0)).await?;
        let created = expect_result(&mut conn, 4.0, "createStream", step_timeout).await?;
        let stream_id = created
            .args
            .first()
            .and_then(Amf0Value::as_number)
            .filter(|id| *id >= 1.0 && *id <= u32::MAX as f64)
            .ok_or_else(|| RtmpError::Protocol("createStream result without a stream id".into()))?
            as u32;

        let publish = Command::new(
            "publish",
            5.0,
            Amf0Value::Null,
            vec![key, Amf0Value::string(target.publish_type.clone())],
        );
        conn.send(&publish.to_message(csid::DATA, stream_id))
            .await?;
        expect_publish_start(&mut conn, step_timeout).await?;
        Ok(UpstreamPublisher {
            conn,
            stream_id,
            stream_key: target.stream_key.clone(),
            handshake,
        })
    }

    /// Queues a media message for the platform: same type, timestamp and payload (shared, not
    /// copied), on our stream id.
    pub fn queue_media(&mut self, msg: &Message) {
        let chunk_stream = match msg.type_id {
            kind::AUDIO => csid::AUDIO,
            kind::VIDEO => csid::VIDEO,
            _ => csid::DATA,
        };
        self.conn.queue(&Message {
            csid: chunk_stream,
            stream_id: self.stream_id,
            ..msg.clone()
        });
    }

    /// Sends what is queued.
    pub async fn flush(&mut self) -> Result<(), RtmpError> {
        self.conn.flush().await
    }

    /// Bytes sent to the platform since the handshake.
    pub fn bytes_written(&self) -> u64 {
        self.conn.bytes_written()
    }

    /// Reads what the platform sends while we publish. Cancel-safe. An error status (the
    /// platform dropped the publish) comes back as [`RtmpError::Refused`].
    pub async fn next_event(&mut self) -> Result<UpstreamEvent, RtmpError> {
        let Some(msg) = self.conn.read_message().await? else {
            return Ok(UpstreamEvent::Closed);
        };
        if matches!(msg.type_id, kind::COMMAND_AMF0 | kind::COMMAND_AMF3) {
            let cmd = Command::parse(&msg)?;
            check_status(&cmd)?;
        }
        Ok(UpstreamEvent::Nothing)
    }

    /// Ends the publish cleanly: FCUnpublish, deleteStream, close. Returns the bytes sent to
    /// the platform in all.
    pub async fn unpublish(mut self) -> Result<u64, RtmpError> {
        let key = Amf0Value::string(self.stream_key.clone());
        let fc = Command::new("FCUnpublish", 6.0, Amf0Value::Null, vec![key]);
        self.conn.queue(&fc.to_message(csid::COMMAND, 0));
        let delete = Command::new(
            "deleteStream",
            7.0,
            Amf0Value::Null,
            vec![Amf0Value::Number(self.stream_id as f64)],
        );
        self.conn.queue(&delete.to_message(csid::COMMAND, 0));
        self.conn.shutdown().await?;
        Ok(self.conn.bytes_written())
    }
}

fn status_field<'a>(cmd: &'a Command, field: &str) -> &'a str {
    cmd.args
        .first()
        .or(Some(&cmd.object))
        .and_then(|info| info.get(field))
        .and_then(Amf0Value::as_str)
        .unwrap_or("")
}

/// An `onStatus` with level `error` is a refusal.
fn check_status(cmd: &Command) -> Result<(), RtmpError> {
    if cmd.name == "onStatus" && status_field(cmd, "level") == "error" {
        return Err(RtmpError::Refused {
            code: status_field(cmd, "code").to_owned(),
            description: status_field(cmd, "description").to_owned(),
        });
    }
    Ok(())
}

async fn next_command(
    conn: &mut Connection,
    limit: Duration,
    step: &'static str,
) -> Result<Command, RtmpError> {
    loop {
        let msg = tokio::time::timeout(limit, conn.read_message())
            .await
            .map_err(|_| RtmpError::Timeout(step))??
            .ok_or(RtmpError::Closed)?;
        conn.flush().await?;
        if matches!(msg.type_id, kind::COMMAND_AMF0 | kind::COMMAND_AMF3) {
            return Ok(Command::parse(&msg)?);
        }
    }
}

async fn expect_result(
    conn: &mut Connection,
    tid: f64,
    what: &'static str,
    limit: Duration,
) -> Result<Command, RtmpError> {
    loop {
        let cmd = next_command(conn, limit, "waiting for the upstream's reply").await?;
        check_status(&cmd)?;
        if cmd.transaction_id != tid {
            continue;
        }
        match cmd.name.as_str() {
            "_result" => return Ok(cmd),
            "_error" => {
                let code = status_field(&cmd, "code");
                return Err(RtmpError::Refused {
                    code: if code.is_empty() {
                        what.to_owned()
                    } else {
                        code.to_owned()
                    },
                    description: status_field(&cmd, "description").to_owned(),
                });
            }
            _ => {}
        }
    }
}

async fn expect_publish_start(conn: &mut Connection, limit: Duration) -> Result<(), RtmpError> {
    loop {
        let cmd = next_command(conn, limit, "waiting for NetStream.Publish.Start").await?;
        check_status(&cmd)?;
        if cmd.name == "_error" {
            return Err(RtmpError::Refused {
                code: "publish".to_owned(),
                description: status_field(&cmd, "description").to_owned(),
            });
        }
        if cmd.name == "onStatus" && status_field(&cmd, "code") == "NetStream.Publish.Start" {
            return Ok(());
        }
    }
}
