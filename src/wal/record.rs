//! WAL framing: the segment header and the record frame.
//!
//! ```text
//! segment header (24 bytes)
//! +------+-------+------+-----------+------------+------+
//! | magic|version| rsvd | first_lsn | header crc | rsvd |
//! |  4   |   2   |  2   |    8      |     4      |  4   |
//! +------+-------+------+-----------+------------+------+
//!
//! record (16-byte frame + payload)
//! +-----------+-----------+-------+----------------------------+
//! | len (u32) | crc (u32) |  lsn  | payload (len bytes)        |
//! +-----------+-----------+-------+----------------------------+
//! crc = crc32(len ‖ lsn ‖ payload)
//! payload = op (1 = put, 2 = delete) ‖ key_len u32 ‖ key ‖ [val_len u32 ‖ value]
//! ```
//!
//! All integers are little-endian.

/// Segment magic.
pub(crate) const MAGIC: [u8; 4] = *b"CKWL";
/// Segment format version.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// Segment header length.
pub(crate) const SEGMENT_HEADER_LEN: usize = 24;
/// Record frame length (before the payload).
pub(crate) const FRAME_LEN: usize = 16;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;

/// A logged operation, borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: &'a [u8],
    },
}

impl Op<'_> {
    pub(crate) fn payload_len(&self) -> usize {
        match self {
            Op::Put { key, value } => 1 + 4 + key.len() + 4 + value.len(),
            Op::Delete { key } => 1 + 4 + key.len(),
        }
    }
}

/// Encodes a segment header.
pub(crate) fn encode_segment_header(first_lsn: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32fast::hash(&h[0..16]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a segment header is invalid.
pub(crate) fn decode_segment_header(h: &[u8]) -> Result<u64, (u64, &'static str)> {
    if h.len() < SEGMENT_HEADER_LEN {
        return Err((0, "segment header is truncated"));
    }
    if h[0..4] != MAGIC {
        return Err((0, "bad WAL segment magic"));
    }
    if u16::from_le_bytes([h[4], h[5]]) != FORMAT_VERSION {
        return Err((4, "unsupported WAL format version"));
    }
    let crc = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
    if crc != crc32fast::hash(&h[0..16]) {
        return Err((16, "segment header checksum mismatch"));
    }
    Ok(read_u64(h, 8))
}

/// Appends the framed record for `op` at `lsn` to `out`.
pub(crate) fn encode_record(out: &mut Vec<u8>, lsn: u64, op: &Op<'_>) {
    let start = out.len();
    let len = op.payload_len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&lsn.to_le_bytes());
    match op {
        Op::Put { key, value } => {
            out.push(OP_PUT);
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
        Op::Delete { key } => {
            out.push(OP_DELETE);
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
        }
    }
    let crc = frame_crc(&out[start..start + 4], &out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// crc32 over `len ‖ lsn ‖ payload` (`rest` is `lsn ‖ payload`).
pub(crate) fn frame_crc(len: &[u8], rest: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len);
    h.update(rest);
    h.finalize()
}

/// Decodes a payload whose checksum was verified.
pub(crate) fn decode_payload(p: &[u8]) -> Option<Op<'_>> {
    let (&op, rest) = p.split_first()?;
    let (key, rest) = take_prefixed(rest)?;
    match op {
        OP_PUT => {
            let (value, rest) = take_prefixed(rest)?;
            rest.is_empty().then_some(Op::Put { key, value })
        }
        OP_DELETE => rest.is_empty().then_some(Op::Delete { key }),
        _ => None,
    }
}

fn take_prefixed(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(b.get(0..4)?.try_into().ok()?) as usize;
    let rest = &b[4..];
    (rest.len() >= len).then(|| rest.split_at(len))
}

pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let mut buf = Vec::new();
        let op = Op::Put {
            key: b"key",
            value: b"value",
        };
        encode_record(&mut buf, 42, &op);
        assert_eq!(buf.len(), FRAME_LEN + op.payload_len());
        assert_eq!(read_u32(&buf, 0) as usize, op.payload_len());
        assert_eq!(read_u32(&buf, 4), frame_crc(&buf[0..4], &buf[8..]));
        assert_eq!(read_u64(&buf, 8), 42);
        assert_eq!(decode_payload(&buf[FRAME_LEN..]), Some(op));
    }

    #[test]
    fn header_round_trips_and_rejects_garbage() {
        let h = encode_segment_header(7);
        assert_eq!(decode_segment_header(&h), Ok(7));
        let mut bad = h;
        bad[9] ^= 1;
        assert!(decode_segment_header(&bad).is_err());
        assert!(decode_segment_header(&h[..10]).is_err());
    }
}
