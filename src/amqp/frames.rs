//! Frames: reading them from a socket with size and end-marker checks, and encoding the
//! frames the server sends.

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{AMQPClass, BasicProperties};

use bytes::{Buf, BytesMut};

use super::failure::Failure;
use super::nesting;
use crate::ReplyCode;

/// The protocol header of AMQP 0-9-1, which a client sends first and which the server
/// answers with when it sees another one.
pub(crate) const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";

/// The byte that ends every frame.
pub(crate) const FRAME_END: u8 = 0xCE;

/// Type, channel and payload size.
const FRAME_HEADER_LEN: usize = 7;

/// Frame header plus end marker: what a frame costs beyond its payload.
pub(crate) const FRAME_OVERHEAD: u32 = 8;

/// The largest frame the server accepts or proposes (RabbitMQ's default).
pub(crate) const FRAME_MAX: u32 = 131_072;

/// Returns the size of the complete frame at the front of `input`, if it holds one,
/// never trusting a size it has not checked (and reserving room for the rest of a frame
/// that is not complete yet).
///
/// # Errors
///
/// A hard 501 FRAME_ERROR for an unknown frame type or an oversize frame.
pub(crate) fn complete(input: &mut BytesMut, frame_max: u32) -> Result<Option<usize>, Failure> {
    let Some(head) = input.get(..FRAME_HEADER_LEN) else {
        return Ok(None);
    };
    let head: [u8; FRAME_HEADER_LEN] = head.try_into().unwrap_or_default();
    let total = check_header(&head, frame_max)?;
    if input.len() < total {
        input.reserve(total - input.len());
        return Ok(None);
    }
    Ok(Some(total))
}

/// Takes the next complete frame off the front of `input`, if it holds one.
///
/// # Errors
///
/// As [`complete`]; 501 FRAME_ERROR for a bad end marker, 502 SYNTAX_ERROR for a payload
/// that does not parse.
pub(crate) fn split(input: &mut BytesMut, frame_max: u32) -> Result<Option<AMQPFrame>, Failure> {
    let Some(total) = complete(input, frame_max)? else {
        return Ok(None);
    };
    // Parsed in place, then dropped from the buffer: no second handle on its memory.
    let frame = decode(&input[..total]);
    input.advance(total);
    frame.map(Some)
}

/// Checks a frame header and returns the size of the whole frame.
fn check_header(head: &[u8; FRAME_HEADER_LEN], frame_max: u32) -> Result<usize, Failure> {
    if !matches!(head[0], 1 | 2 | 3 | 8) {
        return Err(Failure::hard(
            ReplyCode::FRAME_ERROR,
            format_args!("unknown frame type {}", head[0]),
        ));
    }
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
    if size > frame_max.saturating_sub(FRAME_OVERHEAD) {
        return Err(Failure::hard(
            ReplyCode::FRAME_ERROR,
            format_args!(
                "frame size {size} larger than negotiated maximum {}",
                frame_max.saturating_sub(FRAME_OVERHEAD)
            ),
        ));
    }
    Ok(FRAME_HEADER_LEN + size as usize + 1)
}

/// Parses one complete frame (header, payload, end marker).
pub(crate) fn decode(buf: &[u8]) -> Result<AMQPFrame, Failure> {
    if buf.last() != Some(&FRAME_END) {
        return Err(Failure::hard(
            ReplyCode::FRAME_ERROR,
            "bad frame end marker",
        ));
    }
    if buf[0] == 3 {
        // Body frames are copied in one piece, without the parser's byte-by-byte copy.
        let channel = u16::from_be_bytes([buf[1], buf[2]]);
        let payload = buf[FRAME_HEADER_LEN..buf.len() - 1].to_vec();
        return Ok(AMQPFrame::Body(channel, payload));
    }
    check_nesting(buf)?;
    match parse_frame(buf) {
        Ok(([], frame)) => Ok(frame),
        _ => Err(unparsable(buf[0])),
    }
}

/// Refuses a frame whose field tables nest too deep for the parser (502 SYNTAX_ERROR).
pub(crate) fn check_nesting(frame: &[u8]) -> Result<(), Failure> {
    if nesting::check(frame) {
        return Ok(());
    }
    Err(Failure::hard(
        ReplyCode::SYNTAX_ERROR,
        format_args!(
            "field tables nested deeper than {} levels",
            nesting::MAX_DEPTH
        ),
    ))
}

/// The error for a frame of type `kind` whose payload does not parse (502 SYNTAX_ERROR).
pub(crate) fn unparsable(kind: u8) -> Failure {
    Failure::hard(
        ReplyCode::SYNTAX_ERROR,
        format_args!("unable to parse frame of type {kind}"),
    )
}

/// Parses every frame in `bytes` the way a connection does, for fuzzing and tests: stops at
/// the first error or incomplete frame. Never panics.
#[cfg(test)]
pub(crate) fn decode_all(mut bytes: &[u8]) -> Vec<Result<AMQPFrame, String>> {
    let mut out = Vec::new();
    while bytes.len() >= FRAME_HEADER_LEN {
        let head: [u8; FRAME_HEADER_LEN] = bytes[..FRAME_HEADER_LEN].try_into().unwrap_or_default();
        let total = match check_header(&head, FRAME_MAX) {
            Ok(total) => total,
            Err(e) => {
                out.push(Err(format!("{e:?}")));
                break;
            }
        };
        if bytes.len() < total {
            break;
        }
        let (frame, rest) = bytes.split_at(total);
        bytes = rest;
        match decode(frame) {
            Ok(f) => out.push(Ok(f)),
            Err(e) => {
                out.push(Err(format!("{e:?}")));
                break;
            }
        }
    }
    out
}

/// Appends the encoding of `frame` to `out`.
fn encode_into(out: &mut Vec<u8>, frame: &AMQPFrame) {
    let buf = std::mem::take(out);
    match gen_frame(frame)(WriteContext::from(buf)) {
        Ok(ctx) => *out = ctx.into_inner().0,
        // Writing to a Vec cannot fail, and every string was checked when made.
        Err(e) => unreachable!("encoding a frame into memory failed: {e:?}"),
    }
}

/// Encodes one method frame.
pub(crate) fn method(channel: u16, method: AMQPClass) -> Vec<u8> {
    encode(&AMQPFrame::Method(channel, method))
}

/// Encodes one frame.
pub(crate) fn encode(frame: &AMQPFrame) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(&mut out, frame);
    out
}

/// Encodes a method that carries content, its content header and its body, split into
/// body frames that fit `frame_max`.
pub(crate) fn with_content(
    channel: u16,
    method: AMQPClass,
    properties: BasicProperties,
    body: &[u8],
    frame_max: u32,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    push_content(&mut out, channel, method, properties, body, frame_max);
    out
}

/// Appends what [`with_content`] returns to `out`.
pub(crate) fn push_content(
    out: &mut Vec<u8>,
    channel: u16,
    method: AMQPClass,
    properties: BasicProperties,
    body: &[u8],
    frame_max: u32,
) {
    out.reserve(128 + body.len());
    encode_into(out, &AMQPFrame::Method(channel, method));
    let header = AMQPContentHeader {
        class_id: 60,
        body_size: body.len() as u64,
        properties,
    };
    encode_into(out, &AMQPFrame::Header(channel, header));
    push_body(out, channel, body, frame_max);
}

/// Appends `body` as content body frames that fit `frame_max`.
pub(crate) fn push_body(out: &mut Vec<u8>, channel: u16, body: &[u8], frame_max: u32) {
    let chunk = frame_max.saturating_sub(FRAME_OVERHEAD).max(1) as usize;
    for part in body.chunks(chunk) {
        // Written by hand rather than through `AMQPFrame::Body`, which would copy the body.
        out.push(3);
        out.extend_from_slice(&channel.to_be_bytes());
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
        out.push(FRAME_END);
    }
}

/// Encodes a heartbeat frame.
pub(crate) fn heartbeat() -> Vec<u8> {
    vec![8, 0, 0, 0, 0, 0, 0, FRAME_END]
}

#[cfg(test)]
mod tests {
    use amq_protocol::protocol::basic;

    use super::*;

    #[test]
    fn content_is_split_at_frame_max() {
        let publish = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver::default()));
        let body = vec![7u8; 10_000];
        let bytes = with_content(1, publish, BasicProperties::default(), &body, 4096);
        let frames = decode_all(&bytes);
        let sizes: Vec<usize> = frames
            .iter()
            .filter_map(|f| match f {
                Ok(AMQPFrame::Body(1, b)) => Some(b.len()),
                _ => None,
            })
            .collect();
        assert_eq!(sizes, vec![4088, 4088, 1824]);
        assert!(matches!(frames[1], Ok(AMQPFrame::Header(1, ref h)) if h.body_size == 10_000));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(decode(&[1, 0, 0, 0, 0, 0, 0, 0xCE]).is_err());
        assert!(decode(&[1, 0, 0, 0, 0, 0, 1, 9, 0]).is_err());
        assert_eq!(
            decode(&[3, 0, 2, 0, 0, 0, 2, b'h', b'i', 0xCE]).ok(),
            Some(AMQPFrame::Body(2, b"hi".to_vec()))
        );
        let huge = [1, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(matches!(
            check_header(&huge, FRAME_MAX),
            Err(Failure::Connection {
                code: ReplyCode::FRAME_ERROR,
                ..
            })
        ));
        assert!(decode_all(&[9, 9, 9, 9, 9, 9, 9, 9])
            .iter()
            .all(Result::is_err));
    }
}
