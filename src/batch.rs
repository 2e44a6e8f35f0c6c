//! Length-sorted, token-budget batching over all sentences of a job.
//!
//! Sorting by length before cutting batches keeps padding low; the budget counts padded
//! tokens (`rows * longest`), which is what the encoder and the KV caches actually pay for.

/// One batch: indices into the caller's item list, shortest first within the batch.
pub type Batch = Vec<usize>;

/// Limits for cutting batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most padded source tokens in one batch (`rows * longest`).
    pub max_tokens: usize,
    /// Most rows in one batch.
    pub max_rows: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_tokens: 4096,
            max_rows: 64,
        }
    }
}

/// Cut `lengths` (token counts per item) into batches. Every index appears in exactly one
/// batch. An item longer than the budget gets a batch of its own (the caller decides whether
/// such an item can be run at all: nothing is truncated here).
pub fn length_sorted_batches(lengths: &[usize], limits: BatchLimits) -> Vec<Batch> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    // Stable sort: equal lengths keep input order, so batching is deterministic.
    order.sort_by_key(|&i| lengths[i]);
    let max_rows = limits.max_rows.max(1);
    let mut batches = Vec::new();
    let mut cur: Batch = Vec::new();
    for i in order {
        let len = lengths[i].max(1);
        // Sorted ascending, so `len` is the longest of the batch if `i` joins it.
        let padded = (cur.len() + 1) * len;
        if !cur.is_empty() && (padded > limits.max_tokens || cur.len() >= max_rows) {
            batches.push(std::mem::take(&mut cur));
        }
        cur.push(i);
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sorts_and_respects_budget() {
        let lens = [5, 1, 9, 3, 3, 8];
        let b = length_sorted_batches(
            &lens,
            BatchLimits {
                max_tokens: 10,
                max_rows: 8,
            },
        );
        assert_eq!(b, vec![vec![1, 3, 4], vec![0], vec![5], vec![2]]);
    }

    #[test]
    fn oversized_item_gets_its_own_batch() {
        let b = length_sorted_batches(
            &[2, 50, 2],
            BatchLimits {
                max_tokens: 10,
                max_rows: 8,
            },
        );
        assert_eq!(b, vec![vec![0, 2], vec![1]]);
    }

    proptest! {
        #[test]
        fn every_item_once_and_within_limits(lens in proptest::collection::vec(0usize..200, 0..300),
                                             max_tokens in 1usize..2000, max_rows in 1usize..70) {
            let limits = BatchLimits { max_tokens, max_rows };
            let batches = length_sorted_batches(&lens, limits);
            let mut seen = vec![0u8; lens.len()];
            for b in &batches {
                prop_assert!(!b.is_empty() && b.len() <= max_rows);
                let longest = b.iter().map(|&i| lens[i].max(1)).max().unwrap();
                prop_assert!(b.len() == 1 || b.len() * longest <= max_tokens);
                for &i in b { seen[i] += 1; }
            }
            prop_assert!(seen.iter().all(|&c| c == 1));
        }
    }
}
