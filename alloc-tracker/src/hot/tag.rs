//! The 16 bits stored after every block (see `trailer`).
//!
//! ```text
//!  15        14        13 12  11                                0
//! +---------+---------+-----+-----------------------------------+
//! | record  | sampled |  0  |        scope id (0..4096)         |
//! +---------+---------+-----+-----------------------------------+
//! ```
//!
//! `record`: the block has an entry in the live-record table (a leak check
//! or a sample made it), so its free must remove that entry. Frees of blocks
//! without it never touch the table. `sampled`: the entry is a sample and
//! carries a weight.

use super::ids::{ScopeId, MAX_SCOPES};

const SCOPE_MASK: u16 = (MAX_SCOPES - 1) as u16;
const RECORD: u16 = 1 << 15;
const SAMPLED: u16 = 1 << 14;

/// A block's tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tag(u16);

impl Tag {
    #[inline(always)]
    pub(crate) fn new(scope: ScopeId) -> Self {
        Tag(scope.0 & SCOPE_MASK)
    }
    #[inline(always)]
    pub(crate) fn from_bits(bits: u16) -> Self {
        Tag(bits)
    }
    #[inline(always)]
    pub(crate) fn to_bits(self) -> u16 {
        self.0
    }
    /// The allocating scope; always a valid table index, even for a
    /// corrupted tag.
    #[inline(always)]
    pub(crate) fn scope(self) -> ScopeId {
        ScopeId(self.0 & SCOPE_MASK)
    }
    #[inline(always)]
    pub(crate) fn has_record(self) -> bool {
        self.0 & RECORD != 0
    }
    /// This tag with a live-record entry (a sample if `sampled`).
    #[inline(always)]
    pub(crate) fn with_record(self, sampled: bool) -> Self {
        Tag(self.0 | RECORD | if sampled { SAMPLED } else { 0 })
    }
    /// This tag without a live-record entry.
    #[inline(always)]
    pub(crate) fn without_record(self) -> Self {
        Tag(self.0 & !(RECORD | SAMPLED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_do_not_touch_the_scope() {
        let t = Tag::new(ScopeId(4095));
        let r = t.with_record(true);
        assert_eq!(r.scope(), ScopeId(4095));
        assert!(r.has_record() && r.0 & SAMPLED != 0);
        assert_eq!(r.without_record(), t);
        assert_eq!(Tag::new(ScopeId(7)).with_record(false).0 & SAMPLED, 0);
        assert_eq!(Tag::from_bits(u16::MAX).scope().index(), 4095);
    }
}
