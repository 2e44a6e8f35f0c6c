//! Logits processors, applied per row on host scores in transformers' order:
//! repetition penalty, no-repeat n-gram, bad words, min length, min new tokens, forced BOS,
//! forced EOS, invalid-value removal, suppressed tokens, renormalization.
//!
//! Each row's `ids` is its whole decoder sequence so far, decoder start token included
//! (transformers' `input_ids`), so `ids.len()` is transformers' `cur_len`.

/// The processors a resolved generation config activates.
#[derive(Debug, Clone, Default)]
pub struct Processors {
    pub vocab_size: usize,
    pub repetition_penalty: Option<f32>,
    pub no_repeat_ngram_size: usize,
    /// Tokens that are always forbidden (single-token bad words).
    pub bad_single: Vec<u32>,
    /// Multi-token bad words: the last token is forbidden after the prefix.
    pub bad_multi: Vec<(Vec<u32>, u32)>,
    /// EOS is masked while `cur_len < min_length` (start token counted).
    pub min_length: usize,
    /// EOS is masked while `cur_len - prompt_len < min_new_tokens`.
    pub min_new_tokens: usize,
    pub prompt_len: usize,
    pub eos: Vec<u32>,
    pub forced_bos: Option<u32>,
    pub forced_eos: Vec<u32>,
    pub max_length: usize,
    pub remove_invalid_values: bool,
    pub suppress: Vec<u32>,
    pub renormalize: bool,
}

/// Reusable scratch space, so that processing allocates nothing per step.
#[derive(Debug, Default)]
pub struct Scratch {
    ids: Vec<u32>,
}

impl Processors {
    /// Whether any processor changes the scores of a row of length `cur_len`.
    pub fn active_at(&self, cur_len: usize) -> bool {
        self.row_dependent_at(cur_len)
            || !self.bad_single.is_empty()
            || self.min_length_masks_eos(cur_len)
            || self.min_new_masks_eos(cur_len)
            || self.forced_bos_at(cur_len).is_some()
            || self.forces_eos_at(cur_len)
            || self.remove_invalid_values
            || !self.suppress.is_empty()
            || self.renormalize
    }

    /// The processors at `cur_len` as one token mask, the same for every row of a search
    /// (all its rows have the same length): `Some(tokens set to -inf)`, possibly empty, when
    /// every active processor only masks tokens; `None` when a row-dependent (repetition
    /// penalty, n-grams, multi-token bad words) or value-changing (forced tokens, invalid-value
    /// removal, renormalization) processor is active. Lets a device apply them (select.rs).
    pub fn uniform_mask(&self, cur_len: usize) -> Option<Vec<u32>> {
        if self.row_dependent_at(cur_len)
            || self.forced_bos_at(cur_len).is_some()
            || self.forces_eos_at(cur_len)
            || self.remove_invalid_values
            || self.renormalize
        {
            return None;
        }
        let mut mask = self.bad_single.clone();
        if self.min_length_masks_eos(cur_len) || self.min_new_masks_eos(cur_len) {
            mask.extend_from_slice(&self.eos);
        }
        mask.extend_from_slice(&self.suppress);
        mask.retain(|&t| (t as usize) < self.vocab_size);
        mask.sort_unstable();
        mask.dedup();
        Some(mask)
    }

    /// Repetition penalty, n-gram blocking or a multi-token bad word can change a row at
    /// `cur_len`, each depending on the row's own tokens.
    fn row_dependent_at(&self, cur_len: usize) -> bool {
        self.repetition_penalty.is_some()
            || (self.no_repeat_ngram_size > 0 && cur_len >= self.no_repeat_ngram_size)
            || self.bad_multi.iter().any(|(p, _)| p.len() <= cur_len)
    }

    fn min_length_masks_eos(&self, cur_len: usize) -> bool {
        !self.eos.is_empty() && cur_len < self.min_length
    }

    fn min_new_masks_eos(&self, cur_len: usize) -> bool {
        !self.eos.is_empty() && cur_len.saturating_sub(self.prompt_len) < self.min_new_tokens
    }

    fn forced_bos_at(&self, cur_len: usize) -> Option<u32> {
        self.forced_bos.filter(|_| cur_len == 1)
    }

    fn forces_eos_at(&self, cur_len: usize) -> bool {
        !self.forced_eos.is_empty() && cur_len + 1 == self.max_length
    }

    /// Applies every active processor to one row's `scores` (length `vocab_size`).
    pub fn apply(&self, ids: &[u32], scores: &mut [f32], scratch: &mut Scratch) {
        let cur_len = ids.len();
        if let Some(p) = self.repetition_penalty {
            repetition_penalty(ids, scores, p, scratch);
        }
        if self.no_repeat_ngram_size > 0 {
            no_repeat_ngram(ids, scores, self.no_repeat_ngram_size);
        }
        if !self.bad_single.is_empty() || !self.bad_multi.is_empty() {
            bad_words(ids, scores, &self.bad_single, &self.bad_multi);
        }
        if self.min_length_masks_eos(cur_len) {
            mask_tokens(scores, &self.eos);
        }
        if self.min_new_masks_eos(cur_len) {
            mask_tokens(scores, &self.eos);
        }
        if let Some(bos) = self.forced_bos_at(cur_len) {
            force_tokens(scores, &[bos]);
        }
        if self.forces_eos_at(cur_len) {
            force_tokens(scores, &self.forced_eos);
        }
        if self.remove_invalid_values {
            remove_invalid_values(scores);
        }
        if !self.suppress.is_empty() {
            mask_tokens(scores, &self.suppress);
        }
        if self.renormalize {
            log_softmax_in_place(scores);
        }
    }
}

/// CTRL-style repetition penalty: every token already in `ids` gets its score divided by
/// `penalty` if positive, multiplied if negative (each distinct token once).
pub fn repetition_penalty(ids: &[u32], scores: &mut [f32], penalty: f32, scratch: &mut Scratch) {
    scratch.ids.clear();
    scratch.ids.extend_from_slice(ids);
    scratch.ids.sort_unstable();
    scratch.ids.dedup();
    for &t in &scratch.ids {
        if let Some(s) = scores.get_mut(t as usize) {
            *s = if *s < 0.0 { *s * penalty } else { *s / penalty };
        }
    }
}

/// Forbids every token that would complete an n-gram already present in `ids`.
pub fn no_repeat_ngram(ids: &[u32], scores: &mut [f32], n: usize) {
    let cur_len = ids.len();
    if n == 0 || cur_len < n {
        return;
    }
    // The next token completes an n-gram that starts with the last n-1 tokens.
    let prefix = &ids[cur_len + 1 - n..];
    for start in 0..=cur_len - n {
        if &ids[start..start + n - 1] == prefix {
            if let Some(s) = scores.get_mut(ids[start + n - 1] as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

/// Forbids single-token bad words always and multi-token ones right after their prefix.
/// (transformers adds a -inf bias, which leaves -inf everywhere it lands.)
pub fn bad_words(ids: &[u32], scores: &mut [f32], single: &[u32], multi: &[(Vec<u32>, u32)]) {
    for &t in single {
        if let Some(s) = scores.get_mut(t as usize) {
            *s += f32::NEG_INFINITY;
        }
    }
    for (prefix, last) in multi {
        if prefix.len() <= ids.len() && ids.ends_with(prefix) {
            if let Some(s) = scores.get_mut(*last as usize) {
                *s += f32::NEG_INFINITY;
            }
        }
    }
}

/// Sets the scores of `tokens` to -inf (min length, suppressed tokens).
pub fn mask_tokens(scores: &mut [f32], tokens: &[u32]) {
    for &t in tokens {
        if let Some(s) = scores.get_mut(t as usize) {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// Leaves only `tokens` possible: -inf everywhere, 0 on them (forced BOS / EOS).
pub fn force_tokens(scores: &mut [f32], tokens: &[u32]) {
    scores.fill(f32::NEG_INFINITY);
    for &t in tokens {
        if let Some(s) = scores.get_mut(t as usize) {
            *s = 0.0;
        }
    }
}

/// NaN -> 0, +-inf -> the largest finite values.
pub fn remove_invalid_values(scores: &mut [f32]) {
    for s in scores {
        if s.is_nan() {
            *s = 0.0;
        } else if *s == f32::INFINITY {
            *s = f32::MAX;
        } else if *s == f32::NEG_INFINITY {
            *s = f32::MIN;
        }
    }
}

/// `x - max - ln(sum(exp(x - max)))`, the way torch's CPU kernel computes it.
pub fn log_softmax_in_place(scores: &mut [f32]) {
    let shift = log_softmax_shift(scores);
    for s in scores {
        *s -= shift;
    }
}

pub use crate::kernels::simd::log_softmax_shift;

#[cfg(test)]
mod tests {
    use super::*;

    const NEG: f32 = f32::NEG_INFINITY;

    #[test]
    fn uniform_mask_only_for_token_masks() {
        let p = Processors {
            vocab_size: 10,
            eos: vec![2],
            min_length: 4,
            suppress: vec![7, 2],
            bad_single: vec![1],
            max_length: 20,
            ..Default::default()
        };
        assert_eq!(p.uniform_mask(3), Some(vec![1, 2, 7]));
        assert_eq!(p.uniform_mask(4), Some(vec![1, 2, 7]));
        let q = Processors {
            suppress: vec![],
            ..p.clone()
        };
        assert_eq!(q.uniform_mask(5), Some(vec![1]));
        let r = Processors {
            repetition_penalty: Some(1.2),
            ..p.clone()
        };
        assert_eq!(r.uniform_mask(5), None);
        let f = Processors {
            forced_bos: Some(3),
            ..p
        };
        assert_eq!(f.uniform_mask(1), None);
        assert_eq!(f.uniform_mask(2), Some(vec![1, 2, 7]));
    }

    #[test]
    fn fast_exp_is_close_to_libm() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -(i as f32) * 0.0005; // 0 .. -100
            let (got, want) = (crate::kernels::simd::exp(x) as f64, (x as f64).exp());
            if x >= -87.0 {
                worst = worst.max(((got - want) / want).abs());
            } else {
                assert!(got < 2e-38, "{x}: {got}");
            }
        }
        assert!(worst < 4e-7, "max relative error {worst}");
        assert_eq!(crate::kernels::simd::exp(0.0), 1.0);
        assert!(crate::kernels::simd::exp(NEG) < 2e-38);
    }

    #[test]
    fn repetition_penalty_penalizes_each_seen_token_once() {
        let mut s = vec![2.0, -2.0, 1.0, 4.0];
        repetition_penalty(&[0, 1, 1, 0, 9], &mut s, 2.0, &mut Scratch::default());
        assert_eq!(s, vec![1.0, -4.0, 1.0, 4.0]);
    }

    #[test]
    fn no_repeat_ngram_bans_completions() {
        // bigrams seen: (5,6) (6,7) (7,5); last token 5 -> 6 banned.
        let ids = [5, 6, 7, 5];
        let mut s = vec![0.0; 10];
        no_repeat_ngram(&ids, &mut s, 2);
        let banned: Vec<usize> = (0..10).filter(|&i| s[i] == NEG).collect();
        assert_eq!(banned, vec![6]);
        // trigram: prefix (7,5) never seen before -> nothing banned
        let mut s = vec![0.0; 10];
        no_repeat_ngram(&ids, &mut s, 3);
        assert!(s.iter().all(|&x| x == 0.0));
        // trigram: prefix (5,6) seen -> 7 banned
        let mut s = vec![0.0; 10];
        no_repeat_ngram(&[5, 6, 7, 5, 6], &mut s, 3);
        assert_eq!(s[7], NEG);
        assert_eq!(s.iter().filter(|&&x| x == NEG).count(), 1);
        // too short for any n-gram
        let mut s = vec![0.0; 10];
        no_repeat_ngram(&[5, 6], &mut s, 3);
        assert!(s.iter().all(|&x| x == 0.0));
        // unigram: every seen token banned
        let mut s = vec![0.0; 10];
        no_repeat_ngram(&[1, 3], &mut s, 1);
        assert_eq!(s[1], NEG);
        assert_eq!(s[3], NEG);
        assert_eq!(s.iter().filter(|&&x| x == NEG).count(), 2);
    }

    #[test]
    fn bad_words_single_and_after_prefix() {
        let single = [1];
        let multi = vec![(vec![3, 4], 5), (vec![9], 2)];
        let mut s = vec![1.0; 6];
        bad_words(&[0, 3, 4], &mut s, &single, &multi);
        assert_eq!(s, vec![1.0, NEG, 1.0, 1.0, 1.0, NEG]);
        let mut s = vec![1.0; 6];
        bad_words(&[0, 4, 3], &mut s, &single, &multi);
        assert_eq!(s, vec![1.0, NEG, 1.0, 1.0, 1.0, 1.0]);
    }

    fn procs() -> Processors {
        Processors {
            vocab_size: 6,
            eos: vec![2],
            prompt_len: 1,
            max_length: 10,
            ..Default::default()
        }
    }

    #[test]
    fn min_length_counts_the_start_token() {
        let p = Processors {
            min_length: 3,
            ..procs()
        };
        let mut sc = Scratch::default();
        for (len, masked) in [(1, true), (2, true), (3, false), (4, false)] {
            let ids = vec![0; len];
            let mut s = vec![1.0; 6];
            assert_eq!(p.active_at(len), masked);
            p.apply(&ids, &mut s, &mut sc);
            assert_eq!(s[2] == NEG, masked, "len {len}");
            assert_eq!(s.iter().filter(|&&x| x == NEG).count(), masked as usize);
        }
    }

    #[test]
    fn min_new_tokens_skips_the_prompt() {
        let p = Processors {
            min_new_tokens: 2,
            ..procs()
        };
        let mut sc = Scratch::default();
        for (len, masked) in [(1, true), (2, true), (3, false)] {
            let mut s = vec![1.0; 6];
            p.apply(&vec![0; len], &mut s, &mut sc);
            assert_eq!(s[2] == NEG, masked, "len {len}");
        }
    }

    #[test]
    fn forced_bos_and_eos() {
        let p = Processors {
            forced_bos: Some(4),
            forced_eos: vec![2],
            ..procs()
        };
        let mut sc = Scratch::default();
        let mut s = vec![1.0; 6];
        p.apply(&[0], &mut s, &mut sc);
        assert_eq!(s, vec![NEG, NEG, NEG, NEG, 0.0, NEG]);
        let mut s = vec![1.0; 6];
        p.apply(&[0, 4], &mut s, &mut sc);
        assert_eq!(s, vec![1.0; 6]);
        assert!(!p.active_at(2));
        // max_length 10: the token generated at cur_len 9 is the last one -> forced EOS.
        let mut s = vec![1.0; 6];
        p.apply(&[0; 9], &mut s, &mut sc);
        assert_eq!(s, vec![NEG, NEG, 0.0, NEG, NEG, NEG]);
    }

    #[test]
    fn order_forced_eos_overrides_min_length() {
        // transformers applies min length before forced EOS: the forced EOS wins.
        let p = Processors {
            min_length: 20,
            forced_eos: vec![2],
            ..procs()
        };
        let mut s = vec![1.0; 6];
        p.apply(&[0; 9], &mut s, &mut Scratch::default());
        assert_eq!(s[2], 0.0);
    }

    #[test]
    fn repetition_penalty_runs_before_bad_words() {
        let p = Processors {
            repetition_penalty: Some(2.0),
            bad_single: vec![1],
            ..procs()
        };
        let mut s = vec![3.0, 3.0, 3.0, -3.0, 3.0, 3.0];
        p.apply(&[0, 3], &mut s, &mut Scratch::default());
        assert_eq!(s, vec![1.5, NEG, 3.0, -6.0, 3.0, 3.0]);
    }

    #[test]
    fn suppress_invalid_and_renormalize() {
        let mut s = vec![f32::NAN, f32::INFINITY, NEG, 1.0];
        remove_invalid_values(&mut s);
        assert_eq!(s, vec![0.0, f32::MAX, f32::MIN, 1.0]);
        let mut s = vec![1.0f32, 2.0, 3.0];
        log_softmax_in_place(&mut s);
        let total: f32 = s.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!((s[2] - s[1] - 1.0).abs() < 1e-6);
        let mut s = vec![1.0, 1.0];
        mask_tokens(&mut s, &[1, 7]);
        assert_eq!(s, vec![1.0, NEG]);
    }

    #[test]
    fn inactive_processors_leave_scores_alone() {
        let p = procs();
        assert!(!p.active_at(1));
        let mut s = vec![0.5, -1.0, 2.0, 0.0, 1.0, 3.0];
        let before = s.clone();
        p.apply(&[0, 1, 1], &mut s, &mut Scratch::default());
        assert_eq!(s, before);
    }
}
