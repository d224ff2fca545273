//! A small deterministic generator (xorshift) for tests' input, so they need no RNG crate and replay
//! exactly. Shared by the test files that generate orders.

#![allow(dead_code)] // each test file uses a part

pub(crate) struct Gen(pub(crate) u64);

impl Gen {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
