//! A plain growable bitset: the tombstones of a segment (one bit per point).

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    /// A set able to hold bits 0..len, all clear.
    pub fn with_len(len: usize) -> BitSet {
        BitSet {
            words: vec![0; len.div_ceil(64)],
        }
    }

    /// Makes room for bits 0..len (new bits clear).
    pub fn grow(&mut self, len: usize) {
        let words = len.div_ceil(64);
        if words > self.words.len() {
            self.words.resize(words, 0);
        }
    }

    #[inline]
    pub fn get(&self, bit: usize) -> bool {
        self.words
            .get(bit / 64)
            .is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }

    /// Sets a bit; returns whether it was clear before. The set grows as needed.
    pub fn set(&mut self, bit: usize) -> bool {
        self.grow(bit + 1);
        let word = &mut self.words[bit / 64];
        let mask = 1 << (bit % 64);
        let was_clear = *word & mask == 0;
        *word |= mask;
        was_clear
    }

    /// The set bits, ascending.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(i * 64 + bit)
            })
        })
    }

    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// How many bits are set in both sets.
    pub fn count_common(&self, other: &BitSet) -> usize {
        self.words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| (a & b).count_ones() as usize)
            .sum()
    }

    pub fn heap_bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_common_counts_bits_set_in_both() {
        let mut a = BitSet::with_len(200);
        let mut b = BitSet::with_len(10);
        for bit in [1, 5, 64, 130, 199] {
            a.set(bit);
        }
        for bit in [5, 64, 131] {
            b.set(bit);
        }
        assert_eq!(a.count_common(&b), 2);
        assert_eq!(b.count_common(&a), 2);
        assert_eq!(a.count_common(&BitSet::default()), 0);
    }

    #[test]
    fn set_get_ones() {
        let mut b = BitSet::with_len(10);
        assert!(!b.get(3) && !b.get(1000));
        assert!(b.set(3));
        assert!(!b.set(3));
        assert!(b.set(130));
        assert!(b.get(3) && b.get(130) && !b.get(129));
        assert_eq!(b.ones().collect::<Vec<_>>(), [3, 130]);
        assert_eq!(b.count(), 2);
    }
}
