//! The codec's error. Frames ([`crate::wire`]) and option values ([`crate::options`]) both fail
//! with it, and the frame codec uses the options: kept here, it leaves options not depending
//! on wire.
use thiserror::Error;

/// Why a frame could not be decoded (or a message encoded).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("truncated frame: {have} bytes, need {need}")]
    Truncated { have: usize, need: usize },
    #[error("frame length {0} exceeds the 2048-byte maximum")]
    Oversized(usize),
    #[error("length field says {declared} bytes but the frame is {actual}")]
    BadLength { declared: usize, actual: usize },
    #[error("payload offset {offset} is outside 12..={len}")]
    BadPayloadOffset { offset: u8, len: usize },
    #[error("option {0} appears twice")]
    RepeatedOption(u16),
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    #[error("option {code} has invalid length {len}")]
    BadOptionLength { code: u16, len: usize },
    #[error("option {code} has invalid value {value}")]
    BadOptionValue { code: u16, value: u8 },
}

impl WireError {
    /// Draft-12 §6.1: unknown types 128–255 SHOULD be ignored, 0–127 MUST close the connection.
    /// (ISC closes on anything above 12; we follow the draft and let the caller skip these.)
    #[must_use]
    pub fn is_ignorable(&self) -> bool {
        matches!(self, Self::UnknownMessageType(t) if *t >= 128)
    }
}
