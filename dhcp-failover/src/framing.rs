//! Splitting a TCP byte stream into failover frames.
//!
//! TCP hands us arbitrary slices: ISC packs ten BNDACKs into one segment and a segment may end in
//! the middle of a header. The length field is the only framing there is, so once it is
//! implausible the rest of the stream cannot be trusted and the decoder stays failed; the caller
//! drops the connection.

use crate::wire::{self, HEADER_LEN, MAX_MESSAGE_LEN, Message, WireError};

/// Accumulates stream bytes and yields whole frames.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    failed: Option<WireError>,
}

impl FrameDecoder {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        // Compact only when the consumed prefix dominates, so a burst of small frames costs
        // amortised O(n) rather than a memmove per frame.
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as frames.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed. After an error every later
    /// call returns the same error.
    pub fn pop_frame(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let pending = &self.buf[self.start..];
        if pending.len() < 2 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([pending[0], pending[1]]));
        let error = if len > MAX_MESSAGE_LEN {
            Some(WireError::Oversized(len))
        } else if len < HEADER_LEN {
            Some(WireError::BadLength { declared: len, actual: HEADER_LEN })
        } else {
            None
        };
        if let Some(e) = error {
            self.failed = Some(e.clone());
            return Err(e);
        }
        if pending.len() < len {
            return Ok(None);
        }
        let frame = pending[..len].to_vec();
        self.start += len;
        Ok(Some(frame))
    }

    /// The next whole frame, decoded. A frame that is well delimited but does not decode is
    /// consumed and reported; whether that is fatal is the caller's call (see
    /// [`WireError::is_ignorable`]), since the stream itself is still in sync.
    pub fn pop_message(&mut self) -> Result<Option<Message>, WireError> {
        match self.pop_frame()? {
            Some(frame) => wire::decode(&frame).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MessageType;

    const CONTACT: [u8; 12] = [0, 12, 11, 12, 0, 0, 0, 1, 0, 0, 0, 2];

    #[test]
    fn frames_split_across_reads_come_out_whole() {
        let mut d = FrameDecoder::new();
        let stream = [CONTACT, CONTACT].concat();
        d.push(&stream[..5]);
        assert_eq!(d.pop_frame(), Ok(None));
        d.push(&stream[5..17]);
        assert_eq!(d.pop_frame(), Ok(Some(CONTACT.to_vec())));
        assert_eq!(d.pop_frame(), Ok(None));
        d.push(&stream[17..]);
        let m = d.pop_message().unwrap().unwrap();
        assert_eq!(m.kind, MessageType::Contact);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn garbage_length_poisons_the_stream() {
        let mut d = FrameDecoder::new();
        d.push(&[0xff, 0xff, 1, 2, 3]);
        assert_eq!(d.pop_frame(), Err(WireError::Oversized(0xffff)));
        d.push(&CONTACT);
        assert_eq!(d.pop_frame(), Err(WireError::Oversized(0xffff)));

        let mut d = FrameDecoder::new();
        d.push(&[0, 3, 1]);
        assert!(matches!(d.pop_frame(), Err(WireError::BadLength { declared: 3, .. })));
    }

    #[test]
    fn an_undecodable_but_delimited_frame_does_not_desync_the_stream() {
        let mut d = FrameDecoder::new();
        let mut unknown = CONTACT;
        unknown[2] = 200;
        d.push(&[unknown, CONTACT].concat());
        assert_eq!(d.pop_message(), Err(WireError::UnknownMessageType(200)));
        assert_eq!(d.pop_message().unwrap().unwrap().kind, MessageType::Contact);
    }
}
