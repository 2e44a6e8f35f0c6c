//! A small byte trie for vocabulary prefix matching (Viterbi lattice, user-defined symbols).

#[derive(Debug, Clone, Default)]
struct Node {
    /// Sorted by byte.
    children: Vec<(u8, u32)>,
    value: Option<u32>,
}

#[derive(Debug, Clone)]
pub(crate) struct Trie {
    nodes: Vec<Node>,
}

impl Default for Trie {
    fn default() -> Self {
        Trie {
            nodes: vec![Node::default()],
        }
    }
}

impl Trie {
    pub(crate) fn insert(&mut self, key: &[u8], value: u32) {
        let mut cur = 0usize;
        for &b in key {
            let next = match self.nodes[cur].children.binary_search_by_key(&b, |c| c.0) {
                Ok(i) => self.nodes[cur].children[i].1 as usize,
                Err(i) => {
                    let id = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[cur].children.insert(i, (b, id as u32));
                    id
                }
            };
            cur = next;
        }
        self.nodes[cur].value = Some(value);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.len() == 1 && self.nodes[0].value.is_none()
    }

    /// Calls `f(len, value)` for every key that is a prefix of `text`, shortest first.
    #[inline]
    pub(crate) fn for_each_prefix(&self, text: &[u8], mut f: impl FnMut(usize, u32)) {
        let mut cur = 0usize;
        for (i, &b) in text.iter().enumerate() {
            let node = &self.nodes[cur];
            match node.children.binary_search_by_key(&b, |c| c.0) {
                Ok(j) => cur = node.children[j].1 as usize,
                Err(_) => return,
            }
            if let Some(v) = self.nodes[cur].value {
                f(i + 1, v);
            }
        }
    }

    /// Length of the longest key that is a prefix of `text`.
    pub(crate) fn longest_prefix_len(&self, text: &[u8]) -> Option<usize> {
        let mut best = None;
        self.for_each_prefix(text, |len, _| best = Some(len));
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_shortest_first() {
        let mut t = Trie::default();
        assert!(t.is_empty());
        t.insert(b"ab", 1);
        t.insert(b"a", 0);
        t.insert(b"abcd", 2);
        t.insert(b"b", 3);
        let mut got = vec![];
        t.for_each_prefix(b"abcde", |l, v| got.push((l, v)));
        assert_eq!(got, vec![(1, 0), (2, 1), (4, 2)]);
        assert_eq!(t.longest_prefix_len(b"abc"), Some(2));
        assert_eq!(t.longest_prefix_len(b"xyz"), None);
    }
}
