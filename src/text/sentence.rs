//! The sentence scanner: a single left-to-right pass that stops only at terminal punctuation
//! (`.` `!` `?` `…`) followed by whitespace, then decides with a few local rules whether that
//! is a sentence boundary.
//!
//! Why not plain UAX#29: it splits after every "abbreviation. Capital" ("TP. HCM",
//! "GS. Ngô Bảo Châu", "Sergei V. Mikhailov") and keeps sentences glued across "…"; the rules
//! below fix those cases and cost one byte test per char outside candidates.
//!
//! The rules, for a candidate `PUNCT CLOSERS* WHITESPACE NEXT` (data lists in
//! `abbreviations.txt`):
//! * never split off a fragment without letters or digits: nothing alphanumeric before it in
//!   the sentence, only punctuation after it, or the sentence so far is just an enumerator
//!   ("1.", "a.", "IV.");
//! * `NEXT` glued to an ellipsis ("...Và") continues the sentence; a dash after a closing quote
//!   is an attribution (`“...Torres.” – Mou cho biết.`); a closing quote written apart
//!   (`đâu? ". Bình`) joins the sentence before it;
//! * `?` / `!`: a boundary unless the next word is lowercase (`"Ai?" - tôi hỏi`);
//! * an ellipsis (`…`, `..`, `...`): a boundary only before a capitalized word (so "anh T..
//!   Khi" splits: news writes an initial's period and the full stop together);
//! * a single `.` after a `[prefix]` abbreviation (TP., GS., PGS.TS., Mr., e.g.): only before
//!   a sentence starter followed by a lowercase word ("TP. Ngoài ra,"); after a `[suffix]`
//!   one (etc., v.v., a.m.): before a capitalized word; after an `[ambiguous]` one or a name
//!   initial ("U.S.", "Th.", "Nguyễn Văn T.", "ông H."): only before a sentence starter
//!   ("Theo", "Ông", "The"), and never before another initial or "(" ("Đ. N.A", "T. (35
//!   tuổi)"); after anything else (words, numbers, URLs, acronyms, "độ C."): unless the next
//!   word is lowercase, where a Vietnamese syllable that is neither an honorific nor a
//!   function word ("con. thỉnh thoảng" no, "bận. thỉnh thoảng" yes) still ends it;
//! * an opening quote right after the whitespace counts as a capital after `?` `!`, an
//!   ellipsis and an ordinary `.`, since quoted speech may start lowercase
//!   (`... nói. "bắt kiểu này..."`).
//!
//! Closing quotes and brackets right after the punctuation belong to the sentence that ends
//! there, so `“Câu một. Câu hai.” Sau đó` gives `“Câu một.` / `Câu hai.”` / `Sau đó`.

use std::ops::Range;

use super::lexicon::LEXICON;

/// Longest token (bytes) looked at behind a period; longer ones are URLs, numbers or
/// hyphenated compounds and are never abbreviations.
const MAX_TOKEN_BYTES: usize = 48;
/// How far (chars) to look past dashes, bullets and opening quotes for the next word.
const MAX_SKIP_CHARS: usize = 8;
/// Longest next word (bytes) compared with the sentence-starter list.
const MAX_WORD_BYTES: usize = 32;

/// Splits one paragraph (or any string; newlines are just whitespace here) into sentences.
/// Returns byte ranges into `text`, in order, non-overlapping, non-empty and trimmed of
/// whitespace (as `char::is_whitespace` defines it); together they cover every
/// non-whitespace char. Expects NFC text (see [`super::normalize`]); other text is split too,
/// just with the starter-word lookups missing words that carry decomposed diacritics.
pub fn split_sentences(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let n = bytes.len();
    let mut out = Vec::new();
    let mut start = skip_whitespace(text, 0);
    // Where the scan for the current sentence's first alphanumeric char has reached
    // (amortised: each byte is examined once per sentence at most).
    let mut alnum_scan = start;
    let mut has_alnum = false;
    let mut i = start;
    // Nothing after the last alphanumeric char can start a sentence of its own.
    let last_alnum = text
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_alphanumeric())
        .map_or(0, |(b, _)| b);
    while i < n {
        let b = bytes[i];
        // Fast path: only `.` `!` `?` and the lead byte of `…` (E2 80 A6) can start a candidate.
        if !matches!(b, b'.' | b'!' | b'?' | 0xE2)
            || (b == 0xE2 && !bytes[i..].starts_with("…".as_bytes()))
        {
            i += 1;
            continue;
        }
        let run = scan_run(text, i);
        let close_end = scan_closers(text, run.end);
        let Some(after) = text[close_end..].chars().next() else {
            break; // punctuation at the very end: the last sentence ends there anyway
        };
        if !after.is_whitespace() {
            // "TP.HCM", "7.960", "v1.2.3", "a@b.vn", "“Ồ!”,": not a candidate.
            i = close_end.max(i + 1);
            continue;
        }
        let next_start = skip_whitespace(text, close_end);
        if next_start > last_alnum {
            break; // only punctuation is left: it stays with this sentence
        }
        if let Some(q) = detached_closing_quote(text, next_start) {
            // Tokenized quotes: `... điều lệ? ". Bình cho biết`: the quote closes this
            // sentence and the scan goes on after it.
            i = q;
            continue;
        }
        if !has_alnum {
            has_alnum = text[alnum_scan..i].chars().any(char::is_alphanumeric);
            alnum_scan = i;
        }
        if has_alnum && is_boundary(text, start, i, &run, close_end, next_start) {
            out.push(start..close_end);
            start = next_start;
            alnum_scan = start;
            has_alnum = false;
        }
        i = next_start;
    }
    let end = trim_end(text, n);
    if start < end {
        out.push(start..end);
    }
    out
}

/// A closing quote written apart from its sentence (`luôn! ".`, `thú... ",`): a straight or
/// closing double quote followed by punctuation. Returns the byte after the quote.
fn detached_closing_quote(text: &str, at: usize) -> Option<usize> {
    let mut chars = text[at..].chars();
    let q = chars.next().filter(|&c| c == '"' || c == '”')?;
    let after = chars.next()?;
    matches!(after, '.' | ',' | ';' | ':' | '!' | '?' | '…').then_some(at + q.len_utf8())
}

/// What kind of terminal punctuation run a candidate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunKind {
    /// Contains `?` or `!`.
    Strong,
    /// `…` or two or more periods.
    Ellipsis,
    /// One period.
    Period,
    /// The Vietnamese news end mark `./.`.
    EndMark,
}

#[derive(Debug)]
struct Run {
    end: usize,
    kind: RunKind,
}

/// Reads the run of terminal punctuation starting at `i` (which holds one).
fn scan_run(text: &str, i: usize) -> Run {
    let mut end = i;
    let (mut dots, mut strong, mut ellipsis) = (0usize, false, false);
    for (off, c) in text[i..].char_indices() {
        match c {
            '.' => dots += 1,
            '!' | '?' => strong = true,
            '…' => ellipsis = true,
            _ => break,
        }
        end = i + off + c.len_utf8();
    }
    let mut kind = if strong {
        RunKind::Strong
    } else if ellipsis || dots >= 2 {
        RunKind::Ellipsis
    } else {
        RunKind::Period
    };
    if kind == RunKind::Period && text[end..].starts_with("/.") {
        end += 2;
        kind = RunKind::EndMark;
    }
    Run { end, kind }
}

/// Closing quotes and brackets that stay with the sentence they follow.
fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '”' | '’' | '»' | '›' | ')' | ']' | '}' | '」' | '』'
    )
}

/// Opening quotes and brackets (stripped in front of a token, skipped before the next word).
fn is_opener(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '“' | '‘' | '«' | '‹' | '„' | '(' | '[' | '{' | '「' | '『'
    )
}

fn scan_closers(text: &str, mut i: usize) -> usize {
    while let Some(c) = text[i..].chars().next() {
        if !is_closer(c) {
            break;
        }
        i += c.len_utf8();
    }
    i
}

fn skip_whitespace(text: &str, mut i: usize) -> usize {
    while let Some(c) = text[i..].chars().next() {
        if !c.is_whitespace() {
            break;
        }
        i += c.len_utf8();
    }
    i
}

fn trim_end(text: &str, end: usize) -> usize {
    text[..end].trim_end().len()
}

/// The case class of the word after a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Upper,
    Lower,
    Digit,
    /// A letter without case (CJK, Thai...), a symbol, or nothing within reach.
    Other,
}

/// The next word: its class, the word itself (for the starter list) and whether an opening
/// quote stands right at its start.
struct NextWord<'a> {
    class: Next,
    word: &'a str,
    /// Byte offset just past `word`.
    end: usize,
    quoted: bool,
}

fn next_word(text: &str, from: usize) -> NextWord<'_> {
    let quoted = text[from..]
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '"' | '\'' | '“' | '‘' | '«' | '„'));
    // Skip dashes, bullets, quotes, brackets and the spaces between them ("- Ông", "“(Ảnh").
    let mut pos = None;
    for (k, (off, c)) in text[from..].char_indices().enumerate() {
        if k >= MAX_SKIP_CHARS {
            break;
        }
        if c.is_alphanumeric() {
            pos = Some(from + off);
            break;
        }
    }
    let Some(p) = pos else {
        return NextWord {
            class: Next::Other,
            word: "",
            end: from,
            quoted,
        };
    };
    let mut chars = text[p..].chars();
    let first = chars.next().unwrap_or(' ');
    let second = chars.next().unwrap_or(' ');
    let class = if first.is_uppercase() || (first.is_lowercase() && second.is_uppercase()) {
        // "iPhone", "eBay", "mRNA" start sentences like capitalized words.
        Next::Upper
    } else if first.is_lowercase() {
        Next::Lower
    } else if first.is_numeric() {
        Next::Digit
    } else {
        Next::Other
    };
    let mut end = p;
    for (off, c) in text[p..].char_indices() {
        if !(c.is_alphanumeric() || is_mark(c)) || off >= MAX_WORD_BYTES {
            break;
        }
        end = p + off + c.len_utf8();
    }
    NextWord {
        class,
        word: &text[p..end],
        end,
        quoted,
    }
}

/// The first char of the word after `from` when only spaces separate them.
fn word_after(text: &str, from: usize) -> Option<char> {
    text[from..]
        .chars()
        .find(|&c| c != ' ')
        .filter(|c| c.is_alphanumeric())
}

/// Combining diacritics (decomposed Vietnamese tone marks live here).
fn is_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// The whitespace-delimited token that ends at `end` (the punctuation), with leading opening
/// quotes/brackets removed, and the byte where the raw token starts. `None` when the token is
/// longer than [`MAX_TOKEN_BYTES`].
fn token_before(text: &str, end: usize) -> Option<(&str, usize)> {
    let head = &text[..end];
    let mut start = end;
    for (off, c) in head.char_indices().rev() {
        if c.is_whitespace() {
            break;
        }
        if end - off > MAX_TOKEN_BYTES {
            return None;
        }
        start = off;
    }
    let token = text[start..end].trim_start_matches(is_opener);
    Some((token, start))
}

/// How a token before a single period behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abbrev {
    /// Title, office, unit prefix: never ends a sentence.
    Prefix,
    /// "etc.", "v.v.": ends one before a capitalized word.
    Suffix,
    /// "U.S.", name initials: ends one only before a sentence starter.
    Ambiguous,
    /// Not an abbreviation.
    None,
}

fn classify(text: &str, token: &str, token_start: usize) -> Abbrev {
    let lex = &*LEXICON;
    if token.is_empty() || token.ends_with(is_closer) {
        return Abbrev::None;
    }
    if lex.prefix.contains(token) {
        return Abbrev::Prefix;
    }
    if lex.suffix.contains(token) {
        return Abbrev::Suffix;
    }
    if lex.ambiguous.contains(token) {
        return Abbrev::Ambiguous;
    }
    if let Some((_, last)) = token.rsplit_once('.') {
        // Chained titles not listed whole: "ThS.BS", "PGS.TS.BSCKII".
        if lex.prefix.contains(last) {
            return Abbrev::Prefix;
        }
        // Dotted initials: "U.S", "T.N", "J.R.R".
        if token.split('.').all(is_single_letter) {
            return Abbrev::Ambiguous;
        }
        return Abbrev::None;
    }
    if is_consonant_cluster(token) && !lex.units.contains(token) {
        return Abbrev::Ambiguous;
    }
    if is_initial_letter(token) && follows_name_or_honorific(text, token_start) {
        return Abbrev::Ambiguous;
    }
    Abbrev::None
}

/// A bare capital that can abbreviate a given name: ASCII or Đ. Capitals with diacritics are
/// words ("Nam Á", "nước Ý") and lowercase single letters are words or units ("ở", "10 m").
fn is_initial_letter(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == 'Đ')
        && chars.next().is_none()
}

/// Whether the token before `token_start` is capitalized (part of a name: "Nguyễn Văn",
/// "Sergei", "J.") or an honorific ("ông", "chị"), i.e. a capital letter there is a name
/// initial rather than a word such as "độ C." or "bảng F.".
fn follows_name_or_honorific(text: &str, token_start: usize) -> bool {
    let head = text[..token_start].trim_end();
    let Some((prev, _)) = token_before(head, head.len()) else {
        return false;
    };
    if prev.is_empty() {
        return true; // nothing before: a name initial at the very start
    }
    prev.chars().next().is_some_and(char::is_uppercase) || LEXICON.honorifics.contains(prev)
}

/// One letter, possibly followed by combining marks ("T", "Đ", "q").
fn is_single_letter(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(char::is_alphabetic) && chars.all(is_mark)
}

/// A capitalized Latin token with no vowel ("Th", "Ng", "Tr", "Kh", "Mr"): every Vietnamese
/// syllable and nearly every English word has a vowel, so this is an initial or abbreviation.
/// All-caps tokens ("CLB", "HCM") are acronyms that do end sentences, so at least one
/// lowercase letter is required.
fn is_consonant_cluster(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !first.is_uppercase() || s.len() > 4 {
        return false;
    }
    let mut has_lower = false;
    for c in s.chars() {
        let ok = match c {
            'đ' | 'Đ' => true,
            c if c.is_ascii_alphabetic() => {
                !matches!(c.to_ascii_lowercase(), 'a' | 'e' | 'i' | 'o' | 'u' | 'y')
            }
            _ => false,
        };
        if !ok {
            return false;
        }
        has_lower |= c.is_lowercase();
    }
    has_lower
}

/// Whether a period after `token` ends the sentence even before a lowercase word: the token
/// is one Vietnamese syllable ("Melbourne" is not, nor "abbr", "emerg", "tr", "kg") that is
/// neither an honorific (a redacted or dropped name may follow: "anh. tâm sự") nor a function
/// word that needs a continuation ("nghèo nên. phải"). Transcripts and scraped news run
/// sentences on in lowercase ("... có ý nghĩa. còn nếu bạn ..."); abbreviations that are
/// syllables ("tr." is not) are in the lexicon and never reach this test.
fn ends_clause(token: &str) -> bool {
    let t = token.trim_end_matches(is_closer);
    let lex = &*LEXICON;
    is_vietnamese_syllable(t)
        && !lex.honorifics.contains(t)
        && !lex.non_final.contains(t.to_lowercase().as_str())
}

/// Vietnamese phonotactics on letters, tone marks ignored: an optional onset, one to three
/// vowel letters (glides included: "oa", "uyê", "ươi"), an optional final consonant. Only
/// the first letter may be a capital; two letters at least (single letters are initials).
fn is_vietnamese_syllable(t: &str) -> bool {
    // "gi" + vowel also parses as "g" + a nucleus starting with "i"; "q" takes its "u" as a glide
    const ONSETS: [&str; 28] = [
        "", "b", "c", "ch", "d", "đ", "g", "gh", "gi", "h", "k", "kh", "l", "m", "n", "ng", "ngh",
        "nh", "p", "ph", "q", "r", "s", "t", "th", "tr", "v", "x",
    ];
    const CODAS: [&str; 9] = ["", "c", "ch", "m", "n", "ng", "nh", "p", "t"];
    if t.chars().count() < 2 || t.chars().skip(1).any(char::is_uppercase) {
        return false;
    }
    let lower = t.to_lowercase();
    let is_consonant = |c: char| c == 'đ' || (c.is_ascii_lowercase() && !"aeiouy".contains(c));
    // in NFC text every non-ASCII Vietnamese letter but "đ" is a vowel with its marks
    let is_vowel =
        |c: char| "aeiouy".contains(c) || (!c.is_ascii() && c.is_alphabetic() && c != 'đ');
    let onset_end = lower
        .find(|c: char| !is_consonant(c))
        .unwrap_or(lower.len());
    let rest = &lower[onset_end..];
    let nucleus_end = rest.find(|c: char| !is_vowel(c)).unwrap_or(rest.len());
    let (nucleus, coda) = rest.split_at(nucleus_end);
    ONSETS.contains(&&lower[..onset_end])
        && (1..=3).contains(&nucleus.chars().count())
        && CODAS.contains(&coda)
}

/// "1", "12", "a", "B", "IV": list numbering that cannot be a sentence on its own.
fn is_enumerator(token: &str) -> bool {
    let t = token.trim_end_matches('.');
    (!t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()))
        || is_single_letter(t)
        || (!t.is_empty() && t.len() <= 5 && t.bytes().all(|b| matches!(b, b'I' | b'V' | b'X')))
}

fn is_boundary(
    text: &str,
    sent_start: usize,
    punct: usize,
    run: &Run,
    close_end: usize,
    next_start: usize,
) -> bool {
    let mut after_next = text[next_start..].chars();
    let first = after_next.next().unwrap_or(' ');
    if matches!(first, '.' | '…')
        && after_next
            .find(|&c| !matches!(c, '.' | '…'))
            .is_some_and(char::is_alphanumeric)
    {
        return false; // "lên cáng... ...Và vận chuyển": an attached ellipsis continues it
    }
    if matches!(first, '-' | '–' | '—')
        && text[run.end..close_end].contains(['"', '\'', '”', '’', '»'])
    {
        return false; // attribution after a quotation: “...Torres.” – Mou cho biết.
    }
    let next = next_word(text, next_start);
    let capital_or_quote = next.class == Next::Upper || (next.quoted && next.class == Next::Lower);
    match run.kind {
        RunKind::Strong => next.class != Next::Lower || next.quoted,
        RunKind::Ellipsis => capital_or_quote,
        RunKind::EndMark => next.class != Next::Lower,
        RunKind::Period => {
            let Some((token, token_start)) = token_before(text, punct) else {
                return next.class != Next::Lower || next.quoted;
            };
            if token_start <= sent_start && is_enumerator(token) {
                return false;
            }
            if next.class == Next::Digit
                && token.len() == 1
                && token.as_bytes()[0].is_ascii_alphabetic()
            {
                return false; // "h. 15 tuổi", "N. 13 tuổi": a one-letter label before a number
            }
            if is_initial_letter(token)
                && (text[next_start..].starts_with('(') || is_initial_letter(next.word))
            {
                return false; // "Đ. N.A", "P. A.", "là N. (SN 2001)": a name goes on
            }
            match classify(text, token, token_start) {
                Abbrev::Prefix => {
                    // "..., TP. Ngoài ra, ...": the title's name is missing, a sentence starts.
                    LEXICON.starters.contains(next.word)
                        && word_after(text, next.end)
                            .is_some_and(|c| c.is_lowercase() || c.is_numeric())
                }
                Abbrev::Suffix => next.class == Next::Upper,
                Abbrev::Ambiguous => {
                    next.class == Next::Upper && LEXICON.starters.contains(next.word)
                }
                Abbrev::None => next.class != Next::Lower || capital_or_quote || ends_clause(token),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<&str> {
        split_sentences(text)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[track_caller]
    fn check(text: &str, want: &[&str]) {
        assert_eq!(split(text), want, "splitting {text:?}");
    }

    #[test]
    fn plain_sentences() {
        check(
            "Hôm nay trời đẹp. Chúng tôi đi chơi! Bạn có đi không? Có.",
            &[
                "Hôm nay trời đẹp.",
                "Chúng tôi đi chơi!",
                "Bạn có đi không?",
                "Có.",
            ],
        );
        check("  Một câu.  ", &["Một câu."]);
        check("Không có dấu chấm", &["Không có dấu chấm"]);
        check("", &[]);
        check(" \n\t ", &[]);
    }

    #[test]
    fn vietnamese_titles_and_offices() {
        check(
            "Ông sống ở TP. HCM. Sau đó ông chuyển đi.",
            &["Ông sống ở TP. HCM.", "Sau đó ông chuyển đi."],
        );
        check("Tp. Hồ Chí Minh mưa to.", &["Tp. Hồ Chí Minh mưa to."]);
        check(
            "Theo PGS.TS. Nguyễn Văn A, giá tăng.",
            &["Theo PGS.TS. Nguyễn Văn A, giá tăng."],
        );
        check(
            "GS. Ngô Bảo Châu và ThS. Lê Thị B dự họp. TS. Trần Văn C phát biểu.",
            &[
                "GS. Ngô Bảo Châu và ThS. Lê Thị B dự họp.",
                "TS. Trần Văn C phát biểu.",
            ],
        );
        check(
            "BS. Phạm Văn D khám cho bé.",
            &["BS. Phạm Văn D khám cho bé."],
        );
        check(
            "Nhà ở Q. 1, P. 5, TX. Phú Mỹ.",
            &["Nhà ở Q. 1, P. 5, TX. Phú Mỹ."],
        );
        check(
            "Nhà ở Q.1 và P.5 của TP.HCM. Rất đẹp.",
            &["Nhà ở Q.1 và P.5 của TP.HCM.", "Rất đẹp."],
        );
        check(
            "Theo ThS.BS. Lê Văn E, bệnh nhân ổn.",
            &["Theo ThS.BS. Lê Văn E, bệnh nhân ổn."],
        );
    }

    #[test]
    fn vietnamese_name_initials() {
        check("Ông Th. cho biết sẽ đi.", &["Ông Th. cho biết sẽ đi."]);
        check(
            "Anh Nguyễn Văn T. (35 tuổi) bị bắt.",
            &["Anh Nguyễn Văn T. (35 tuổi) bị bắt."],
        );
        check(
            "Bà Lê Thị H. Nghĩa Hành kể lại.",
            &["Bà Lê Thị H. Nghĩa Hành kể lại."],
        );
        check(
            "Tiếp ông Sergei V. Mikhailov tại Hà Nội.",
            &["Tiếp ông Sergei V. Mikhailov tại Hà Nội."],
        );
        // An initial can end a sentence when a typical sentence opener follows.
        check(
            "Kẻ gây án là Nguyễn Văn T. Theo công an, T. đã bỏ trốn.",
            &["Kẻ gây án là Nguyễn Văn T.", "Theo công an, T. đã bỏ trốn."],
        );
    }

    #[test]
    fn vv_and_etc() {
        check(
            "Mua cam, quýt, v.v. và nhiều thứ khác.",
            &["Mua cam, quýt, v.v. và nhiều thứ khác."],
        );
        check(
            "Mua cam, quýt, v.v. Sau đó về nhà.",
            &["Mua cam, quýt, v.v.", "Sau đó về nhà."],
        );
        check(
            "We bought apples, pears, etc. Then we left.",
            &["We bought apples, pears, etc.", "Then we left."],
        );
        check(
            "Apples, pears, etc. are fruit.",
            &["Apples, pears, etc. are fruit."],
        );
    }

    #[test]
    fn numbers_and_dates() {
        check(
            "Giá 7.960 đồng, tăng 1,8 lần, tức 14,1%. Ngày 14/11/2024 lúc 10h30 giai đoạn 2021-2023 kết thúc.",
            &[
                "Giá 7.960 đồng, tăng 1,8 lần, tức 14,1%.",
                "Ngày 14/11/2024 lúc 10h30 giai đoạn 2021-2023 kết thúc.",
            ],
        );
        check(
            "Doanh thu đạt 2.000 tỷ. 30% đến từ xuất khẩu.",
            &["Doanh thu đạt 2.000 tỷ.", "30% đến từ xuất khẩu."],
        );
        check("Ngày 1.7. Mưa to.", &["Ngày 1.7.", "Mưa to."]);
    }

    #[test]
    fn enumerators_do_not_stand_alone() {
        check(
            "1. Tổng công ty dầu khí. 2. Tập đoàn viễn thông.",
            &["1. Tổng công ty dầu khí.", "2. Tập đoàn viễn thông."],
        );
        check("IV. Kết luận chung.", &["IV. Kết luận chung."]);
        check("a. Nội dung thứ nhất.", &["a. Nội dung thứ nhất."]);
    }

    #[test]
    fn ellipses() {
        check(
            "Anh ấy im lặng… Rồi bỏ đi.",
            &["Anh ấy im lặng…", "Rồi bỏ đi."],
        );
        check(
            "Anh ấy im lặng... Rồi bỏ đi.",
            &["Anh ấy im lặng...", "Rồi bỏ đi."],
        );
        check(
            "Cam, quýt, bưởi… được bày bán.",
            &["Cam, quýt, bưởi… được bày bán."],
        );
        check(
            "Cam, quýt, bưởi... được bày bán.",
            &["Cam, quýt, bưởi... được bày bán."],
        );
        check("Chờ đã…", &["Chờ đã…"]);
    }

    #[test]
    fn quotes_with_several_sentences() {
        check(
            "Ông nói: “Tôi đồng ý. Chúng ta sẽ làm.” Sau đó ông đi.",
            &[
                "Ông nói: “Tôi đồng ý.",
                "Chúng ta sẽ làm.”",
                "Sau đó ông đi.",
            ],
        );
        check(
            "Ông nói: \"Tôi đồng ý. Chúng ta sẽ làm.\" Sau đó ông đi.",
            &[
                "Ông nói: \"Tôi đồng ý.",
                "Chúng ta sẽ làm.\"",
                "Sau đó ông đi.",
            ],
        );
        // Attribution after the quote continues the sentence.
        check("“Ai đó?” - tôi hỏi.", &["“Ai đó?” - tôi hỏi."]);
        check("\"Xong rồi!\" ông nói.", &["\"Xong rồi!\" ông nói."]);
        // A quoted sentence may start lowercase.
        check(
            "Tôi hỏi. \"bao nhiêu con?\" - tôi hỏi.",
            &["Tôi hỏi.", "\"bao nhiêu con?\" - tôi hỏi."],
        );
        check("Họ nói “không”. Rồi về.", &["Họ nói “không”.", "Rồi về."]);
    }

    #[test]
    fn parentheses() {
        check(
            "Anh A (sinh năm 1990. Quê Huế) đến.",
            &["Anh A (sinh năm 1990.", "Quê Huế) đến."],
        );
        check(
            "(Ảnh minh họa.) Tàu cập cảng.",
            &["(Ảnh minh họa.)", "Tàu cập cảng."],
        );
        check(
            "Giá tăng (xem bảng). Người dân lo lắng.",
            &["Giá tăng (xem bảng).", "Người dân lo lắng."],
        );
    }

    #[test]
    fn urls_emails_versions() {
        check(
            "Xem tại https://vnexpress.net/a.b-c.html?x=1. Liên hệ ban@bao.vn. Bản v1.2.3 đã ra.",
            &[
                "Xem tại https://vnexpress.net/a.b-c.html?x=1.",
                "Liên hệ ban@bao.vn.",
                "Bản v1.2.3 đã ra.",
            ],
        );
        check(
            "Truy cập www.chinhphu.vn để biết thêm.",
            &["Truy cập www.chinhphu.vn để biết thêm."],
        );
    }

    #[test]
    fn end_mark_and_dialogue_dash() {
        check(
            "Hội nghị kết thúc./. Tin khác.",
            &["Hội nghị kết thúc./.", "Tin khác."],
        );
        check(
            "Câu hỏi xong. - Ông có ý kiến gì?",
            &["Câu hỏi xong.", "- Ông có ý kiến gì?"],
        );
    }

    #[test]
    fn english_abbreviations() {
        check(
            "Mr. Smith met Dr. Jones at 5 p.m. on Monday.",
            &["Mr. Smith met Dr. Jones at 5 p.m. on Monday."],
        );
        check(
            "He left at 5 p.m. The next day he came back.",
            &["He left at 5 p.m.", "The next day he came back."],
        );
        check(
            "The U.S. Army arrived. They camped.",
            &["The U.S. Army arrived.", "They camped."],
        );
        check(
            "He moved to the U.S. He liked it.",
            &["He moved to the U.S.", "He liked it."],
        );
        check(
            "Fruit, e.g. Apples, i.e. Red ones.",
            &["Fruit, e.g. Apples, i.e. Red ones."],
        );
        check(
            "Samsung Electronics Co. Ltd. said so.",
            &["Samsung Electronics Co. Ltd. said so."],
        );
        check(
            "It rose 5%. Why? Nobody knows!",
            &["It rose 5%.", "Why?", "Nobody knows!"],
        );
        check(
            "See No. 5 and Fig. 3 for details.",
            &["See No. 5 and Fig. 3 for details."],
        );
        check(
            "He said no. Then he left.",
            &["He said no.", "Then he left."],
        );
        check("J. K. Rowling wrote it.", &["J. K. Rowling wrote it."]);
    }

    #[test]
    fn lowercase_after_period_is_not_a_boundary() {
        check(
            "Giá khoảng 5 tr. đồng mỗi tháng.",
            &["Giá khoảng 5 tr. đồng mỗi tháng."],
        );
        check("the abbr. xyz continues.", &["the abbr. xyz continues."]);
        check(
            "Apple ra mắt. iPhone mới rất đắt.",
            &["Apple ra mắt.", "iPhone mới rất đắt."],
        );
    }

    #[test]
    fn lowercase_run_on_after_a_syllable_is_a_boundary() {
        check(
            "Bà luôn rất bận. thỉnh thoảng, tôi đến thăm bà.",
            &["Bà luôn rất bận.", "thỉnh thoảng, tôi đến thăm bà."],
        );
        check(
            "Tôi về Hà Nội. và rồi mọi thứ thay đổi.",
            &["Tôi về Hà Nội.", "và rồi mọi thứ thay đổi."],
        );
        // not after a function word, an honorific, a non-syllable or an English word
        for text in [
            "Vì quá nghèo nên. phải đi làm thuê.",
            "Trường hợp của anh. ở ấp Phước Lộc.",
            "Cô ấy sống ở Melbourne. tôi thì không.",
            "And the emerg. staff pulled out all the stops.",
        ] {
            check(text, &[text]);
        }
    }

    #[test]
    fn vietnamese_syllables() {
        for w in [
            "thuyền", "nghiêng", "quốc", "giữa", "Hà", "xoong", "khuya", "ươn",
        ] {
            assert!(is_vietnamese_syllable(w), "{w}");
        }
        for w in [
            "abbr",
            "emerg",
            "kg",
            "tr",
            "Melbourne",
            "iPhone",
            "HCM",
            "a",
            "2000",
        ] {
            assert!(!is_vietnamese_syllable(w), "{w}");
        }
    }

    #[test]
    fn single_capitals_are_initials_only_in_names() {
        check(
            "Hôm nay 30 độ C. Nhiệt độ thấp nhất 20 độ C.",
            &["Hôm nay 30 độ C.", "Nhiệt độ thấp nhất 20 độ C."],
        );
        check(
            "Đội đứng đầu bảng F. Báo chí khen ngợi.",
            &["Đội đứng đầu bảng F.", "Báo chí khen ngợi."],
        );
        check(
            "Họ đến từ Nam Á. Ngài nói vậy.",
            &["Họ đến từ Nam Á.", "Ngài nói vậy."],
        );
        check(
            "Bắt giữ Đ. N.A (sinh năm 1964) tại nhà.",
            &["Bắt giữ Đ. N.A (sinh năm 1964) tại nhà."],
        );
        check(
            "Cô họ là N. (SN 2001) đã đến.",
            &["Cô họ là N. (SN 2001) đã đến."],
        );
        check(
            "Nạn nhân là chị P. A. Chị P. A. được đưa đi cấp cứu.",
            &["Nạn nhân là chị P. A.", "Chị P. A. được đưa đi cấp cứu."],
        );
        check(
            "Vụ h. 15 tuổi, N. 13 tuổi.",
            &["Vụ h. 15 tuổi, N. 13 tuổi."],
        );
    }

    #[test]
    fn single_letter_words_and_units() {
        check(
            "Dài khoảng 10 m. Trời tối.",
            &["Dài khoảng 10 m.", "Trời tối."],
        );
        check(
            "Không có chỗ ở. Diễn tập kết thúc.",
            &["Không có chỗ ở.", "Diễn tập kết thúc."],
        );
        check(
            "Nghỉ để hội ý. 14h00: Tòa làm việc.",
            &["Nghỉ để hội ý.", "14h00: Tòa làm việc."],
        );
    }

    #[test]
    fn initial_then_sentence_period() {
        // News writes the initial's period and the full stop both: "anh T.."
        check(
            "Quý đánh anh T.. Khi người thân đến, anh T. đã chết.",
            &["Quý đánh anh T..", "Khi người thân đến, anh T. đã chết."],
        );
    }

    #[test]
    fn prefix_before_a_sentence_starter() {
        check(
            "Trú phường Phú Hậu, TP. Ngoài ra, hai người bị bắt.",
            &["Trú phường Phú Hậu, TP.", "Ngoài ra, hai người bị bắt."],
        );
        check(
            "Ở TP. Cần Thơ mưa. Ở TP. Bà Rịa nắng.",
            &["Ở TP. Cần Thơ mưa.", "Ở TP. Bà Rịa nắng."],
        );
        check("Mr. Cho said so.", &["Mr. Cho said so."]);
    }

    #[test]
    fn quotes_written_apart_and_attributions() {
        check(
            "Bình hỏi: \" Căn cứ vào đâu? \". Bình cho biết thêm.",
            &["Bình hỏi: \" Căn cứ vào đâu? \".", "Bình cho biết thêm."],
        );
        check(
            "Nói: \" Xin báo cáo... \", đồng thời khóc.",
            &["Nói: \" Xin báo cáo... \", đồng thời khóc."],
        );
        check(
            "“Chúng ta sẽ thắng.” – Mou cho biết.",
            &["“Chúng ta sẽ thắng.” – Mou cho biết."],
        );
        check("Xong rồi! \"", &["Xong rồi! \""]);
        check("Xong rồi. ” ...", &["Xong rồi. ” ..."]);
    }

    #[test]
    fn ellipsis_continuations() {
        check(
            "Đưa lên cáng... ...Và vận chuyển đi.",
            &["Đưa lên cáng... ...Và vận chuyển đi."],
        );
        check(
            "Cuộc tử chiến huynh đệ. ... Rồi cũng chính con sông này.",
            &[
                "Cuộc tử chiến huynh đệ.",
                "... Rồi cũng chính con sông này.",
            ],
        );
        check(
            "Thoát ra ngoài... \"khi tôi vào thì lửa bén\" - anh kể.",
            &["Thoát ra ngoài...", "\"khi tôi vào thì lửa bén\" - anh kể."],
        );
    }

    #[test]
    fn pathological_inputs_stay_linear() {
        // Quadratic behaviour would make these take minutes.
        for unit in [
            ". ",
            "a. ",
            "... ",
            "T. ",
            "))))",
            "\u{201d} ",
            "x",
            "?! \" ",
            ".\u{301} ",
            "TP. Ngoài ",
        ] {
            let text = unit.repeat(300_000 / unit.len());
            let spans = split_sentences(&text);
            assert!(spans.iter().all(|r| r.start < r.end && r.end <= text.len()));
        }
        let long_token = "a.".repeat(200_000) + " B";
        assert_eq!(split_sentences(&long_token).len(), 2);
    }

    #[test]
    fn decomposed_text_and_odd_input() {
        // NFD input still splits (the scanner works on any str).
        let nfd = "Ho\u{302}m nay. O\u{302}ng \u{111}i.";
        assert_eq!(split(nfd).len(), 2);
        check("...", &["..."]);
        check(". Ông", &[". Ông"]);
        check("?! \u{301}", &["?! \u{301}"]);
        check("A.\u{a0}B", &["A.\u{a0}B"]);
    }
}
