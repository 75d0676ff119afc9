//! AMF0 values: decoding and encoding for RTMP commands and metadata.
//!
//! Only AMF0 is interpreted. AMF3 payloads (message types 15, 16, 17) are forwarded untouched by
//! the relay; an AMF0 body that switches to AMF3 (marker 0x11) decodes as [`Amf0Value::Avmplus`]
//! holding the rest of the bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Nesting deeper than this is refused: a hostile peer must not be able to exhaust the stack.
const MAX_DEPTH: usize = 32;

/// One AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    /// IEEE 754 double (marker 0x00).
    Number(f64),
    /// Boolean (marker 0x01).
    Boolean(bool),
    /// UTF-8 string, short (0x02) or long (0x0C) form.
    String(String),
    /// Anonymous object (0x03): ordered key/value pairs.
    Object(Vec<(String, Amf0Value)>),
    /// Null (0x05).
    Null,
    /// Undefined (0x06).
    Undefined,
    /// Reference to an earlier complex value (0x07), kept as its index.
    Reference(u16),
    /// ECMA array (0x08): associative array, as used by onMetaData.
    EcmaArray(Vec<(String, Amf0Value)>),
    /// Strict array (0x0A).
    StrictArray(Vec<Amf0Value>),
    /// Date (0x0B): milliseconds since the epoch and a time-zone field.
    Date(f64, i16),
    /// XML document (0x0F), as its text.
    XmlDocument(String),
    /// Typed object (0x10): class name and properties.
    TypedObject(String, Vec<(String, Amf0Value)>),
    /// Switch to AMF3 (0x11): the remaining bytes, uninterpreted.
    Avmplus(Bytes),
    /// Unsupported (0x0D).
    Unsupported,
}

/// Why an AMF0 body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AmfError {
    /// The body ended inside a value.
    #[error("AMF0 value truncated")]
    Truncated,
    /// A type marker this decoder does not know.
    #[error("unknown AMF0 type marker 0x{0:02x}")]
    UnknownMarker(u8),
    /// A string that is not UTF-8.
    #[error("AMF0 string is not valid UTF-8")]
    InvalidUtf8,
    /// Objects or arrays nested deeper than the limit.
    #[error("AMF0 values nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// An object whose key list did not end with the end-of-object marker.
    #[error("AMF0 object without end marker")]
    MissingObjectEnd,
}

impl Amf0Value {
    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number inside, if this is a number.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The property `key` of an object, ECMA array or typed object.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        match self {
            Amf0Value::Object(props)
            | Amf0Value::EcmaArray(props)
            | Amf0Value::TypedObject(_, props) => {
                props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Shorthand for a string value.
    pub fn string(s: impl Into<String>) -> Amf0Value {
        Amf0Value::String(s.into())
    }

    /// Shorthand for an object from `(key, value)` pairs.
    pub fn object<K: Into<String>>(props: impl IntoIterator<Item = (K, Amf0Value)>) -> Amf0Value {
        Amf0Value::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

/// Decodes every value in `body`.
pub fn decode_all(mut body: Bytes) -> Result<Vec<Amf0Value>, AmfError> {
    let mut values = Vec::new();
    while body.has_remaining() {
        values.push(decode_value(&mut body, 0)?);
    }
    Ok(values)
}

/// Decodes one value from the front of `buf`.
pub fn decode_value(buf: &mut Bytes, depth: usize) -> Result<Amf0Value, AmfError> {
    if depth > MAX_DEPTH {
        return Err(AmfError::TooDeep);
    }
    let marker = take_u8(buf)?;
    Ok(match marker {
        0x00 => Amf0Value::Number(take_f64(buf)?),
        0x01 => Amf0Value::Boolean(take_u8(buf)? != 0),
        0x02 => Amf0Value::String(take_string(buf, false)?),
        0x03 => Amf0Value::Object(take_properties(buf, depth)?),
        0x05 => Amf0Value::Null,
        0x06 => Amf0Value::Undefined,
        0x07 => Amf0Value::Reference(take_u16(buf)?),
        0x08 => {
            // The count is a hint only: real encoders get it wrong, the end marker is what counts.
            take_u32(buf)?;
            Amf0Value::EcmaArray(take_properties(buf, depth)?)
        }
        0x0A => {
            let count = take_u32(buf)? as usize;
            // Every element takes at least one byte, so a count beyond the body is a lie.
            if count > buf.remaining() {
                return Err(AmfError::Truncated);
            }
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                items.push(decode_value(buf, depth + 1)?);
            }
            Amf0Value::StrictArray(items)
        }
        0x0B => {
            let millis = take_f64(buf)?;
            let tz = take_u16(buf)? as i16;
            Amf0Value::Date(millis, tz)
        }
        0x0C => Amf0Value::String(take_string(buf, true)?),
        0x0D => Amf0Value::Unsupported,
        0x0F => Amf0Value::XmlDocument(take_string(buf, true)?),
        0x10 => {
            let class = take_string(buf, false)?;
            Amf0Value::TypedObject(class, take_properties(buf, depth)?)
        }
        0x11 => Amf0Value::Avmplus(buf.split_to(buf.remaining())),
        other => return Err(AmfError::UnknownMarker(other)),
    })
}

fn take_properties(buf: &mut Bytes, depth: usize) -> Result<Vec<(String, Amf0Value)>, AmfError> {
    let mut props = Vec::new();
    loop {
        if buf.remaining() < 2 {
            return Err(AmfError::MissingObjectEnd);
        }
        let key = take_string(buf, false)?;
        if key.is_empty() && buf.first() == Some(&0x09) {
            buf.advance(1);
            return Ok(props);
        }
        let value = decode_value(buf, depth + 1)?;
        props.push((key, value));
    }
}

fn take_u8(buf: &mut Bytes) -> Result<u8, AmfError> {
    if buf.remaining() < 1 {
        return Err(AmfError::Truncated);
    }
    Ok(buf.get_u8())
}

fn take_u16(buf: &mut Bytes) -> Result<u16, AmfError> {
    if buf.remaining() < 2 {
        return Err(AmfError::Truncated);
    }
    Ok(buf.get_u16())
}

fn take_u32(buf: &mut Bytes) -> Result<u32, AmfError> {
    if buf.remaining() < 4 {
        return Err(AmfError::Truncated);
    }
    Ok(buf.get_u32())
}

fn take_f64(buf: &mut Bytes) -> Result<f64, AmfError> {
    if buf.remaining() < 8 {
        return Err(AmfError::Truncated);
    }
    Ok(buf.get_f64())
}

fn take_string(buf: &mut Bytes, long: bool) -> Result<String, AmfError> {
    let len = if long {
        take_u32(buf)? as usize
    } else {
        take_u16(buf)? as usize
    };
    if buf.remaining() < len {
        return Err(AmfError::Truncated);
    }
    let raw = buf.split_to(len);
    String::from_utf8(raw.to_vec()).map_err(|_| AmfError::InvalidUtf8)
}

/// Appends the encoding of `value` to `out`.
pub fn encode_value(value: &Amf0Value, out: &mut BytesMut) {
    match value {
        Amf0Value::Number(n) => {
            out.put_u8(0x00);
            out.put_f64(*n);
        }
        Amf0Value::Boolean(b) => {
            out.put_u8(0x01);
            out.put_u8(u8::from(*b));
        }
        Amf0Value::String(s) => {
            if s.len() > u16::MAX as usize {
                out.put_u8(0x0C);
                put_string(out, s, true);
            } else {
                out.put_u8(0x02);
                put_string(out, s, false);
            }
        }
        Amf0Value::Object(props) => {
            out.put_u8(0x03);
            put_properties(out, props);
        }
        Amf0Value::Null => out.put_u8(0x05),
        Amf0Value::Undefined => out.put_u8(0x06),
        Amf0Value::Reference(index) => {
            out.put_u8(0x07);
            out.put_u16(*index);
        }
        Amf0Value::EcmaArray(props) => {
            out.put_u8(0x08);
            out.put_u32(props.len() as u32);
            put_properties(out, props);
        }
        Amf0Value::StrictArray(items) => {
            out.put_u8(0x0A);
            out.put_u32(items.len() as u32);
            for item in items {
                encode_value(item, out);
            }
        }
        Amf0Value::Date(millis, tz) => {
            out.put_u8(0x0B);
            out.put_f64(*millis);
            out.put_i16(*tz);
        }
        Amf0Value::XmlDocument(s) => {
            out.put_u8(0x0F);
            put_string(out, s, true);
        }
        Amf0Value::TypedObject(class, props) => {
            out.put_u8(0x10);
            put_string(out, class, false);
            put_properties(out, props);
        }
        Amf0Value::Avmplus(rest) => {
            out.put_u8(0x11);
            out.put_slice(rest);
        }
        Amf0Value::Unsupported => out.put_u8(0x0D),
    }
}

/// Encodes a sequence of values into one body.
pub fn encode_all(values: &[Amf0Value]) -> Bytes {
    let mut out = BytesMut::with_capacity(128);
    for value in values {
        encode_value(value, &mut out);
    }
    out.freeze()
}

fn put_string(out: &mut BytesMut, s: &str, long: bool) {
    if long {
        out.put_u32(s.len() as u32);
    } else {
        // Keys and short strings longer than 65535 bytes cannot be represented; truncating at a
        // char boundary keeps the output decodable.
        let mut end = s.len().min(u16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        out.put_u16(end as u16);
        out.put_slice(&s.as_bytes()[..end]);
        return;
    }
    out.put_slice(s.as_bytes());
}

fn put_properties(out: &mut BytesMut, props: &[(String, Amf0Value)]) {
    for (key, value) in props {
        put_string(out, key, false);
        encode_value(value, out);
    }
    out.put_slice(&[0x00, 0x00, 0x09]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_connect_command_bytes() {
        // "connect", 1.0, {app: "live"} as a Flash client encodes it.
        let mut raw = vec![0x02, 0x00, 0x07];
        raw.extend_from_slice(b"connect");
        raw.push(0x00);
        raw.extend_from_slice(&1.0f64.to_be_bytes());
        raw.extend_from_slice(&[0x03, 0x00, 0x03]);
        raw.extend_from_slice(b"app");
        raw.extend_from_slice(&[0x02, 0x00, 0x04]);
        raw.extend_from_slice(b"live");
        raw.extend_from_slice(&[0x00, 0x00, 0x09]);
        let values = decode_all(Bytes::from(raw.clone())).expect("valid AMF0");
        assert_eq!(values[0], Amf0Value::string("connect"));
        assert_eq!(values[1], Amf0Value::Number(1.0));
        assert_eq!(values[2].get("app"), Some(&Amf0Value::string("live")));
        assert_eq!(encode_all(&values).as_ref(), raw.as_slice());
    }

    #[test]
    fn round_trips_every_kind() {
        let values = vec![
            Amf0Value::Number(-2.5),
            Amf0Value::Boolean(true),
            Amf0Value::string("héllo"),
            Amf0Value::object([("a", Amf0Value::Null), ("b", Amf0Value::Undefined)]),
            Amf0Value::EcmaArray(vec![("duration".into(), Amf0Value::Number(0.0))]),
            Amf0Value::StrictArray(vec![Amf0Value::string("av01"), Amf0Value::string("hvc1")]),
            Amf0Value::Date(1.5e12, 0),
            Amf0Value::XmlDocument("<a/>".into()),
            Amf0Value::TypedObject("C".into(), vec![("x".into(), Amf0Value::Number(1.0))]),
            Amf0Value::Reference(3),
            Amf0Value::Unsupported,
            Amf0Value::string("x".repeat(70_000)),
        ];
        let body = encode_all(&values);
        assert_eq!(decode_all(body).expect("round trip"), values);
    }

    #[test]
    fn ecma_array_count_is_only_a_hint() {
        // Count says 5, but only one property follows before the end marker.
        let mut raw = vec![0x08, 0, 0, 0, 5, 0, 1, b'w', 0x00];
        raw.extend_from_slice(&640.0f64.to_be_bytes());
        raw.extend_from_slice(&[0, 0, 9]);
        let values = decode_all(Bytes::from(raw)).expect("lenient count");
        assert_eq!(values[0].get("w"), Some(&Amf0Value::Number(640.0)));
    }

    #[test]
    fn rejects_garbage_cleanly() {
        assert_eq!(
            decode_all(Bytes::from_static(&[0x00, 1, 2])),
            Err(AmfError::Truncated)
        );
        assert_eq!(
            decode_all(Bytes::from_static(&[0xFE])),
            Err(AmfError::UnknownMarker(0xFE))
        );
        assert_eq!(
            decode_all(Bytes::from_static(&[0x02, 0, 2, 0xFF, 0xFE])),
            Err(AmfError::InvalidUtf8)
        );
        assert_eq!(
            decode_all(Bytes::from_static(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05])),
            Err(AmfError::Truncated)
        );
        assert_eq!(
            decode_all(Bytes::from_static(&[0x03, 0, 1, b'a', 0x05])),
            Err(AmfError::MissingObjectEnd)
        );
        let deep: Vec<u8> = std::iter::repeat_n([0x0Au8, 0, 0, 0, 1], 100)
            .flatten()
            .collect();
        assert_eq!(decode_all(Bytes::from(deep)), Err(AmfError::TooDeep));
    }
}
