//! WAL replay: validates a segment record by record.
//!
//! Policy (see `docs/design.md`, "Recovery rules"):
//! - A record that fails validation (incomplete frame, a length running
//!   past the end of the file, a checksum mismatch, zeros) is a **torn
//!   tail** only if it is in the **last** segment and no valid record frame
//!   starts anywhere after its first byte ([`valid_frame_after`]: a frame
//!   that fits in the file, whose checksum matches and whose LSN is at
//!   least the one the bad record should have had). The caller truncates
//!   the file at `valid_len`.
//! - Anything else is corruption, reported with the file and offset: a bad
//!   record with a valid one after it, a malformed payload or an LSN out of
//!   sequence in a record whose checksum matches, or any damage in a
//!   segment that is not the last.

use std::path::Path;

use super::record::{
    decode_payload, decode_segment_header, frame_crc, read_u32, read_u64, Op, FRAME_LEN,
    SEGMENT_HEADER_LEN,
};
use crate::error::Corruption;

/// Whether the segment is the newest one (the only one allowed a torn tail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    /// The newest segment.
    Last,
    /// Any older segment.
    Sealed,
}

/// How a segment scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentEnd {
    /// The first LSN the header announces (`None` if the header is torn).
    pub(crate) first_lsn: Option<u64>,
    /// Bytes of valid header and records.
    pub(crate) valid_len: u64,
    /// LSN of the last valid record.
    pub(crate) last_lsn: Option<u64>,
    /// Whether bytes after `valid_len` were discarded as a torn tail.
    pub(crate) torn: bool,
}

/// Scans one segment, calling `f` for each valid record in order.
///
/// `prev_lsn` is the LSN of the last record of the previous segment, if
/// any; the first record must follow it.
pub(crate) fn scan_segment(
    path: &Path,
    data: &[u8],
    position: Position,
    prev_lsn: Option<u64>,
    mut f: impl FnMut(u64, Op<'_>),
) -> Result<SegmentEnd, Corruption> {
    let last = position == Position::Last;
    let corrupt = |offset: usize, reason| Corruption::new(path, offset as u64, reason);
    let first_lsn = match decode_segment_header(data) {
        Ok(lsn) => lsn,
        Err(_) if last && data.len() < SEGMENT_HEADER_LEN => {
            return Ok(SegmentEnd {
                first_lsn: None,
                valid_len: 0,
                last_lsn: None,
                torn: !data.is_empty(),
            })
        }
        Err((offset, reason)) => return Err(corrupt(offset as usize, reason)),
    };
    if let Some(prev) = prev_lsn {
        if first_lsn != prev + 1 {
            return Err(corrupt(
                8,
                "segment does not start right after the previous one",
            ));
        }
    }
    let mut expected = first_lsn;
    let mut off = SEGMENT_HEADER_LEN;
    let mut last_lsn = None;
    let torn_end = |off: usize, last_lsn: Option<u64>| SegmentEnd {
        first_lsn: Some(first_lsn),
        valid_len: off as u64,
        last_lsn,
        torn: true,
    };
    while off < data.len() {
        let rest = &data[off..];
        // Why the record at `off` is bad, if it is.
        let bad = if rest.len() < FRAME_LEN {
            Some("truncated record frame")
        } else {
            let len = read_u32(rest, 0) as usize;
            match FRAME_LEN.checked_add(len).filter(|&e| e <= rest.len()) {
                None => Some("record length runs past the end of the segment"),
                Some(end) if read_u32(rest, 4) != frame_crc(&rest[0..4], &rest[8..end]) => {
                    Some("record checksum mismatch")
                }
                Some(end) => {
                    let lsn = read_u64(rest, 8);
                    if lsn != expected {
                        return Err(corrupt(off + 8, "record LSN out of sequence"));
                    }
                    let op = decode_payload(&rest[FRAME_LEN..end])
                        .ok_or_else(|| corrupt(off + FRAME_LEN, "malformed record payload"))?;
                    f(lsn, op);
                    last_lsn = Some(lsn);
                    expected = lsn + 1;
                    off += end;
                    None
                }
            }
        };
        if let Some(reason) = bad {
            if last && valid_frame_after(data, off, expected).is_none() {
                return Ok(torn_end(off, last_lsn));
            }
            return Err(corrupt(off, reason));
        }
    }
    Ok(SegmentEnd {
        first_lsn: Some(first_lsn),
        valid_len: off as u64,
        last_lsn,
        torn: false,
    })
}

/// The offset of the first valid record frame that starts after `bad`
/// (the offset of a record that failed validation): at least
/// [`FRAME_LEN`] bytes, a length that fits in `data`, a matching checksum,
/// and an LSN of at least `min_lsn` (the LSN the bad record should have
/// had). Bytes left by a torn write (a prefix of the last record, then
/// possibly zeros) contain none, so finding one means the bad record is
/// damage in the middle of the log.
pub(crate) fn valid_frame_after(data: &[u8], bad: usize, min_lsn: u64) -> Option<usize> {
    // Every record after `bad` takes at least FRAME_LEN bytes: an LSN
    // beyond this bound cannot be a real successor.
    let max_lsn = min_lsn.saturating_add((data.len() / FRAME_LEN) as u64);
    (bad + 1..data.len().saturating_sub(FRAME_LEN - 1)).find(|&at| {
        let rest = &data[at..];
        let lsn = read_u64(rest, 8);
        if !(min_lsn..=max_lsn).contains(&lsn) {
            return false;
        }
        let len = read_u32(rest, 0) as usize;
        FRAME_LEN
            .checked_add(len)
            .filter(|&end| end <= rest.len())
            .is_some_and(|end| read_u32(rest, 4) == frame_crc(&rest[0..4], &rest[8..end]))
    })
}

#[cfg(test)]
mod tests {
    use super::super::record::{encode_record, encode_segment_header};
    use super::*;

    fn segment(n: u64) -> Vec<u8> {
        let mut d = encode_segment_header(1).to_vec();
        for lsn in 1..=n {
            encode_record(
                &mut d,
                lsn,
                &Op::Put {
                    key: b"k",
                    value: &[lsn as u8; 5],
                },
            );
        }
        d
    }

    fn scan(d: &[u8], pos: Position) -> Result<SegmentEnd, Corruption> {
        scan_segment(Path::new("wal"), d, pos, None, |_, _| {})
    }

    #[test]
    fn every_cut_of_the_last_segment_is_a_torn_tail() {
        let full = segment(3);
        let rec = (full.len() - SEGMENT_HEADER_LEN) / 3;
        for cut in SEGMENT_HEADER_LEN..full.len() {
            let end = scan(&full[..cut], Position::Last).unwrap();
            let whole = (cut - SEGMENT_HEADER_LEN) / rec;
            assert_eq!(end.valid_len as usize, SEGMENT_HEADER_LEN + whole * rec);
            assert_eq!(end.torn, !(cut - SEGMENT_HEADER_LEN).is_multiple_of(rec));
            assert!(scan(&full[..cut], Position::Sealed).is_err() || !end.torn);
        }
    }

    #[test]
    fn mid_log_flip_is_corruption_with_offset() {
        let mut d = segment(3);
        let rec = (d.len() - SEGMENT_HEADER_LEN) / 3;
        d[SEGMENT_HEADER_LEN + rec + FRAME_LEN + 2] ^= 0x40;
        let err = scan(&d, Position::Last).unwrap_err();
        assert_eq!(err.offset as usize, SEGMENT_HEADER_LEN + rec);
        assert_eq!(err.reason, "record checksum mismatch");
    }

    #[test]
    fn last_record_flip_is_torn() {
        let mut d = segment(3);
        let n = d.len();
        d[n - 1] ^= 1;
        let end = scan(&d, Position::Last).unwrap();
        assert!(end.torn);
        assert_eq!(end.last_lsn, Some(2));
    }

    #[test]
    fn bad_length_with_valid_records_after_is_corruption() {
        // A length flipped to run past the end of the file, in the middle
        // of the newest segment, must not pass for a torn tail: that would
        // drop every record after it.
        let mut d = segment(5);
        let rec = (d.len() - SEGMENT_HEADER_LEN) / 5;
        d[SEGMENT_HEADER_LEN + rec + 3] ^= 0x80;
        let err = scan(&d, Position::Last).unwrap_err();
        assert_eq!(err.offset as usize, SEGMENT_HEADER_LEN + rec);
        assert_eq!(err.reason, "record length runs past the end of the segment");
        assert_eq!(
            valid_frame_after(&d, SEGMENT_HEADER_LEN + rec, 2),
            Some(SEGMENT_HEADER_LEN + 2 * rec)
        );
    }

    #[test]
    fn torn_prefix_then_zeros_is_torn() {
        let full = segment(3);
        let rec = (full.len() - SEGMENT_HEADER_LEN) / 3;
        for cut in full.len() - rec..full.len() {
            let mut d = full[..cut].to_vec();
            d.resize(full.len() + 100, 0);
            let end = scan(&d, Position::Last).unwrap();
            assert!(end.torn);
            assert_eq!(end.last_lsn, Some(2), "cut {cut}");
            assert_eq!(end.valid_len as usize, full.len() - rec);
        }
    }
}
