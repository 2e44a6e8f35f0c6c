//! Sentence-boundary evaluation: gold data loaders, two baseline splitters and boundary
//! precision / recall / F1. Used by `examples/split_eval.rs` (the report) and
//! `tests/split_eval.rs` (the CI gate), so both measure exactly the same thing.
//!
//! Method: gold sentences are NFC-normalized, trimmed, and concatenated into running
//! paragraphs of 3-8 sentences (sizes from a fixed-seed generator, so every run is identical)
//! joined by one space. The gold boundaries are the joins, as the byte offset where each
//! sentence after the first starts. A splitter's boundaries are the starts of its trimmed
//! sentences after the first. Only sentence-internal boundaries count: a paragraph's start
//! and end are free for every splitter.
//!
//! Data filters, the same for every splitter (counts are reported in [`Dataset`]):
//! * unterminated gold sentences (not ending in `.` `!` `?` `…`, possibly followed by closing
//!   quotes/brackets) are dropped: headlines, captions and bylines such as "Ảnh: AFP" or
//!   ">> Xếp hàng bán nợ xấu cho VAMC" make the join after them invisible once glued to the
//!   next sentence with a space, so no splitter could find it (about 5% of the underthesea
//!   file, 0.5% of VTB dev; `load_conllu(.., true)` keeps them for comparison);
//! * underthesea only: lines that themselves hold two sentences are dropped. A line counts as
//!   two sentences when terminal punctuation (+ closers) is followed by whitespace and an
//!   uppercase letter inside it, except a single period after a capitalized token of at most
//!   two letters ("TP. HCM", "V. Mikhailov", "TS. Nghĩa"): those are abbreviations and
//!   initials, which the gold rightly keeps inside one sentence, so they stay as test cases.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use unicode_segmentation::UnicodeSegmentation;

use crate::text::{normalize, split_sentences};

/// Why a data set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: no usable sentences")]
    Empty { path: PathBuf },
}

/// One running paragraph and its gold sentence-internal boundaries (byte offsets, ascending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paragraph {
    pub text: String,
    pub gold: Vec<usize>,
}

/// A loaded evaluation set.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub paragraphs: Vec<Paragraph>,
    /// Gold sentences kept.
    pub sentences: usize,
    /// Gold sentences dropped because they lack terminal punctuation.
    pub dropped_unterminated: usize,
    /// Lines dropped because they hold two sentences (underthesea only).
    pub dropped_two_sentences: usize,
}

impl Dataset {
    /// Gold boundaries in the whole set.
    pub fn boundaries(&self) -> usize {
        self.paragraphs.iter().map(|p| p.gold.len()).sum()
    }
}

/// The splitters compared in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Splitter {
    /// This crate's [`split_sentences`].
    Tomtat,
    /// Unicode UAX#29 sentence boundaries (unicode-segmentation).
    Uax29,
    /// Split after `.` `!` `?` followed by whitespace.
    Naive,
}

impl Splitter {
    pub const ALL: [Splitter; 3] = [Splitter::Tomtat, Splitter::Uax29, Splitter::Naive];

    pub fn name(self) -> &'static str {
        match self {
            Splitter::Tomtat => "tomtat",
            Splitter::Uax29 => "uax29",
            Splitter::Naive => "naive",
        }
    }

    /// Sentence ranges (bytes, trimmed, non-empty) of `text`.
    pub fn sentences(self, text: &str) -> Vec<Range<usize>> {
        match self {
            Splitter::Tomtat => split_sentences(text),
            Splitter::Uax29 => text
                .split_sentence_bound_indices()
                .filter_map(|(at, s)| trimmed(at, s))
                .collect(),
            Splitter::Naive => naive_sentences(text),
        }
    }

    /// Sentence-internal boundaries: byte offsets where the 2nd, 3rd... sentence starts.
    pub fn boundaries(self, text: &str) -> Vec<usize> {
        self.sentences(text)
            .into_iter()
            .skip(1)
            .map(|r| r.start)
            .collect()
    }
}

fn trimmed(at: usize, s: &str) -> Option<Range<usize>> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    let start = at + (s.len() - s.trim_start().len());
    Some(start..start + t.len())
}

/// The regex-like baseline: a sentence ends after `.` `!` `?` when whitespace follows.
fn naive_sentences(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() && matches!(prev, Some('.' | '!' | '?')) {
            out.extend(trimmed(start, &text[start..i]));
            start = i;
        }
        prev = Some(c);
    }
    out.extend(trimmed(start, &text[start..]));
    out
}

/// Boundary counts; precision, recall and F1 derive from them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scores {
    pub true_pos: usize,
    pub predicted: usize,
    pub gold: usize,
}

impl Scores {
    pub fn precision(&self) -> f64 {
        ratio(self.true_pos, self.predicted)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.true_pos, self.gold)
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    fn add(&mut self, other: Scores) {
        self.true_pos += other.true_pos;
        self.predicted += other.predicted;
        self.gold += other.gold;
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// Counts matches between two ascending offset lists.
fn compare(pred: &[usize], gold: &[usize]) -> Scores {
    let (mut i, mut j, mut tp) = (0, 0, 0);
    while i < pred.len() && j < gold.len() {
        match pred[i].cmp(&gold[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                tp += 1;
                i += 1;
                j += 1;
            }
        }
    }
    Scores {
        true_pos: tp,
        predicted: pred.len(),
        gold: gold.len(),
    }
}

/// Scores one splitter on a set of paragraphs.
pub fn score(paragraphs: &[Paragraph], splitter: Splitter) -> Scores {
    let mut total = Scores::default();
    for p in paragraphs {
        total.add(compare(&splitter.boundaries(&p.text), &p.gold));
    }
    total
}

/// A boundary one side has and the other lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    /// `true`: the splitter split where the gold does not (false positive).
    pub extra: bool,
    /// Text around the boundary, which is marked with `‖`.
    pub context: String,
}

/// Every false positive and false negative of `splitter`, with context.
pub fn disagreements(paragraphs: &[Paragraph], splitter: Splitter) -> Vec<Disagreement> {
    let mut out = Vec::new();
    for p in paragraphs {
        let pred = splitter.boundaries(&p.text);
        for &b in &pred {
            if p.gold.binary_search(&b).is_err() {
                out.push(Disagreement {
                    extra: true,
                    context: context(&p.text, b),
                });
            }
        }
        for &b in &p.gold {
            if pred.binary_search(&b).is_err() {
                out.push(Disagreement {
                    extra: false,
                    context: context(&p.text, b),
                });
            }
        }
    }
    out
}

fn context(text: &str, at: usize) -> String {
    let before: String = {
        let mut v: Vec<char> = text[..at].chars().rev().take(70).collect();
        v.reverse();
        v.into_iter().collect()
    };
    let after: String = text[at..].chars().take(50).collect();
    format!("{before}‖{after}")
}

/// Groups sentences into paragraphs of 3-8, joined by one space. Deterministic.
pub fn paragraphs_from(sentences: &[String], seed: u64) -> Vec<Paragraph> {
    let mut rng = SplitMix64(seed);
    let mut out = Vec::new();
    let mut rest = sentences;
    while !rest.is_empty() {
        let size = (3 + (rng.next() % 6) as usize).min(rest.len());
        let (group, tail) = rest.split_at(size);
        rest = tail;
        let mut text = String::new();
        let mut gold = Vec::with_capacity(size.saturating_sub(1));
        for (k, s) in group.iter().enumerate() {
            if k > 0 {
                text.push(' ');
                gold.push(text.len());
            }
            text.push_str(s);
        }
        out.push(Paragraph { text, gold });
    }
    out
}

/// A tiny fixed-seed generator, so paragraph sizes never depend on a crate version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

const SEED: u64 = 0x746f_6d74_6174; // "tomtat"

fn read(path: &Path) -> Result<String, EvalError> {
    fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn is_terminal(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

fn is_closing(c: char) -> bool {
    matches!(c, '"' | '\'' | '”' | '’' | '»' | ')' | ']')
}

fn is_opening(c: char) -> bool {
    matches!(c, '"' | '\'' | '“' | '‘' | '«' | '(' | '[')
}

/// Ends in terminal punctuation, possibly followed by closing quotes/brackets.
pub fn is_terminated(sentence: &str) -> bool {
    sentence
        .trim_end()
        .trim_end_matches(is_closing)
        .ends_with(is_terminal)
}

/// The underthesea two-sentence test (see the module docs).
pub fn holds_two_sentences(line: &str) -> bool {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !is_terminal(chars[i]) {
            i += 1;
            continue;
        }
        let run_start = i;
        while i < chars.len() && is_terminal(chars[i]) {
            i += 1;
        }
        let single_period = i - run_start == 1 && chars[run_start] == '.';
        let mut j = i;
        while j < chars.len() && is_closing(chars[j]) {
            j += 1;
        }
        if j >= chars.len() || !chars[j].is_whitespace() {
            continue;
        }
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        while j < chars.len() && is_opening(chars[j]) {
            j += 1;
        }
        if j >= chars.len() || !chars[j].is_uppercase() {
            continue;
        }
        // The token before the run: "TP", "V", "TS" are kept (abbreviations, initials).
        let mut k = run_start;
        while k > 0 && chars[k - 1].is_alphabetic() {
            k -= 1;
        }
        let token = &chars[k..run_start];
        let short_capitalized = !token.is_empty()
            && token.len() <= 2
            && token[0].is_uppercase()
            && (k == 0 || !chars[k - 1].is_alphanumeric());
        if !(single_period && short_capitalized) {
            return true;
        }
    }
    false
}

/// Loads the underthesea sentence file: one gold sentence per line (a leading dialogue dash
/// "- " and a byte-order mark are removed), filtered as the module docs say.
pub fn load_underthesea(path: &Path) -> Result<Dataset, EvalError> {
    load_lines(path, "underthesea-vi-sd.train")
}

/// Loads any one-sentence-per-line file (e.g. IWSLT'15 `tst2012.en` / `.vi`, whose lines are
/// subtitle segments) with the same cleaning and filters as [`load_underthesea`].
pub fn load_lines(path: &Path, name: &str) -> Result<Dataset, EvalError> {
    let raw = read(path)?;
    let (mut sentences, mut unterminated, mut two) = (Vec::new(), 0, 0);
    for line in raw.lines() {
        let line = normalize(line.trim_start_matches('\u{feff}'))
            .trim()
            .to_string();
        let line = line
            .strip_prefix("- ")
            .map(str::trim)
            .unwrap_or(&line)
            .to_string();
        if line.is_empty() {
            continue;
        }
        if !is_terminated(&line) {
            unterminated += 1;
        } else if holds_two_sentences(&line) {
            two += 1;
        } else {
            sentences.push(line);
        }
    }
    finish(path, name, sentences, unterminated, two)
}

/// Loads the `# text = ` lines of a CoNLL-U file, detokenized with [`detokenize_vtb`].
/// With `keep_unterminated` the unterminated sentences (headlines) stay in.
pub fn load_conllu(path: &Path, keep_unterminated: bool) -> Result<Dataset, EvalError> {
    let raw = read(path)?;
    let (mut sentences, mut unterminated) = (Vec::new(), 0);
    for (no, line) in raw.lines().enumerate() {
        let Some(text) = line.strip_prefix("# text") else {
            continue;
        };
        let Some(text) = text.trim_start().strip_prefix('=') else {
            return Err(EvalError::Parse {
                path: path.to_path_buf(),
                line: no + 1,
                message: "`# text` comment without `=`".into(),
            });
        };
        let sentence = normalize(&detokenize_vtb(text)).trim().to_string();
        if sentence.is_empty() {
            continue;
        }
        if !keep_unterminated && !is_terminated(&sentence) {
            unterminated += 1;
            continue;
        }
        sentences.push(sentence);
    }
    let name = path
        .file_name()
        .map_or_else(|| "conllu".into(), |n| n.to_string_lossy().into_owned());
    finish(path, &name, sentences, unterminated, 0)
}

fn finish(
    path: &Path,
    name: &str,
    sentences: Vec<String>,
    dropped_unterminated: usize,
    dropped_two_sentences: usize,
) -> Result<Dataset, EvalError> {
    if sentences.is_empty() {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Dataset {
        name: name.to_string(),
        paragraphs: paragraphs_from(&sentences, SEED),
        sentences: sentences.len(),
        dropped_unterminated,
        dropped_two_sentences,
    })
}

/// Turns VTB's space-tokenized text back into running text: no space before `, . ; : ! ? ) ]
/// ” % …`, none after `( [ “`; `LBKT`/`RBKT` become brackets. A straight quote `"` or `'`
/// closes when it follows terminal punctuation or precedes punctuation / the end (quotations
/// in VTB often open in an earlier sentence); otherwise quotes alternate opening / closing.
pub fn detokenize_vtb(tokenized: &str) -> String {
    fn punct_only(t: &str) -> bool {
        t.chars().all(|c| {
            matches!(
                c,
                ',' | '.' | ';' | ':' | '!' | '?' | ')' | ']' | '”' | '’' | '%' | '…'
            )
        })
    }
    fn terminal_only(t: &str) -> bool {
        !t.is_empty() && t.chars().all(|c| matches!(c, '.' | '!' | '?' | '…'))
    }
    let tokens: Vec<&str> = tokenized
        .split_whitespace()
        .map(|t| match t {
            "LBKT" => "(",
            "RBKT" => ")",
            t => t,
        })
        .collect();
    let mut out = String::with_capacity(tokenized.len());
    let mut glue_next = true; // no space before the first token
    let (mut dq_open, mut sq_open) = (false, false);
    for (k, &tok) in tokens.iter().enumerate() {
        let prev = k.checked_sub(1).map(|p| tokens[p]);
        let next = tokens.get(k + 1).copied();
        let closes = prev.is_some_and(terminal_only) || next.is_none_or(punct_only);
        let (glue_before, glue_after) = match tok {
            "\"" | "'" => {
                let open = if tok == "\"" {
                    &mut dq_open
                } else {
                    &mut sq_open
                };
                *open = if closes { false } else { !*open };
                (!*open, *open)
            }
            "(" | "[" | "“" | "‘" => (false, true),
            t if punct_only(t) => (true, false),
            _ => (false, false),
        };
        if !out.is_empty() && !glue_before && !glue_next {
            out.push(' ');
        }
        out.push_str(tok);
        glue_next = glue_after;
    }
    out
}

/// Vietnews articles as paragraphs whose "gold" is the data set's own automatic split
/// (`body_sentences`, which has mistakes): used to list where tomtat disagrees with it.
pub fn load_vietnews(path: &Path) -> Result<Vec<Paragraph>, EvalError> {
    let raw = read(path)?;
    let mut out = Vec::new();
    for (no, line) in raw.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parse_err = |message: String| EvalError::Parse {
            path: path.to_path_buf(),
            line: no + 1,
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| parse_err(e.to_string()))?;
        let Some(body) = value.get("body_sentences").and_then(|v| v.as_array()) else {
            return Err(parse_err("no `body_sentences` array".into()));
        };
        let sentences: Vec<String> = body
            .iter()
            .filter_map(|s| s.as_str())
            .map(|s| normalize(s).trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if sentences.is_empty() {
            continue;
        }
        let mut text = String::new();
        let mut gold = Vec::new();
        for (k, s) in sentences.iter().enumerate() {
            if k > 0 {
                text.push(' ');
                gold.push(text.len());
            }
            text.push_str(s);
        }
        out.push(Paragraph { text, gold });
    }
    if out.is_empty() {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// `../shared/data` next to the crate (the layout every helper and CI uses).
pub fn shared_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detokenizes_vtb() {
        assert_eq!(
            detokenize_vtb("Trả lời phỏng vấn , ông Lộc nói : bán đất là sai ."),
            "Trả lời phỏng vấn, ông Lộc nói: bán đất là sai."
        );
        assert_eq!(
            detokenize_vtb("\" bắt kiểu này được bao nhiêu con ? \" - tôi hỏi ."),
            "\"bắt kiểu này được bao nhiêu con?\" - tôi hỏi."
        );
        assert_eq!(
            detokenize_vtb("thành phố Qui Nhơn LBKT Bình Định RBKT tăng 7,5 % ..."),
            "thành phố Qui Nhơn (Bình Định) tăng 7,5%..."
        );
        assert_eq!(
            detokenize_vtb("lĩnh vực ' cần kiểm tra ' ."),
            "lĩnh vực 'cần kiểm tra'."
        );
        // A quotation opened in an earlier sentence closes after terminal punctuation.
        assert_eq!(
            detokenize_vtb("chạy chết mẹ luôn ! \" ."),
            "chạy chết mẹ luôn!\"."
        );
        assert_eq!(
            detokenize_vtb("gọi : \" Mẹ ! Bố ! \" ."),
            "gọi: \"Mẹ! Bố!\"."
        );
    }

    #[test]
    fn terminated_and_two_sentence_tests() {
        assert!(is_terminated("Xong.”"));
        assert!(is_terminated("Ai?"));
        assert!(!is_terminated("Ảnh: AFP"));
        assert!(holds_two_sentences("Một câu. Hai câu."));
        assert!(holds_two_sentences("Hiệu quả.\" Tổ chức này nói."));
        assert!(holds_two_sentences("Tăng 85 tỷ USD.\" Theo ông A."));
        assert!(!holds_two_sentences("Ở TP. HCM và ông V. Mikhailov nói."));
        assert!(!holds_two_sentences("Hết. thật"));
    }

    #[test]
    fn paragraphs_join_with_gold_offsets() {
        let s: Vec<String> = (0..20).map(|k| format!("Câu {k}.")).collect();
        let paras = paragraphs_from(&s, 7);
        assert_eq!(paras.iter().map(|p| p.gold.len() + 1).sum::<usize>(), 20);
        assert!(paras[..paras.len() - 1]
            .iter()
            .all(|p| (3..=8).contains(&(p.gold.len() + 1))));
        for p in &paras {
            for &g in &p.gold {
                assert!(p.text[g..].starts_with("Câu"));
            }
        }
        assert_eq!(paras, paragraphs_from(&s, 7), "deterministic");
    }

    #[test]
    fn scoring_counts_matches() {
        let sc = compare(&[3, 8, 12], &[3, 12, 20, 30]);
        assert_eq!(
            sc,
            Scores {
                true_pos: 2,
                predicted: 3,
                gold: 4
            }
        );
        assert!((sc.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((sc.recall() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn baselines_behave_as_documented() {
        let text = "Ở TP. HCM trời mưa. Ông A về.";
        let (hcm, ong) = (text.find("HCM").unwrap(), text.find("Ông").unwrap());
        assert_eq!(Splitter::Naive.boundaries(text), vec![hcm, ong]);
        assert_eq!(Splitter::Tomtat.boundaries(text), vec![ong]);
        assert!(!Splitter::Uax29.boundaries(text).is_empty());
    }
}
