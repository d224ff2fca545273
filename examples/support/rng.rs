//! A small deterministic generator (xorshift): the examples' input, and the tests' that include this file
//! (`#[path = "../examples/support/rng.rs"]`), is the same on every run, with no RNG crate.

#![allow(dead_code)] // each includer uses a part

/// The generator.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value but 0).
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// The next number.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
