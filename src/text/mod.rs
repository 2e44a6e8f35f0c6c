//! text stage (temporary stand-in until the splitter lands).
use unicode_normalization::UnicodeNormalization;
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}
pub fn normalize(text: &str) -> std::borrow::Cow<'_, str> {
    std::borrow::Cow::Owned(text.nfc().collect())
}
pub fn split_paragraphs(text: &str) -> Vec<Vec<Span>> {
    let n = text.chars().count();
    vec![vec![Span { start: 0, end: n }]]
}
pub fn split_sentences(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == '.' {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < text.len() {
        out.push(start..text.len());
    }
    out
}
