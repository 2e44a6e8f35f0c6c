//! SentencePiece's precompiled normalization rules (`precompiled_charsmap`): a darts-clone
//! double array mapping byte strings to offsets of NUL-terminated replacements.
//!
//! We read it ourselves instead of through `spm_precompiled` because SentencePiece picks the
//! *longest* matching rule at each position (that crate's `transform` takes the shortest and
//! works on whole graphemes), and because a corrupt blob must give an error, not an
//! out-of-bounds panic. `parse` walks every reachable trie node once, so later lookups (ours
//! and the `tokenizers` crate's `Precompiled`, used for T5) stay in bounds.

use std::collections::HashSet;

/// Parsed `precompiled_charsmap`.
#[derive(Debug, Clone)]
pub(crate) struct CharsMap {
    units: Vec<u32>,
    /// NUL-separated replacement strings.
    normalized: Vec<u8>,
}

#[inline]
fn has_leaf(u: u32) -> bool {
    (u >> 8) & 1 == 1
}
#[inline]
fn value(u: u32) -> u32 {
    u & ((1u32 << 31) - 1)
}
#[inline]
fn label(u: u32) -> u32 {
    u & ((1u32 << 31) | 0xFF)
}
#[inline]
fn offset(u: u32) -> usize {
    ((u >> 10) << ((u & (1u32 << 9)) >> 6)) as usize
}

/// SentencePiece keeps at most this many prefix matches per position (kMaxTrieResultsSize).
const MAX_TRIE_RESULTS: usize = 32;

impl CharsMap {
    /// Parses and validates the blob. `Err` carries a human-readable reason.
    pub(crate) fn parse(blob: &[u8]) -> Result<Self, String> {
        if blob.len() <= 4 {
            return Err(format!(
                "precompiled_charsmap is too short ({} bytes)",
                blob.len()
            ));
        }
        let trie_size = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        let rest = &blob[4..];
        if trie_size >= blob.len() || trie_size > rest.len() {
            return Err(format!(
                "precompiled_charsmap trie size {trie_size} exceeds the blob size {}",
                blob.len()
            ));
        }
        if trie_size < 4 || !trie_size.is_multiple_of(4) {
            return Err(format!(
                "precompiled_charsmap trie size {trie_size} is not a positive multiple of 4"
            ));
        }
        let units: Vec<u32> = rest[..trie_size]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let normalized = rest[trie_size..].to_vec();
        // tokenizers' Precompiled requires the whole replacement blob to be UTF-8.
        if std::str::from_utf8(&normalized).is_err() {
            return Err("precompiled_charsmap replacement strings are not valid UTF-8".into());
        }
        let map = CharsMap { units, normalized };
        map.validate()?;
        Ok(map)
    }

    /// Walks all reachable nodes: every child slot and value unit must be in bounds and
    /// every value must start a replacement on a UTF-8 boundary.
    fn validate(&self) -> Result<(), String> {
        let n = self.units.len();
        let root = offset(self.units[0]);
        let mut seen = HashSet::new();
        let mut stack = vec![root];
        while let Some(base) = stack.pop() {
            if !seen.insert(base) {
                continue;
            }
            if (base | 0xFF) >= n {
                return Err(format!(
                    "precompiled_charsmap trie node {base} is out of bounds ({n} units)"
                ));
            }
            for c in 1..=255usize {
                let u = self.units[base ^ c];
                if label(u) as usize != c {
                    continue;
                }
                let child = (base ^ c) ^ offset(u);
                if has_leaf(u) {
                    let v = self
                        .units
                        .get(child)
                        .map(|&x| value(x) as usize)
                        .ok_or_else(|| {
                            format!("precompiled_charsmap leaf {child} is out of bounds")
                        })?;
                    self.replacement(v).ok_or_else(|| {
                        format!("precompiled_charsmap replacement offset {v} is invalid")
                    })?;
                }
                stack.push(child);
            }
        }
        Ok(())
    }

    fn replacement(&self, v: usize) -> Option<&str> {
        let tail = self.normalized.get(v..)?;
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        std::str::from_utf8(&tail[..end]).ok()
    }

    /// The longest rule matching a prefix of `key`: (matched byte length, replacement).
    /// Mirrors darts-clone `commonPrefixSearch` + SentencePiece's "longest of the first 32".
    pub(crate) fn longest_prefix(&self, key: &[u8]) -> Option<(usize, &str)> {
        let mut node = offset(*self.units.first()?);
        let mut best: Option<(usize, usize)> = None;
        let mut found = 0usize;
        for (i, &c) in key.iter().enumerate() {
            node ^= c as usize;
            let u = *self.units.get(node)?;
            if label(u) != c as u32 {
                break;
            }
            node ^= offset(u);
            if has_leaf(u) {
                if found < MAX_TRIE_RESULTS {
                    let v = value(*self.units.get(node)?) as usize;
                    best = Some((i + 1, v));
                }
                found += 1;
            }
        }
        let (len, v) = best?;
        Some((len, self.replacement(v)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage() {
        assert!(CharsMap::parse(b"").is_err());
        assert!(CharsMap::parse(b"\x01\x02").is_err());
        assert!(CharsMap::parse(&[0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3, 4, 5]).is_err());
        // A trie of one unit whose block (256 units) is missing.
        assert!(CharsMap::parse(&[4, 0, 0, 0, 0, 4, 0, 0, b'a', 0]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(blob in proptest::collection::vec(proptest::num::u8::ANY, 0..2048),
                        key in proptest::collection::vec(proptest::num::u8::ANY, 0..16)) {
            if let Ok(m) = CharsMap::parse(&blob) {
                let _ = m.longest_prefix(&key);
            }
        }
    }
}
