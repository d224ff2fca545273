//! `java.util.TreeSet` as `java.util.TreeMap` keeps it: a red-black tree (`TreeMap.put` and
//! `fixAfterInsertion`) whose comparator runs at insertion only. Kafka Streams' `describe()` keeps a
//! node's predecessors and successors in such sets, ordered by node sizes that keep growing after a
//! node was inserted; the tree is then no longer sorted by the sizes a later insertion compares with,
//! and where that one lands depends on the nodes it meets on the way down and on the rotations. This
//! keeps the tree's shape so that `describe()` lists them in Kafka Streams' order.

use std::cmp::Ordering;

const NIL: usize = usize::MAX;

struct Entry {
    key: usize,
    left: usize,
    right: usize,
    parent: usize,
    red: bool,
}

/// Any number of sets of `usize` keys, in one arena; a set is the index of its root.
#[derive(Default)]
pub(super) struct TreeSets {
    entries: Vec<Entry>,
}

/// One set: its root in a [`TreeSets`].
#[derive(Clone, Copy)]
pub(super) struct TreeSet(usize);

impl Default for TreeSet {
    fn default() -> Self {
        TreeSet(NIL)
    }
}

impl TreeSets {
    /// `TreeSet.add`: descends from the root comparing `key` with each entry (`cmp(key, entry)`), hangs
    /// it as a leaf and rebalances. False when `cmp` said `Equal` on the way (already there).
    pub(super) fn insert(&mut self, set: &mut TreeSet, key: usize, cmp: impl Fn(usize, usize) -> Ordering) -> bool {
        let (mut parent, mut at, mut less) = (NIL, set.0, false);
        while at != NIL {
            parent = at;
            match cmp(key, self.entries[at].key) {
                Ordering::Less => (at, less) = (self.entries[at].left, true),
                Ordering::Greater => (at, less) = (self.entries[at].right, false),
                Ordering::Equal => return false,
            }
        }
        let x = self.entries.len();
        self.entries.push(Entry { key, left: NIL, right: NIL, parent, red: parent != NIL });
        match parent {
            NIL => set.0 = x,
            p if less => self.entries[p].left = x,
            p => self.entries[p].right = x,
        }
        self.fix_after_insertion(set, x);
        true
    }

    fn fix_after_insertion(&mut self, set: &mut TreeSet, mut x: usize) {
        while x != set.0 && self.red(self.entries[x].parent) {
            let p = self.entries[x].parent;
            let g = self.entries[p].parent; // a red parent is never the root
            let parent_is_left = self.entries[g].left == p;
            let uncle = if parent_is_left { self.entries[g].right } else { self.entries[g].left };
            if self.red(uncle) {
                self.entries[p].red = false;
                self.entries[uncle].red = false;
                self.entries[g].red = true;
                x = g;
            } else {
                let inner = if parent_is_left { self.entries[p].right == x } else { self.entries[p].left == x };
                if inner {
                    x = p;
                    self.rotate(set, x, parent_is_left);
                }
                let p = self.entries[x].parent;
                let g = self.entries[p].parent;
                self.entries[p].red = false;
                self.entries[g].red = true;
                self.rotate(set, g, !parent_is_left);
            }
        }
        let root = set.0;
        self.entries[root].red = false;
    }

    fn red(&self, i: usize) -> bool {
        i != NIL && self.entries[i].red
    }

    /// `rotateLeft(p)` when `left`, else `rotateRight(p)`.
    fn rotate(&mut self, set: &mut TreeSet, p: usize, left: bool) {
        let c = if left { self.entries[p].right } else { self.entries[p].left };
        let inner = if left { self.entries[c].left } else { self.entries[c].right };
        if left {
            self.entries[p].right = inner;
        } else {
            self.entries[p].left = inner;
        }
        if inner != NIL {
            self.entries[inner].parent = p;
        }
        let g = self.entries[p].parent;
        self.entries[c].parent = g;
        if g == NIL {
            set.0 = c;
        } else if self.entries[g].left == p {
            self.entries[g].left = c;
        } else {
            self.entries[g].right = c;
        }
        if left {
            self.entries[c].left = p;
        } else {
            self.entries[c].right = p;
        }
        self.entries[p].parent = c;
    }

    /// The set's keys in its iteration order (the tree in order).
    pub(super) fn keys(&self, set: TreeSet) -> Vec<usize> {
        let (mut out, mut stack, mut at) = (Vec::new(), Vec::new(), set.0);
        while at != NIL || !stack.is_empty() {
            while at != NIL {
                stack.push(at);
                at = self.entries[at].left;
            }
            let n = stack.pop().expect("a node was pushed");
            out.push(self.entries[n].key);
            at = self.entries[n].right;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_a_fixed_order_it_is_a_sorted_set() {
        let (mut sets, mut set) = (TreeSets::default(), TreeSet::default());
        for key in [5, 3, 9, 1, 4, 8, 2, 7, 6, 3] {
            sets.insert(&mut set, key, |a, b| a.cmp(&b));
        }
        assert_eq!(sets.keys(set), (1..=9).collect::<Vec<_>>());
    }

    #[test]
    fn a_key_lands_where_the_tree_s_shape_sends_it_when_the_order_changed_since() {
        // Ordered by a weight, heaviest first, that changes after insertion: 0, 1, 2 go in with weight 0
        // (the tree: 1 with 0 and 2 below), then 1 grows. 3 (weight 3) meets 1 first, goes right, then
        // before 2: after 0 and 1, though it outweighs 0.
        let (mut sets, mut set) = (TreeSets::default(), TreeSet::default());
        let mut weight = [0, 0, 0, 3];
        let by = |w: [i32; 4]| move |a: usize, b: usize| w[b].cmp(&w[a]).then(a.cmp(&b));
        for key in 0..3 {
            sets.insert(&mut set, key, by(weight));
        }
        weight[1] = 9;
        sets.insert(&mut set, 3, by(weight));
        assert_eq!(sets.keys(set), vec![0, 1, 3, 2]);
    }
}
