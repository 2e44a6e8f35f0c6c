//! Text stage: Unicode normalization, paragraphs and Vietnamese-aware sentence splitting.
//!
//! The pipeline calls [`normalize`] first (NFC: the splitter's word lists and every model
//! tokenizer expect composed Vietnamese), then [`split_paragraphs`], and hands each span's
//! text to the translator. Splitting never fails and never panics, whatever the input.
//!
//! The sentence rules live in `sentence.rs`, the abbreviation lists in `abbreviations.txt`,
//! and [`crate::testkit::split_eval`] measures the splitter against gold data (used by
//! `examples/split_eval.rs` and `tests/split_eval.rs`).

use std::borrow::Cow;

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

mod lexicon;
mod sentence;

pub use sentence::split_sentences;

/// NFC-normalizes `text`, borrowing it unchanged when it is already NFC (the usual case:
/// the quick check answers without allocating for almost all real text). Vietnamese from the
/// web is often partly decomposed (vietnews has ~1000 combining marks in 600 KB).
pub fn normalize(text: &str) -> Cow<'_, str> {
    match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => Cow::Borrowed(text),
        IsNormalized::No => Cow::Owned(text.nfc().collect()),
        // "Maybe" (a combining mark that may or may not compose): decide by normalizing.
        IsNormalized::Maybe => {
            let nfc: String = text.nfc().collect();
            if nfc == text {
                Cow::Borrowed(text)
            } else {
                Cow::Owned(nfc)
            }
        }
    }
}

/// A sentence as CHAR offsets (Unicode scalar values) into the text it came from, end
/// exclusive: `text.chars().skip(start).take(end - start)` is the sentence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    /// The sentence's text, or `None` if the span does not fit `text`.
    pub fn text<'a>(&self, text: &'a str) -> Option<&'a str> {
        let mut idx = text
            .char_indices()
            .map(|(b, _)| b)
            .chain(std::iter::once(text.len()));
        let from = idx.nth(self.start)?;
        let to = idx.nth(self.end.checked_sub(self.start + 1)?)?;
        text.get(from..to)
    }
}

/// Line breaks that end a paragraph (`\r\n` gives an empty paragraph between, which is dropped).
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// Paragraphs (split at newlines; blank lines and single newlines both end a paragraph;
/// whitespace-only paragraphs dropped), each a list of sentence spans, trimmed of surrounding
/// whitespace, in order, non-overlapping. Offsets index `text` by chars.
pub fn split_paragraphs(text: &str) -> Vec<Vec<Span>> {
    let mut paragraphs = Vec::new();
    // Char offset of `line_start`, kept incrementally so the whole call is O(n).
    let mut line_start = 0usize;
    let mut line_chars = 0usize;
    let mut chars_before = 0usize;
    for (b, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), '\n')))
    {
        if !is_line_break(c) {
            line_chars += 1;
            continue;
        }
        let line = &text[line_start..b];
        let spans = sentence_spans(line, chars_before);
        if !spans.is_empty() {
            paragraphs.push(spans);
        }
        chars_before += line_chars + 1;
        line_chars = 0;
        line_start = b + c.len_utf8();
    }
    paragraphs
}

/// Sentences of one line as char spans, offset by `base` chars.
fn sentence_spans(line: &str, base: usize) -> Vec<Span> {
    let ranges = split_sentences(line);
    let mut spans = Vec::with_capacity(ranges.len());
    // Walk the line once, converting sorted byte offsets to char offsets.
    let (mut byte_pos, mut char_pos) = (0usize, base);
    let mut to_chars = |b: usize| {
        char_pos += line[byte_pos..b].chars().count();
        byte_pos = b;
        char_pos
    };
    for r in ranges {
        let start = to_chars(r.start);
        let end = to_chars(r.end);
        spans.push(Span { start, end });
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn texts<'a>(text: &'a str, paras: &[Vec<Span>]) -> Vec<Vec<&'a str>> {
        paras
            .iter()
            .map(|p| {
                p.iter()
                    .map(|s| s.text(text).expect("span in bounds"))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn normalize_composes_and_borrows() {
        let nfd = "Vie\u{302}\u{323}t Nam";
        let out = normalize(nfd);
        assert!(matches!(out, Cow::Owned(_)));
        assert_eq!(out, "Việt Nam");
        assert!(matches!(normalize("Việt Nam"), Cow::Borrowed(_)));
        assert!(matches!(normalize("plain ascii"), Cow::Borrowed(_)));
    }

    #[test]
    fn paragraphs_and_char_offsets() {
        let text = "  Hà Nội mưa. Trời lạnh!\n\n   \nTP. HCM nắng.\r\nCâu cuối";
        let paras = split_paragraphs(text);
        assert_eq!(
            texts(text, &paras),
            vec![
                vec!["Hà Nội mưa.", "Trời lạnh!"],
                vec!["TP. HCM nắng."],
                vec!["Câu cuối"]
            ]
        );
        assert_eq!(paras[0][0], Span { start: 2, end: 13 });
        let s: String = text
            .chars()
            .skip(paras[1][0].start)
            .take(paras[1][0].end - paras[1][0].start)
            .collect();
        assert_eq!(s, "TP. HCM nắng.");
    }

    #[test]
    fn empty_and_blank() {
        assert!(split_paragraphs("").is_empty());
        assert!(split_paragraphs("\n \r\n\t\u{2029}").is_empty());
    }

    #[test]
    fn span_text_rejects_out_of_bounds() {
        assert_eq!(Span { start: 0, end: 2 }.text("ab"), Some("ab"));
        assert_eq!(Span { start: 1, end: 3 }.text("ab"), None);
        assert_eq!(Span { start: 2, end: 1 }.text("ab"), None);
    }

    /// Strings built from the characters the splitter cares about.
    fn tricky_text() -> impl Strategy<Value = String> {
        let pieces = prop::collection::vec(
            prop_oneof![
                Just(".".to_string()),
                Just("...".to_string()),
                Just("…".to_string()),
                Just("!".to_string()),
                Just("?".to_string()),
                Just("./.".to_string()),
                Just("\"".to_string()),
                Just("“".to_string()),
                Just("”".to_string()),
                Just("'".to_string()),
                Just("(".to_string()),
                Just(")".to_string()),
                Just(" ".to_string()),
                Just("\n".to_string()),
                Just("\r\n".to_string()),
                Just("\u{a0}".to_string()),
                Just("\u{301}".to_string()),
                Just("\u{302}".to_string()),
                Just("TP".to_string()),
                Just("Th".to_string()),
                Just("T".to_string()),
                Just("v.v".to_string()),
                Just("1".to_string()),
                Just("Ông".to_string()),
                Just("Theo".to_string()),
                Just("được".to_string()),
                Just("iPhone".to_string()),
                Just("-".to_string()),
                any::<char>().prop_map(String::from),
                "[a-zA-ZđĐ]{1,6}",
            ],
            0..40,
        );
        pieces.prop_map(|v| v.concat())
    }

    fn check_invariants(text: &str) -> Result<(), TestCaseError> {
        let chars: Vec<char> = text.chars().collect();
        let paras = split_paragraphs(text);
        let mut covered = vec![0u32; chars.len()];
        let mut last_end = 0usize;
        for p in &paras {
            prop_assert!(!p.is_empty());
            for s in p {
                prop_assert!(s.start < s.end, "empty span {s:?}");
                prop_assert!(s.end <= chars.len(), "span {s:?} out of bounds");
                prop_assert!(
                    s.start >= last_end,
                    "span {s:?} overlaps or is out of order"
                );
                prop_assert!(
                    !chars[s.start].is_whitespace() && !chars[s.end - 1].is_whitespace(),
                    "untrimmed {s:?}"
                );
                prop_assert!(
                    !chars[s.start..s.end].iter().any(|&c| is_line_break(c)),
                    "span crosses a line"
                );
                for c in &mut covered[s.start..s.end] {
                    *c += 1;
                }
                last_end = s.end;
            }
        }
        for (k, &c) in chars.iter().enumerate() {
            if !c.is_whitespace() {
                prop_assert_eq!(
                    covered[k],
                    1,
                    "char {} ({:?}) covered {} times",
                    k,
                    c,
                    covered[k]
                );
            }
        }
        // Byte API: same guarantees on a single paragraph.
        let mut prev = 0;
        for r in split_sentences(text) {
            prop_assert!(r.start >= prev && r.start < r.end && r.end <= text.len());
            prop_assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
            prop_assert_eq!(text[r.clone()].trim(), &text[r.clone()]);
            prev = r.end;
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn invariants_on_tricky_text(text in tricky_text()) {
            check_invariants(&text)?;
        }

        #[test]
        fn invariants_on_any_string(text in any::<String>()) {
            check_invariants(&text)?;
        }
    }
}
