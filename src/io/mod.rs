//! Reading articles and writing records, shared by every command.
//!
//! Inputs: a `.txt` file (one article, id = file stem), a `.jsonl` file (one
//! `{"id", "text", ...}` object a line, other fields passed through), a `.csv` / `.tsv` file
//! with a header row (one article a row: the `text` column, `id` when there is one, other
//! named columns passed through as strings), a directory of those (walked recursively, in
//! sorted order), or `-` for stdin (JSONL if it starts with `{`, else one plain-text
//! article). Text is normalized to NFC on the way in.
//!
//! Bad input never takes other documents down: every document comes out of [`Documents`] as
//! its own `Result`, and an error names the document (file, line) and the problem.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Largest article accepted by default (bytes); larger ones are rejected, never truncated.
pub const DEFAULT_MAX_ARTICLE_BYTES: usize = 10 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{source_name}: cannot read: {err}")]
    Read { source_name: String, err: io::Error },
    #[error("{0}: no such file or directory")]
    Missing(String),
    #[error("{doc}: invalid UTF-8 at byte {offset}")]
    InvalidUtf8 { doc: String, offset: usize },
    #[error("{doc}: empty article (no text)")]
    Empty { doc: String },
    #[error("{doc}: article is {bytes} bytes, over the limit of {limit} bytes (raise it with --max-article-bytes)")]
    TooLarge {
        doc: String,
        bytes: usize,
        limit: usize,
    },
    #[error("{doc}: malformed JSON line: {msg}")]
    Json { doc: String, msg: String },
    #[error("{doc}: {msg}")]
    Csv { doc: String, msg: String },
    #[error("{0}: not a .txt, .jsonl, .csv or .tsv file")]
    UnknownKind(String),
}

impl InputError {
    /// The document or source the error is about.
    pub fn doc(&self) -> &str {
        match self {
            InputError::Read { source_name, .. } => source_name,
            InputError::Missing(s) | InputError::UnknownKind(s) => s,
            InputError::InvalidUtf8 { doc, .. }
            | InputError::Empty { doc }
            | InputError::TooLarge { doc, .. }
            | InputError::Json { doc, .. }
            | InputError::Csv { doc, .. } => doc,
        }
    }
}

/// One article.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    /// NFC-normalized text.
    pub text: String,
    /// Other fields of a JSONL record, passed through to the output in their order.
    pub extra: Map<String, Value>,
    /// What reading changed about the article (a repeated id made unique); records carry
    /// these first among their warnings.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub max_article_bytes: usize,
    /// JSONL field (or CSV column) holding the article: a string, or an array of strings
    /// (sentences, joined with spaces).
    pub text_field: String,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_article_bytes: DEFAULT_MAX_ARTICLE_BYTES,
            text_field: "text".into(),
        }
    }
}

enum Source {
    Txt(PathBuf),
    Jsonl(PathBuf),
    /// A delimited file with a header row: the path and its delimiter.
    Csv(PathBuf, u8),
    Stdin,
    Bad(InputError),
}

/// Expand the user's input arguments into sources, in order. Directories are walked
/// recursively in sorted order; files of other kinds inside a directory are skipped, but a
/// file named explicitly must be one of the kinds [`classify`] knows.
fn expand(inputs: &[String]) -> Vec<Source> {
    let mut out = Vec::new();
    for inp in inputs {
        if inp == "-" {
            out.push(Source::Stdin);
            continue;
        }
        let p = Path::new(inp);
        if p.is_dir() {
            walk_dir(p, &mut out);
        } else if p.exists() {
            out.push(
                classify(p).unwrap_or_else(|| Source::Bad(InputError::UnknownKind(inp.clone()))),
            );
        } else {
            out.push(Source::Bad(InputError::Missing(inp.clone())));
        }
    }
    out
}

fn classify(p: &Path) -> Option<Source> {
    match p.extension().and_then(|e| e.to_str()) {
        Some("txt") => Some(Source::Txt(p.to_path_buf())),
        Some("jsonl") | Some("ndjson") => Some(Source::Jsonl(p.to_path_buf())),
        Some("csv") => Some(Source::Csv(p.to_path_buf(), b',')),
        Some("tsv") => Some(Source::Csv(p.to_path_buf(), b'\t')),
        _ => None,
    }
}

fn walk_dir(dir: &Path, out: &mut Vec<Source>) {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(err) => {
            out.push(Source::Bad(InputError::Read {
                source_name: dir.display().to_string(),
                err,
            }));
            return;
        }
    };
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk_dir(&p, out);
        } else if let Some(s) = classify(&p) {
            out.push(s);
        }
    }
}

/// Iterator over all documents of the inputs, each a `Result` of its own. Ids come out
/// unique: `--resume`, `--shard` and Markdown file names key on them, so a repeated id (the
/// same JSONL id twice, `a/x.txt` and `b/x.txt`) becomes `id#2`, `id#3`, ... with a warning,
/// the same way on every run over the same inputs.
pub struct Documents {
    sources: std::vec::IntoIter<Source>,
    current: Option<Records>,
    opts: ReadOptions,
    ids: UniqueIds,
}

/// Ids handed out so far, and the next suffix to try for each repeated one (so many
/// repeats of one id cost one probe each, not a scan over all earlier suffixes).
#[derive(Default)]
struct UniqueIds {
    seen: HashSet<String>,
    next: HashMap<String, usize>,
}

impl UniqueIds {
    fn assign(&mut self, mut d: Document) -> Document {
        if self.seen.insert(d.id.clone()) {
            return d;
        }
        let n = self.next.entry(d.id.clone()).or_insert(2);
        let id = loop {
            let c = format!("{}#{n}", d.id);
            *n += 1;
            if !self.seen.contains(&c) {
                break c;
            }
        };
        self.seen.insert(id.clone());
        d.warnings.push(format!(
            "duplicate-id: an earlier article has the id \"{}\"; this one is \"{id}\"",
            d.id
        ));
        d.id = id;
        d
    }
}

/// A source that holds many documents, read one at a time.
enum Records {
    Jsonl(JsonlReader),
    Csv(CsvReader),
}

impl Records {
    fn next_doc(&mut self, opts: &ReadOptions) -> Option<Result<Document, InputError>> {
        match self {
            Records::Jsonl(r) => r.next_doc(opts),
            Records::Csv(r) => r.next_doc(opts),
        }
    }
}

/// Open the inputs for reading. Never fails as a whole: a missing path is an error item.
pub fn documents(inputs: &[String], opts: ReadOptions) -> Documents {
    Documents {
        sources: expand(inputs).into_iter(),
        current: None,
        opts,
        ids: UniqueIds::default(),
    }
}

impl Iterator for Documents {
    type Item = Result<Document, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.next_raw()?;
        Some(item.map(|d| self.ids.assign(d)))
    }
}

impl Documents {
    fn next_raw(&mut self) -> Option<Result<Document, InputError>> {
        loop {
            if let Some(r) = self.current.as_mut() {
                match r.next_doc(&self.opts) {
                    Some(item) => return Some(item),
                    None => self.current = None,
                }
            }
            match self.sources.next()? {
                Source::Bad(e) => return Some(Err(e)),
                Source::Txt(p) => return Some(read_txt(&p, &self.opts)),
                Source::Jsonl(p) => match open(&p) {
                    Ok((f, name)) => {
                        self.current = Some(Records::Jsonl(JsonlReader::new(
                            Box::new(BufReader::new(f)),
                            name,
                        )))
                    }
                    Err(e) => return Some(Err(e)),
                },
                Source::Csv(p, delimiter) => match open(&p) {
                    Ok((f, name)) => {
                        self.current =
                            Some(Records::Csv(CsvReader::new(Box::new(f), delimiter, name)))
                    }
                    Err(e) => return Some(Err(e)),
                },
                Source::Stdin => {
                    let mut buf = Vec::new();
                    if let Err(err) = io::stdin().lock().read_to_end(&mut buf) {
                        return Some(Err(InputError::Read {
                            source_name: "<stdin>".into(),
                            err,
                        }));
                    }
                    let first = buf.iter().find(|b| !b.is_ascii_whitespace()).copied();
                    if first == Some(b'{') {
                        self.current = Some(Records::Jsonl(JsonlReader::new(
                            Box::new(io::Cursor::new(buf)),
                            "<stdin>".into(),
                        )));
                    } else {
                        return Some(text_document("stdin".into(), "<stdin>", buf, &self.opts));
                    }
                }
            }
        }
    }
}

/// A file that holds many documents, opened, with the name its errors give.
fn open(p: &Path) -> Result<(File, String), InputError> {
    let name = p.display().to_string();
    match File::open(p) {
        Ok(f) => Ok((f, name)),
        Err(err) => Err(InputError::Read {
            source_name: name,
            err,
        }),
    }
}

fn read_txt(p: &Path, opts: &ReadOptions) -> Result<Document, InputError> {
    let name = p.display().to_string();
    let id = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.clone());
    // Check the size before reading, so a huge file is refused without loading it.
    if let Ok(md) = p.metadata() {
        if md.len() as usize > opts.max_article_bytes {
            return Err(InputError::TooLarge {
                doc: name,
                bytes: md.len() as usize,
                limit: opts.max_article_bytes,
            });
        }
    }
    let bytes = std::fs::read(p).map_err(|err| InputError::Read {
        source_name: name.clone(),
        err,
    })?;
    text_document(id, &name, bytes, opts)
}

fn text_document(
    id: String,
    name: &str,
    bytes: Vec<u8>,
    opts: &ReadOptions,
) -> Result<Document, InputError> {
    if bytes.len() > opts.max_article_bytes {
        return Err(InputError::TooLarge {
            doc: name.to_string(),
            bytes: bytes.len(),
            limit: opts.max_article_bytes,
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| InputError::InvalidUtf8 {
        doc: name.to_string(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    finish(id, name, text, Map::new())
}

fn finish(
    id: String,
    name: &str,
    text: String,
    extra: Map<String, Value>,
) -> Result<Document, InputError> {
    let text = crate::text::normalize(&text).into_owned();
    if text.trim().is_empty() {
        return Err(InputError::Empty {
            doc: name.to_string(),
        });
    }
    Ok(Document {
        id,
        text,
        extra,
        warnings: Vec::new(),
    })
}

struct JsonlReader {
    reader: Box<dyn BufRead + Send>,
    name: String,
    line_no: usize,
    buf: Vec<u8>,
}

impl JsonlReader {
    fn new(reader: Box<dyn BufRead + Send>, name: String) -> Self {
        JsonlReader {
            reader,
            name,
            line_no: 0,
            buf: Vec::new(),
        }
    }

    fn next_doc(&mut self, opts: &ReadOptions) -> Option<Result<Document, InputError>> {
        loop {
            self.buf.clear();
            self.line_no += 1;
            // Read at most the article limit plus some slack for the JSON around it.
            let limit = opts.max_article_bytes.saturating_add(64 * 1024);
            match (&mut self.reader)
                .take(limit as u64 + 1)
                .read_until(b'\n', &mut self.buf)
            {
                Ok(0) => return None,
                Ok(_) => {}
                Err(err) => {
                    return Some(Err(InputError::Read {
                        source_name: format!("{}:{}", self.name, self.line_no),
                        err,
                    }))
                }
            }
            let doc = format!("{}:{}", self.name, self.line_no);
            if self.buf.len() > limit && !self.buf.ends_with(b"\n") {
                // Skip the rest of the over-long line so the next record starts cleanly.
                let mut sink = Vec::new();
                let _ = self.reader.read_until(b'\n', &mut sink);
                return Some(Err(InputError::TooLarge {
                    doc,
                    bytes: self.buf.len() + sink.len(),
                    limit: opts.max_article_bytes,
                }));
            }
            if self.buf.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            return Some(parse_record(&self.buf, doc, opts));
        }
    }
}

fn parse_record(line: &[u8], doc: String, opts: &ReadOptions) -> Result<Document, InputError> {
    let line = utf8_field(line, &doc)?;
    let value: Value = serde_json::from_str(line).map_err(|e| InputError::Json {
        doc: doc.clone(),
        msg: e.to_string(),
    })?;
    let Value::Object(mut obj) = value else {
        return Err(InputError::Json {
            doc,
            msg: "expected a JSON object like {\"id\": ..., \"text\": ...}".into(),
        });
    };
    let id = match obj.shift_remove("id") {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        None => doc.clone(),
        Some(other) => {
            return Err(InputError::Json {
                doc,
                msg: format!("\"id\" must be a string or number, got {other}"),
            })
        }
    };
    let name = format!("{doc} (id {id})");
    let field = opts.text_field.as_str();
    let text = match obj.shift_remove(field) {
        Some(Value::String(s)) => s,
        Some(Value::Array(parts)) if parts.iter().all(Value::is_string) => parts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        Some(_) => {
            return Err(InputError::Json {
                doc: name,
                msg: format!("\"{field}\" must be a string or an array of strings"),
            })
        }
        None => {
            return Err(InputError::Json {
                doc: name,
                msg: format!("missing \"{field}\" field (choose another with --text-field)"),
            })
        }
    };
    if text.len() > opts.max_article_bytes {
        return Err(InputError::TooLarge {
            doc: name,
            bytes: text.len(),
            limit: opts.max_article_bytes,
        });
    }
    finish(id, &name, text, obj)
}

/// Rows of a delimited file with a header: a row is one article. The header is read first;
/// without the text column the file is one error (every row would fail the same way). A bad
/// row (wrong field count, invalid UTF-8, empty or huge text) is an error of its own, named
/// by its line, and reading goes on with the next row.
struct CsvReader {
    rows: csv::Reader<Box<dyn Read + Send>>,
    name: String,
    /// Column names, index of the text column, of `id` (when present); `None` before the
    /// header is read.
    columns: Option<(Vec<String>, usize, Option<usize>)>,
    done: bool,
    record: csv::ByteRecord,
}

impl CsvReader {
    fn new(reader: Box<dyn Read + Send>, delimiter: u8, name: String) -> Self {
        let rows = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .from_reader(reader);
        CsvReader {
            rows,
            name,
            columns: None,
            done: false,
            record: csv::ByteRecord::new(),
        }
    }

    fn header(&mut self, opts: &ReadOptions) -> Result<(), InputError> {
        let doc = format!("{}:1", self.name);
        let header = self.rows.byte_headers().map_err(|e| InputError::Csv {
            doc: doc.clone(),
            msg: format!("malformed CSV header: {e}"),
        })?;
        let mut names = Vec::with_capacity(header.len());
        for field in header {
            names.push(utf8_field(field, &doc)?.trim().to_string());
        }
        let field = opts.text_field.as_str();
        let Some(text) = names.iter().position(|n| n == field) else {
            let shown: Vec<&str> = names
                .iter()
                .map(String::as_str)
                .filter(|n| !n.is_empty())
                .collect();
            return Err(InputError::Csv {
                doc,
                msg: format!(
                    "no column \"{field}\" in the CSV header (columns: {}); choose one with --text-field",
                    shown.join(", ")
                ),
            });
        };
        let id = names.iter().position(|n| n == "id");
        self.columns = Some((names, text, id));
        Ok(())
    }

    fn next_doc(&mut self, opts: &ReadOptions) -> Option<Result<Document, InputError>> {
        if self.done {
            return None;
        }
        if self.columns.is_none() {
            if let Err(e) = self.header(opts) {
                self.done = true;
                return Some(Err(e));
            }
        }
        match self.rows.read_byte_record(&mut self.record) {
            Ok(false) => {
                self.done = true;
                return None;
            }
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                // a row of the wrong length is skipped; an I/O error ends the file
                let msg = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("malformed CSV row: {len} fields, the header has {expected_len}"),
                    _ => {
                        self.done = true;
                        format!("malformed CSV: {e}")
                    }
                };
                return Some(Err(InputError::Csv {
                    doc: format!("{}:{line}", self.name),
                    msg,
                }));
            }
        }
        let line = self.record.position().map_or(0, csv::Position::line);
        let doc = format!("{}:{line}", self.name);
        let (names, text_col, id_col) = self.columns.as_ref().expect("header read above");
        Some(row_document(
            &self.record,
            names,
            *text_col,
            *id_col,
            doc,
            opts,
        ))
    }
}

/// One CSV row as a document: `id` (or the row's `file:line`), the text column, and every
/// other named column as a string field (an unnamed one, such as a pandas index, is dropped).
fn row_document(
    record: &csv::ByteRecord,
    names: &[String],
    text_col: usize,
    id_col: Option<usize>,
    doc: String,
    opts: &ReadOptions,
) -> Result<Document, InputError> {
    let id = match id_col.map(|i| utf8_field(&record[i], &doc)).transpose()? {
        Some(id) if !id.trim().is_empty() => id.trim().to_string(),
        _ => doc.clone(),
    };
    let name = format!("{doc} (id {id})");
    let raw = &record[text_col];
    if raw.len() > opts.max_article_bytes {
        return Err(InputError::TooLarge {
            doc: name,
            bytes: raw.len(),
            limit: opts.max_article_bytes,
        });
    }
    let text = utf8_field(raw, &name)?.to_string();
    let mut extra = Map::new();
    for (i, col) in names.iter().enumerate() {
        if i == text_col || Some(i) == id_col || col.is_empty() {
            continue;
        }
        extra.insert(
            col.clone(),
            Value::String(utf8_field(&record[i], &name)?.to_string()),
        );
    }
    finish(id, &name, text, extra)
}

/// `bytes` as text, or the error naming `doc` and the first bad byte.
fn utf8_field<'a>(bytes: &'a [u8], doc: &str) -> Result<&'a str, InputError> {
    std::str::from_utf8(bytes).map_err(|e| InputError::InvalidUtf8 {
        doc: doc.to_string(),
        offset: e.valid_up_to(),
    })
}

/// Writes JSON Lines records to stdout or a file.
pub struct JsonlWriter {
    out: Box<dyn Write + Send>,
}

impl JsonlWriter {
    /// `path`: `None` or `-` for stdout; `append` keeps an existing file's records.
    pub fn create(path: Option<&Path>, append: bool) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = match path {
            None => Box::new(io::BufWriter::new(io::stdout())),
            Some(p) if p == Path::new("-") => Box::new(io::BufWriter::new(io::stdout())),
            Some(p) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(append)
                    .truncate(!append)
                    .open(p)?;
                Box::new(io::BufWriter::new(f))
            }
        };
        Ok(JsonlWriter { out })
    }

    /// Write one record as a line; flushed so a killed run never leaves half a line behind
    /// more than the record in flight.
    pub fn write(&mut self, record: &Value) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.out.write_all(&line)?;
        self.out.flush()
    }

    /// Raw line output (e.g. `--format lines`).
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ReadOptions {
        ReadOptions::default()
    }

    #[test]
    fn jsonl_records_pass_through_fields_and_report_bad_lines() {
        let data = "{\"id\": 7, \"text\": \"Xin chào.\", \"title\": \"T\"}\nnot json\n\n{\"text\": 3}\n{\"id\":\"b\",\"text\":\"Hai.\"}\n";
        let mut r = JsonlReader::new(
            Box::new(io::Cursor::new(data.as_bytes().to_vec())),
            "f.jsonl".into(),
        );
        let a = r.next_doc(&opts()).unwrap().unwrap();
        assert_eq!(a.id, "7");
        assert_eq!(a.extra.get("title"), Some(&Value::String("T".into())));
        let e = r.next_doc(&opts()).unwrap().unwrap_err();
        assert!(
            e.to_string().starts_with("f.jsonl:2: malformed JSON"),
            "{e}"
        );
        let e = r.next_doc(&opts()).unwrap().unwrap_err();
        assert!(e.to_string().contains("f.jsonl:4"), "{e}");
        let b = r.next_doc(&opts()).unwrap().unwrap();
        assert_eq!(b.id, "b");
        assert!(r.next_doc(&opts()).is_none());
    }

    fn csv(data: &[u8], delimiter: u8) -> CsvReader {
        CsvReader::new(
            Box::new(io::Cursor::new(data.to_vec())),
            delimiter,
            "f.csv".into(),
        )
    }

    #[test]
    fn csv_rows_are_documents_and_bad_rows_errors_of_their_own() {
        // a pandas index column (no name), a quoted field with a comma and a newline
        let data = b",id,article,highlights\n\
0,a1,\"Mot, hai.\nBa.\",h1\n\
1,a2,\"\",h2\n\
2,a3,x,h3,extra\n\
3,,\"Khong id.\",h4\n\
4,a5,\"bad \xff\",h5\n\
5,a6,Cuoi.,h6\n";
        let o = ReadOptions {
            text_field: "article".into(),
            ..ReadOptions::default()
        };
        let mut r = csv(data, b',');
        let a = r.next_doc(&o).unwrap().unwrap();
        assert_eq!((a.id.as_str(), a.text.as_str()), ("a1", "Mot, hai.\nBa."));
        assert_eq!(a.extra.len(), 1, "unnamed column dropped: {:?}", a.extra);
        assert_eq!(a.extra.get("highlights"), Some(&Value::String("h1".into())));
        let e = r.next_doc(&o).unwrap().unwrap_err();
        assert_eq!(e.to_string(), "f.csv:4 (id a2): empty article (no text)");
        let e = r.next_doc(&o).unwrap().unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.csv:5: malformed CSV row: 5 fields, the header has 4"
        );
        let c = r.next_doc(&o).unwrap().unwrap();
        assert_eq!(c.id, "f.csv:6", "no id: the row names itself");
        let e = r.next_doc(&o).unwrap().unwrap_err();
        assert!(
            e.to_string().starts_with("f.csv:7 (id a5): invalid UTF-8"),
            "{e}"
        );
        assert_eq!(r.next_doc(&o).unwrap().unwrap().text, "Cuoi.");
        assert!(r.next_doc(&o).is_none());
    }

    #[test]
    fn csv_without_the_text_column_is_one_error_naming_the_columns() {
        let mut r = csv(b"id\tarticle\n1\tMot.\n2\tHai.\n", b'\t');
        let e = r.next_doc(&opts()).unwrap().unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.csv:1: no column \"text\" in the CSV header (columns: id, article); \
             choose one with --text-field"
        );
        assert!(r.next_doc(&opts()).is_none());
        let small = ReadOptions {
            max_article_bytes: 3,
            text_field: "article".into(),
        };
        let mut r = csv(b"id\tarticle\n1\tMot.\n2\tHa\n", b'\t');
        assert!(matches!(
            r.next_doc(&small),
            Some(Err(InputError::TooLarge { bytes: 4, .. }))
        ));
        assert_eq!(r.next_doc(&small).unwrap().unwrap().id, "2");
    }

    #[test]
    fn text_is_nfc_normalized() {
        // "Việt" with a decomposed ệ (e + circumflex + dot below).
        let decomposed = "Vie\u{0302}\u{0323}t Nam.";
        let d = text_document("x".into(), "x", decomposed.as_bytes().to_vec(), &opts()).unwrap();
        assert_eq!(d.text, "Việt Nam.");
    }

    #[test]
    fn bad_utf8_empty_and_huge_are_errors() {
        let e = text_document("x".into(), "a.txt", vec![b'o', b'k', 0xff], &opts()).unwrap_err();
        assert_eq!(e.to_string(), "a.txt: invalid UTF-8 at byte 2");
        let e = text_document("x".into(), "b.txt", b"  \n ".to_vec(), &opts()).unwrap_err();
        assert!(matches!(e, InputError::Empty { .. }));
        let small = ReadOptions {
            max_article_bytes: 4,
            ..ReadOptions::default()
        };
        let e = text_document("x".into(), "c.txt", b"hello".to_vec(), &small).unwrap_err();
        assert!(matches!(
            e,
            InputError::TooLarge {
                bytes: 5,
                limit: 4,
                ..
            }
        ));
    }

    #[test]
    fn over_long_jsonl_line_is_skipped_cleanly() {
        let small = ReadOptions {
            max_article_bytes: 8,
            ..ReadOptions::default()
        };
        let long = format!(
            "{{\"id\":\"a\",\"text\":\"{}\"}}\n{{\"id\":\"b\",\"text\":\"ok\"}}\n",
            "x".repeat(70_000)
        );
        let mut r = JsonlReader::new(Box::new(io::Cursor::new(long.into_bytes())), "f".into());
        assert!(matches!(
            r.next_doc(&small).unwrap(),
            Err(InputError::TooLarge { .. })
        ));
        assert_eq!(r.next_doc(&small).unwrap().unwrap().id, "b");
    }

    #[test]
    fn repeated_ids_become_unique_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["a", "b"] {
            std::fs::create_dir(d.join(sub)).unwrap();
            std::fs::write(d.join(sub).join("x.txt"), "Một.").unwrap();
        }
        let jsonl = d.join("more.jsonl");
        let lines = [
            r#"{"id":"x","text":"Hai."}"#,
            r#"{"id":"x#2","text":"Ba."}"#,
            r#"{"id":7,"text":"Bốn."}"#,
            r#"{"id":"7","text":"Năm."}"#,
        ];
        std::fs::write(&jsonl, lines.join("\n")).unwrap();
        let inputs = [d.display().to_string(), jsonl.display().to_string()];
        let docs: Vec<Document> = documents(&inputs, ReadOptions::default())
            .map(|d| d.unwrap())
            .collect();
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        // the directory also holds more.jsonl: its records come twice, renamed the second time
        assert_eq!(
            ids,
            ["x", "x#2", "x#3", "x#2#2", "7", "7#2", "x#4", "x#2#3", "7#3", "7#4"]
        );
        assert!(docs[0].warnings.is_empty() && docs[4].warnings.is_empty());
        assert_eq!(
            docs[1].warnings,
            ["duplicate-id: an earlier article has the id \"x\"; this one is \"x#2\""]
        );
        // the same inputs give the same ids on every run (--resume and --shard rely on it)
        let again: Vec<String> = documents(&inputs, ReadOptions::default())
            .map(|d| d.unwrap().id)
            .collect();
        assert_eq!(again, ids);
    }
}
