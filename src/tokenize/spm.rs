//! SentencePiece encode/decode in Rust, matching the `sentencepiece` library (0.2.x) exactly:
//! its normalizer (precompiled charsmap, longest rule first; dummy prefix; whitespace
//! collapsing), the optimized unigram Viterbi (f32 scores, unknown characters penalised by 10),
//! the score-driven BPE merge loop, byte fallback, and `Decode`'s surface rules.
//! The model file is parsed with the `sentencepiece-model` crate.

use std::collections::{BinaryHeap, HashMap};
use std::ops::Range;

use sentencepiece_model::{
    ModelProto, ModelType, NormalizerSpec, SentencePiece, SentencePieceModel, TrainerSpec,
    Type as PieceType,
};

use super::charsmap::CharsMap;
use super::trie::Trie;

/// U+2581, SentencePiece's visible space.
pub(crate) const SPACE_SYMBOL: char = '\u{2581}';
const SPACE_SYMBOL_STR: &str = "\u{2581}";
/// Penalty added below the lowest piece score for an unknown character (kUnkPenalty).
const UNK_PENALTY: f32 = 10.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Unigram,
    Bpe,
}

#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub text: String,
    pub score: f32,
    pub ty: PieceType,
}

/// One SentencePiece normalizer (the model's, or its optional denormalizer).
#[derive(Debug, Clone)]
struct Normalizer {
    charsmap: Option<CharsMap>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    treat_whitespace_as_suffix: bool,
}

impl Normalizer {
    fn new(spec: &NormalizerSpec, suffix: bool, what: &str) -> Result<Self, String> {
        let charsmap = match spec.precompiled_charsmap.as_deref() {
            Some(b) if !b.is_empty() => {
                Some(CharsMap::parse(b).map_err(|e| format!("{what}: {e}"))?)
            }
            _ => None,
        };
        Ok(Normalizer {
            charsmap,
            add_dummy_prefix: spec.add_dummy_prefix(),
            remove_extra_whitespaces: spec.remove_extra_whitespaces(),
            escape_whitespaces: spec.escape_whitespaces(),
            treat_whitespace_as_suffix: suffix,
        })
    }

    /// NormalizePrefix: user-defined symbols pass through; else the longest charsmap rule;
    /// else one character. Returns (replacement, consumed bytes).
    #[inline]
    fn normalize_prefix<'a>(&'a self, input: &'a str, user: Option<&Trie>) -> (&'a str, usize) {
        let bytes = input.as_bytes();
        if let Some(len) = user.and_then(|t| t.longest_prefix_len(bytes)) {
            if input.is_char_boundary(len) {
                return (&input[..len], len);
            }
        }
        if let Some(cm) = &self.charsmap {
            if let Some((len, rep)) = cm.longest_prefix(bytes) {
                // A rule ending inside a character can only come from a corrupt table; treat
                // it as no rule rather than split a character.
                if input.is_char_boundary(len) {
                    return (rep, len);
                }
            }
        }
        let len = input.chars().next().map_or(input.len(), char::len_utf8);
        (&input[..len], len)
    }

    fn normalize(&self, input: &str, user: Option<&Trie>) -> String {
        let mut input = input;
        if input.is_empty() {
            return String::new();
        }
        if self.remove_extra_whitespaces {
            while !input.is_empty() {
                let (rep, len) = self.normalize_prefix(input, user);
                if rep != " " {
                    break;
                }
                input = &input[len..];
            }
        }
        if input.is_empty() {
            return String::new();
        }
        let mut out = String::with_capacity(input.len() * 3);
        let ws = if self.escape_whitespaces {
            SPACE_SYMBOL_STR
        } else {
            " "
        };
        if !self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.push_str(ws);
        }
        let mut is_prev_space = self.remove_extra_whitespaces;
        while !input.is_empty() {
            let (rep, len) = self.normalize_prefix(input, user);
            let mut sp = rep;
            while is_prev_space && sp.starts_with(' ') {
                sp = &sp[1..];
            }
            if !sp.is_empty() {
                if self.escape_whitespaces {
                    for c in sp.chars() {
                        if c == ' ' {
                            out.push(SPACE_SYMBOL);
                        } else {
                            out.push(c);
                        }
                    }
                } else {
                    out.push_str(sp);
                }
                is_prev_space = sp.ends_with(' ');
            }
            input = &input[len..];
            if !self.remove_extra_whitespaces {
                is_prev_space = false;
            }
        }
        if self.remove_extra_whitespaces {
            while out.ends_with(ws) {
                out.truncate(out.len() - ws.len());
            }
        }
        if self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.push_str(ws);
        }
        out
    }
}

/// An encoded piece before it is turned into strings: a span of the normalized text, or a
/// byte-fallback byte.
#[derive(Debug, Clone)]
enum Seg {
    Text(Range<usize>),
    Byte(u8),
}

/// A parsed SentencePiece model.
#[derive(Debug, Clone)]
pub(crate) struct SpmModel {
    pieces: Vec<Piece>,
    /// Control, unknown and byte pieces (looked up first, like `PieceToId`).
    reserved: HashMap<String, u32>,
    /// Normal, user-defined and unused pieces.
    normal: HashMap<String, u32>,
    /// Trie over `normal` (unigram lattice).
    trie: Trie,
    /// User-defined symbols (always emitted whole, never normalized).
    user: Option<Trie>,
    algorithm: Algorithm,
    unk_id: u32,
    min_score: f32,
    max_score: f32,
    byte_fallback: bool,
    byte_ids: Vec<u32>,
    unk_surface: String,
    normalizer: Normalizer,
    denormalizer: Option<Normalizer>,
    charsmap_bytes: Option<Vec<u8>>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    pad_id: Option<u32>,
}

fn byte_piece(b: u8) -> String {
    format!("<0x{b:02X}>")
}

fn piece_type(t: i32) -> Result<PieceType, String> {
    PieceType::try_from(t).map_err(|_| format!("unknown piece type {t}"))
}

/// The segmentation algorithm of the trainer spec (UNIGRAM when unset); others are refused.
fn algorithm(trainer: &TrainerSpec) -> Result<Algorithm, String> {
    match ModelType::try_from(trainer.model_type.unwrap_or(1)) {
        Ok(ModelType::Unigram) => Ok(Algorithm::Unigram),
        Ok(ModelType::Bpe) => Ok(Algorithm::Bpe),
        Ok(other) => Err(format!(
            "model type {} is not supported (only UNIGRAM and BPE)",
            other.as_str_name()
        )),
        Err(_) => Err(format!("unknown model type {:?}", trainer.model_type)),
    }
}

/// The lowest and highest score of the normal pieces, from unigram::Model's starting
/// points FLT_MAX / FLT_MIN (FLT_MIN is the smallest positive float, so an all-negative
/// vocabulary keeps max_score at ~1e-38); 0 where no piece moved them.
fn score_range(pieces: &[Piece]) -> (f32, f32) {
    let mut min_score = f32::MAX;
    let mut max_score = f32::MIN_POSITIVE;
    for p in pieces.iter().filter(|p| p.ty == PieceType::Normal) {
        min_score = min_score.min(p.score);
        max_score = max_score.max(p.score);
    }
    if min_score == f32::MAX {
        min_score = 0.0;
    }
    if max_score == f32::MIN_POSITIVE {
        max_score = 0.0;
    }
    (min_score, max_score)
}

/// The denormalizer, when the model has one with a non-empty charsmap.
fn denormalizer(proto: &ModelProto) -> Result<Option<Normalizer>, String> {
    match &proto.denormalizer_spec {
        Some(d)
            if d.precompiled_charsmap
                .as_ref()
                .is_some_and(|c| !c.is_empty()) =>
        {
            Ok(Some(Normalizer::new(d, false, "denormalizer")?))
        }
        _ => Ok(None),
    }
}

/// A trainer's special id (`bos_id`, ...) when it names one of the `n_pieces` pieces
/// (negative: disabled).
fn special_id(v: i32, n_pieces: usize) -> Option<u32> {
    if v >= 0 && (v as usize) < n_pieces {
        Some(v as u32)
    } else {
        None
    }
}

/// The pieces of a model and their lookup tables, as [`SpmModel::from_bytes`] reads them.
struct PieceTable {
    pieces: Vec<Piece>,
    reserved: HashMap<String, u32>,
    normal: HashMap<String, u32>,
    user_syms: Trie,
    unk_id: Option<u32>,
    /// Id of each byte piece `<0xNN>`; `u32::MAX` where missing.
    byte_ids: Vec<u32>,
}

impl PieceTable {
    /// Reads every piece in id order; refuses empty, duplicate or inconsistent pieces.
    fn read(protos: &[SentencePiece], byte_fallback: bool) -> Result<Self, String> {
        let mut table = PieceTable {
            pieces: Vec::with_capacity(protos.len()),
            reserved: HashMap::new(),
            normal: HashMap::with_capacity(protos.len()),
            user_syms: Trie::default(),
            unk_id: None,
            byte_ids: vec![u32::MAX; 256],
        };
        let byte_names: HashMap<String, u8> = (0..=255u8).map(|b| (byte_piece(b), b)).collect();
        for (i, p) in protos.iter().enumerate() {
            table.add(i, p, byte_fallback, &byte_names)?;
        }
        Ok(table)
    }

    /// Adds piece `i`: its text to the reserved or normal map, and its role as a
    /// user-defined symbol, the unknown piece or a byte piece.
    fn add(
        &mut self,
        i: usize,
        p: &SentencePiece,
        byte_fallback: bool,
        byte_names: &HashMap<String, u8>,
    ) -> Result<(), String> {
        let id = i as u32;
        let text = p.piece.clone().unwrap_or_default();
        if text.is_empty() {
            return Err(format!("piece {i} is empty"));
        }
        let ty = match p.r#type {
            None => PieceType::Normal,
            Some(t) => piece_type(t)?,
        };
        let is_normal = matches!(
            ty,
            PieceType::Normal | PieceType::UserDefined | PieceType::Unused
        );
        let map = if is_normal {
            &mut self.normal
        } else {
            &mut self.reserved
        };
        if map.insert(text.clone(), id).is_some() {
            return Err(format!("piece {text:?} is defined twice"));
        }
        match ty {
            PieceType::UserDefined => self.user_syms.insert(text.as_bytes(), id),
            PieceType::Unknown => {
                if self.unk_id.is_some() {
                    return Err("more than one unknown piece".into());
                }
                self.unk_id = Some(id);
            }
            PieceType::Byte => {
                if !byte_fallback {
                    return Err(format!(
                        "byte piece {text:?} found although byte_fallback is false"
                    ));
                }
                let b = *byte_names
                    .get(&text)
                    .ok_or_else(|| format!("byte piece {text:?} is invalid"))?;
                self.byte_ids[b as usize] = id;
            }
            _ => {}
        }
        self.pieces.push(Piece {
            text,
            score: p.score(),
            ty,
        });
        Ok(())
    }
}

impl SpmModel {
    /// Parses a serialized `ModelProto`. `Err` is a reason without the file name.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let model = SentencePieceModel::from_slice(bytes)
            .map_err(|e| format!("not a SentencePiece model protobuf ({e})"))?;
        let proto = model.model();
        if proto.pieces.is_empty() {
            return Err("the model has no pieces".into());
        }
        if proto.pieces.len() > u32::MAX as usize / 2 {
            return Err("the model has too many pieces".into());
        }
        let default_trainer = Default::default();
        let trainer = proto.trainer_spec.as_ref().unwrap_or(&default_trainer);
        let algorithm = algorithm(trainer)?;
        let byte_fallback = trainer.byte_fallback();
        let table = PieceTable::read(&proto.pieces, byte_fallback)?;
        let unk_id = table.unk_id.ok_or("the model defines no unknown piece")?;
        if byte_fallback && table.byte_ids.contains(&u32::MAX) {
            return Err("byte_fallback is set but not all 256 byte pieces exist".into());
        }
        let (min_score, max_score) = score_range(&table.pieces);
        let mut trie = Trie::default();
        for (text, &id) in &table.normal {
            trie.insert(text.as_bytes(), id);
        }
        let default_norm = NormalizerSpec::default();
        let nspec = proto.normalizer_spec.as_ref().unwrap_or(&default_norm);
        let normalizer =
            Normalizer::new(nspec, trainer.treat_whitespace_as_suffix(), "normalizer")?;
        let denormalizer = denormalizer(proto)?;
        let charsmap_bytes = nspec.precompiled_charsmap.clone().filter(|c| !c.is_empty());
        let n_pieces = table.pieces.len();
        Ok(SpmModel {
            user: (!table.user_syms.is_empty()).then_some(table.user_syms),
            pieces: table.pieces,
            reserved: table.reserved,
            normal: table.normal,
            trie,
            algorithm,
            unk_id,
            min_score,
            max_score,
            byte_fallback,
            byte_ids: table.byte_ids,
            unk_surface: trainer.unk_surface().to_string(),
            normalizer,
            denormalizer,
            charsmap_bytes,
            bos_id: special_id(trainer.bos_id(), n_pieces),
            eos_id: special_id(trainer.eos_id(), n_pieces),
            pad_id: special_id(trainer.pad_id(), n_pieces),
        })
    }

    pub(crate) fn pieces(&self) -> &[Piece] {
        &self.pieces
    }
    pub(crate) fn len(&self) -> usize {
        self.pieces.len()
    }
    pub(crate) fn unk_id(&self) -> u32 {
        self.unk_id
    }
    pub(crate) fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }
    pub(crate) fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }
    pub(crate) fn pad_id(&self) -> Option<u32> {
        self.pad_id
    }
    pub(crate) fn charsmap_bytes(&self) -> Option<&[u8]> {
        self.charsmap_bytes.as_deref()
    }
    pub(crate) fn id_to_piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(|p| p.text.as_str())
    }
    pub(crate) fn piece_type(&self, id: u32) -> Option<PieceType> {
        self.pieces.get(id as usize).map(|p| p.ty)
    }

    /// `PieceToId`: reserved pieces first, then normal ones, else the unknown id.
    pub(crate) fn piece_to_id(&self, piece: &str) -> u32 {
        self.reserved
            .get(piece)
            .or_else(|| self.normal.get(piece))
            .copied()
            .unwrap_or(self.unk_id)
    }

    pub(crate) fn normalize(&self, text: &str) -> String {
        self.normalizer.normalize(text, self.user.as_ref())
    }

    /// Pieces as strings, like `sp.encode(text, out_type=str)`: unknown runs keep their
    /// surface text (not `<unk>`), byte fallback gives `<0xXX>` pieces.
    pub(crate) fn encode_pieces(&self, text: &str) -> Vec<(String, u32)> {
        let normalized = self.normalize(text);
        self.populate(&normalized)
            .into_iter()
            .map(|(seg, id)| match seg {
                Seg::Text(r) => (normalized[r].to_string(), id),
                Seg::Byte(b) => (byte_piece(b), id),
            })
            .collect()
    }

    /// Ids, like `sp.encode(text)`.
    pub(crate) fn encode_ids(&self, text: &str) -> Vec<u32> {
        let normalized = self.normalize(text);
        self.populate(&normalized)
            .into_iter()
            .map(|(_, id)| id)
            .collect()
    }

    /// Model output -> SentencePieceText pieces (PopulateSentencePieceText).
    fn populate(&self, normalized: &str) -> Vec<(Seg, u32)> {
        let raw = match self.algorithm {
            Algorithm::Unigram => self.unigram(normalized),
            Algorithm::Bpe => self.bpe(normalized),
        };
        let mut out: Vec<(Seg, u32)> = Vec::with_capacity(raw.len());
        let mut prev_unk = false;
        for (r, id) in raw {
            let is_unk = id == self.unk_id;
            if is_unk && self.byte_fallback {
                for &b in &normalized.as_bytes()[r.clone()] {
                    out.push((Seg::Byte(b), self.byte_ids[b as usize]));
                }
            } else if is_unk && prev_unk {
                if let Some((Seg::Text(last), _)) = out.last_mut() {
                    last.end = r.end;
                }
            } else {
                out.push((Seg::Text(r), id));
            }
            prev_unk = is_unk;
        }
        out
    }

    fn is_unused(&self, id: u32) -> bool {
        self.pieces[id as usize].ty == PieceType::Unused
    }

    /// unigram::Model::EncodeOptimized.
    fn unigram(&self, s: &str) -> Vec<(Range<usize>, u32)> {
        #[derive(Clone, Copy)]
        struct Best {
            id: u32,
            score: f32,
            starts_at: Option<usize>,
        }
        let bytes = s.as_bytes();
        let size = bytes.len();
        if size == 0 {
            return vec![];
        }
        let unk_score = self.min_score - UNK_PENALTY;
        let mut best = vec![
            Best {
                id: self.unk_id,
                score: 0.0,
                starts_at: None
            };
            size + 1
        ];
        let mut starts_at = 0usize;
        while starts_at < size {
            let till_here = best[starts_at].score;
            let mblen = one_char_len(bytes[starts_at]).min(size - starts_at);
            let mut has_single = false;
            self.trie.for_each_prefix(&bytes[starts_at..], |len, id| {
                if self.is_unused(id) {
                    return;
                }
                let target = &mut best[starts_at + len];
                let better = if self.pieces[id as usize].ty == PieceType::UserDefined {
                    // `length * max_score_ - 0.1` is a double in SentencePiece.
                    let cand = (len as f32 * self.max_score) as f64 - 0.1 + till_here as f64;
                    if target.starts_at.is_none() || cand > target.score as f64 {
                        Some(cand as f32)
                    } else {
                        None
                    }
                } else {
                    let cand = self.pieces[id as usize].score + till_here;
                    if target.starts_at.is_none() || cand > target.score {
                        Some(cand)
                    } else {
                        None
                    }
                };
                if let Some(score) = better {
                    *target = Best {
                        id,
                        score,
                        starts_at: Some(starts_at),
                    };
                }
                if len == mblen {
                    has_single = true;
                }
            });
            if !has_single {
                let target = &mut best[starts_at + mblen];
                let cand = unk_score + till_here;
                if target.starts_at.is_none() || cand > target.score {
                    *target = Best {
                        id: self.unk_id,
                        score: cand,
                        starts_at: Some(starts_at),
                    };
                }
            }
            starts_at += mblen;
        }
        let mut out = Vec::new();
        let mut ends_at = size;
        while ends_at > 0 {
            let node = best[ends_at];
            // Every position reachable by whole characters has a node; `None` cannot happen
            // for valid UTF-8, but never loop forever on it.
            let Some(start) = node.starts_at else { break };
            out.push((start..ends_at, node.id));
            ends_at = start;
        }
        out.reverse();
        out
    }

    /// bpe::Model::SampleEncode with alpha = 0 (no dropout).
    fn bpe(&self, s: &str) -> Vec<(Range<usize>, u32)> {
        if s.is_empty() {
            return vec![];
        }
        let mut m = BpeMerges {
            model: self,
            s,
            symbols: self.bpe_symbols(s),
            agenda: BinaryHeap::new(),
            rev_merge_by_text: HashMap::new(),
        };
        for i in 1..m.symbols.len() {
            m.add_pair(i as isize - 1, i as isize);
        }
        while let Some(top) = m.agenda.pop() {
            m.merge(top);
        }
        m.resegmented()
    }

    /// The initial BPE symbols of `s`: user-defined symbols (frozen, never merged) and
    /// single characters, linked left to right.
    fn bpe_symbols(&self, s: &str) -> Vec<BpeSymbol> {
        let bytes = s.as_bytes();
        let mut symbols: Vec<BpeSymbol> = Vec::with_capacity(bytes.len());
        let mut pos = 0usize;
        while pos < bytes.len() {
            let rest = &bytes[pos..];
            let (len, freeze) = match self.user.as_ref().and_then(|u| u.longest_prefix_len(rest)) {
                Some(l) => (l, true),
                None => (one_char_len(rest[0]).min(rest.len()), false),
            };
            let idx = symbols.len() as isize;
            symbols.push(BpeSymbol {
                prev: idx - 1,
                next: if pos + len >= bytes.len() {
                    -1
                } else {
                    idx + 1
                },
                freeze,
                start: pos,
                len,
            });
            pos += len;
        }
        symbols
    }

    fn resegment(
        &self,
        s: &str,
        r: Range<usize>,
        rev: &HashMap<String, (String, String)>,
        out: &mut Vec<(Range<usize>, u32)>,
    ) {
        let w = &s[r.clone()];
        let id = self.piece_to_id(w);
        if !self.is_unused(id) {
            out.push((r, id));
            return;
        }
        match rev.get(w) {
            Some((left, _)) => {
                let mid = r.start + left.len();
                self.resegment(s, r.start..mid, rev, out);
                self.resegment(s, mid..r.end, rev, out);
            }
            None => out.push((r, id)),
        }
    }

    fn is_byte(&self, id: u32) -> bool {
        self.pieces[id as usize].ty == PieceType::Byte
    }

    /// `Decode(pieces)`.
    pub(crate) fn decode_pieces<S: AsRef<str>>(&self, pieces: &[S]) -> String {
        let ids: Vec<u32> = pieces
            .iter()
            .map(|p| self.piece_to_id(p.as_ref()))
            .collect();
        let mut text = String::new();
        let mut byte_start = 0usize;
        let mut is_bos_ws = true;
        let mut bos_ws_seen = false;
        for i in 0..pieces.len() {
            if self.is_byte(ids[i]) {
                continue;
            }
            self.flush_bytes(&pieces[byte_start..i], &mut text);
            if bos_ws_seen || !text.is_empty() {
                is_bos_ws = false;
            }
            byte_start = i + 1;
            let (decoded, seen) = self.decode_piece(pieces[i].as_ref(), ids[i], is_bos_ws);
            bos_ws_seen = seen;
            text.push_str(&decoded);
        }
        self.flush_bytes(&pieces[byte_start..], &mut text);
        match &self.denormalizer {
            Some(d) => d.normalize(&text, None),
            None => text,
        }
    }

    /// `Decode(ids)`; `None` when an id is out of range.
    pub(crate) fn decode_ids(&self, ids: &[u32]) -> Option<String> {
        let pieces: Option<Vec<&str>> = ids.iter().map(|&i| self.id_to_piece(i)).collect();
        Some(self.decode_pieces(&pieces?))
    }

    fn decode_piece(&self, piece: &str, id: u32, is_bos_ws: bool) -> (String, bool) {
        let p = &self.pieces[id as usize];
        match p.ty {
            PieceType::Control => return (String::new(), false),
            PieceType::Unknown => {
                return if p.text == piece {
                    (self.unk_surface.clone(), false)
                } else {
                    (piece.to_string(), false)
                };
            }
            _ => {}
        }
        let mut piece = piece;
        let mut has_bos_ws = false;
        let n = &self.normalizer;
        if is_bos_ws && (n.add_dummy_prefix || n.remove_extra_whitespaces) {
            if let Some(rest) = piece.strip_prefix(SPACE_SYMBOL) {
                piece = rest;
                has_bos_ws = true;
            }
            if n.remove_extra_whitespaces {
                has_bos_ws = false;
            }
        }
        (piece.replace(SPACE_SYMBOL, " "), has_bos_ws)
    }

    /// Byte pieces -> UTF-8 text; each invalid byte becomes U+FFFD (one per byte).
    fn flush_bytes<S: AsRef<str>>(&self, pieces: &[S], text: &mut String) {
        if pieces.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pieces
            .iter()
            .filter_map(|p| {
                // Only pieces whose id is a BYTE piece get here, and those were checked
                // to be exactly `<0xXX>` at load.
                let p = p.as_ref();
                p.get(3..5).and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect();
        let mut off = 0;
        while off < bytes.len() {
            match decode_utf8_char(&bytes[off..]) {
                Some((c, n)) => {
                    text.push(c);
                    off += n;
                }
                None => {
                    text.push('\u{FFFD}');
                    off += 1;
                }
            }
        }
    }
}

/// A BPE symbol: a span of the text in a doubly linked list (`-1`: none); merged-away
/// symbols have `len` 0.
#[derive(Clone)]
struct BpeSymbol {
    prev: isize,
    next: isize,
    freeze: bool,
    start: usize,
    len: usize,
}

/// A candidate merge of two adjacent symbols; `size` (merged byte length) detects stale
/// entries once either side has changed.
#[derive(PartialEq)]
struct BpePair {
    left: usize,
    right: usize,
    score: f32,
    size: usize,
}

impl Eq for BpePair {}

impl PartialOrd for BpePair {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BpePair {
    // Highest score first; on ties the leftmost pair.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// The state of one [`SpmModel::bpe`] call: symbols of `s` and the merge agenda.
struct BpeMerges<'a> {
    model: &'a SpmModel,
    s: &'a str,
    symbols: Vec<BpeSymbol>,
    agenda: BinaryHeap<BpePair>,
    /// merged piece -> (left, right) for pieces of type UNUSED (resegmented at the end).
    rev_merge_by_text: HashMap<String, (String, String)>,
}

impl BpeMerges<'_> {
    /// Queues the merge of symbols `left` and `right` when both exist, neither is frozen
    /// and their concatenation is a piece.
    fn add_pair(&mut self, left: isize, right: isize) {
        if left < 0 || right < 0 {
            return;
        }
        let (l, r) = (&self.symbols[left as usize], &self.symbols[right as usize]);
        if l.freeze || r.freeze {
            return;
        }
        let s = self.s;
        let merged = &s[l.start..l.start + l.len + r.len];
        let Some(&id) = self.model.normal.get(merged) else {
            return;
        };
        self.agenda.push(BpePair {
            left: left as usize,
            right: right as usize,
            score: self.model.pieces[id as usize].score,
            size: merged.len(),
        });
        if self.model.is_unused(id) {
            self.rev_merge_by_text.insert(
                merged.to_string(),
                (
                    s[l.start..l.start + l.len].to_string(),
                    s[r.start..r.start + r.len].to_string(),
                ),
            );
        }
    }

    /// Applies the merge `top` unless it is stale, then queues the new symbol's merges
    /// with its neighbours.
    fn merge(&mut self, top: BpePair) {
        let symbols = &mut self.symbols;
        let (l, r) = (&symbols[top.left], &symbols[top.right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != top.size {
            return;
        }
        let right_next = r.next;
        symbols[top.left].len += symbols[top.right].len;
        symbols[top.left].next = right_next;
        if right_next >= 0 {
            symbols[right_next as usize].prev = top.left as isize;
        }
        symbols[top.right].len = 0;
        let prev = symbols[top.left].prev;
        self.add_pair(prev, top.left as isize);
        self.add_pair(top.left as isize, right_next);
    }

    /// The remaining symbols in order, with merges into UNUSED pieces undone.
    fn resegmented(&self) -> Vec<(Range<usize>, u32)> {
        let mut out = Vec::new();
        let mut index: isize = 0;
        while index >= 0 && (index as usize) < self.symbols.len() {
            let sym = &self.symbols[index as usize];
            self.model.resegment(
                self.s,
                sym.start..sym.start + sym.len,
                &self.rev_merge_by_text,
                &mut out,
            );
            index = sym.next;
        }
        out
    }
}

/// `string_util::OneCharLen`: UTF-8 sequence length from the lead byte.
#[inline]
fn one_char_len(b: u8) -> usize {
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4][(b >> 4) as usize]
}

/// `string_util::DecodeUTF8`: one strictly valid character, or `None`.
fn decode_utf8_char(b: &[u8]) -> Option<(char, usize)> {
    let trail = |x: u8| (x & 0xC0) == 0x80;
    let b0 = *b.first()?;
    let (cp, n) = if b0 < 0x80 {
        (b0 as u32, 1)
    } else if b.len() >= 2 && (b0 & 0xE0) == 0xC0 {
        let cp = ((b0 as u32 & 0x1F) << 6) | (b[1] as u32 & 0x3F);
        if !(trail(b[1]) && cp >= 0x80) {
            return None;
        }
        (cp, 2)
    } else if b.len() >= 3 && (b0 & 0xF0) == 0xE0 {
        let cp = ((b0 as u32 & 0x0F) << 12) | ((b[1] as u32 & 0x3F) << 6) | (b[2] as u32 & 0x3F);
        if !(trail(b[1]) && trail(b[2]) && cp >= 0x800) {
            return None;
        }
        (cp, 3)
    } else if b.len() >= 4 && (b0 & 0xF8) == 0xF0 {
        let cp = ((b0 as u32 & 0x07) << 18)
            | ((b[1] as u32 & 0x3F) << 12)
            | ((b[2] as u32 & 0x3F) << 6)
            | (b[3] as u32 & 0x3F);
        if !(trail(b[1]) && trail(b[2]) && trail(b[3]) && cp >= 0x10000) {
            return None;
        }
        (cp, 4)
    } else {
        return None;
    };
    char::from_u32(cp).map(|c| (c, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_decoding_is_strict() {
        assert_eq!(decode_utf8_char(b"a"), Some(('a', 1)));
        assert_eq!(decode_utf8_char("é".as_bytes()), Some(('é', 2)));
        assert_eq!(decode_utf8_char(&[0xC0, 0x80]), None); // overlong
        assert_eq!(decode_utf8_char(&[0xED, 0xA0, 0x80]), None); // surrogate
        assert_eq!(decode_utf8_char(&[0xE2, 0x82]), None); // truncated
        assert_eq!(
            decode_utf8_char("\u{FFFD}".as_bytes()),
            Some(('\u{FFFD}', 3))
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(SpmModel::from_bytes(b"").is_err());
        assert!(SpmModel::from_bytes(b"definitely not a protobuf \xff\xff\xff").is_err());
        assert!(SpmModel::from_bytes(&[0x0a, 0x02, 0x0a, 0x00]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsing_random_bytes_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = SpmModel::from_bytes(&b);
        }
    }
}
