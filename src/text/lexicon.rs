//! Abbreviation and sentence-starter lists, parsed once from `abbreviations.txt`.

use std::collections::HashSet;
use std::sync::LazyLock;

/// The data file; see its header for what each section means.
pub(crate) const SOURCE: &str = include_str!("abbreviations.txt");

/// The parsed lists. Entries borrow from [`SOURCE`], so building the sets copies no strings.
#[derive(Debug, Default)]
pub(crate) struct Lexicon {
    pub prefix: HashSet<&'static str>,
    pub suffix: HashSet<&'static str>,
    pub ambiguous: HashSet<&'static str>,
    pub starters: HashSet<&'static str>,
    pub units: HashSet<&'static str>,
    pub honorifics: HashSet<&'static str>,
    pub non_final: HashSet<&'static str>,
}

/// Built on first use; every later lookup is a hash probe.
pub(crate) static LEXICON: LazyLock<Lexicon> = LazyLock::new(|| Lexicon::parse(SOURCE).0);

impl Lexicon {
    /// Parses the data file. Returns the lexicon and the lines it could not place (an unknown
    /// section, an entry before any section, an entry with spaces); a unit test keeps that empty.
    pub(crate) fn parse(src: &'static str) -> (Lexicon, Vec<String>) {
        let mut lex = Lexicon::default();
        let mut problems = Vec::new();
        let mut section: Option<&str> = None;
        for (no, raw) in src.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = Some(name);
                continue;
            }
            if line.contains(char::is_whitespace) {
                problems.push(format!("line {}: entry with whitespace: {line:?}", no + 1));
                continue;
            }
            let set = match section {
                Some("prefix") => &mut lex.prefix,
                Some("suffix") => &mut lex.suffix,
                Some("ambiguous") => &mut lex.ambiguous,
                Some("starters") => &mut lex.starters,
                Some("units") => &mut lex.units,
                Some("honorifics") => &mut lex.honorifics,
                Some("non-final") => &mut lex.non_final,
                other => {
                    problems.push(format!("line {}: entry in section {other:?}", no + 1));
                    continue;
                }
            };
            set.insert(line);
        }
        (lex, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_file_parses_cleanly() {
        let (lex, problems) = Lexicon::parse(SOURCE);
        assert!(problems.is_empty(), "{problems:#?}");
        for word in ["TP", "PGS.TS", "Mr", "e.g"] {
            assert!(lex.prefix.contains(word), "{word} missing from [prefix]");
        }
        for word in ["etc", "v.v", "a.m"] {
            assert!(lex.suffix.contains(word), "{word} missing from [suffix]");
        }
        assert!(lex.ambiguous.contains("U.S"));
        assert!(lex.starters.contains("Theo") && lex.starters.contains("The"));
        assert!(lex.honorifics.contains("ông") && lex.units.contains("Hz"));
        assert!(lex.non_final.contains("và") && lex.non_final.contains("của"));
    }

    #[test]
    fn sections_do_not_overlap() {
        let (lex, _) = Lexicon::parse(SOURCE);
        let sets = [
            ("prefix", &lex.prefix),
            ("suffix", &lex.suffix),
            ("ambiguous", &lex.ambiguous),
        ];
        for (i, (a, sa)) in sets.iter().enumerate() {
            for (b, sb) in &sets[i + 1..] {
                let both: Vec<_> = sa.intersection(sb).collect();
                assert!(both.is_empty(), "{both:?} in both [{a}] and [{b}]");
            }
        }
    }

    #[test]
    fn parse_reports_misplaced_entries() {
        let (_, problems) = Lexicon::parse("orphan\n[nope]\nx\n[prefix]\nTP HCM\n");
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}
