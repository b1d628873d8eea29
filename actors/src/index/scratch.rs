//! Per-thread scratch space of searches: visited marks as an epoch array and the two heaps
//! of a beam search, reused from one search to the next so that a search allocates nothing
//! per candidate (and, once warm, nothing at all).

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A point with its distance to the query; ordered by distance, then point number.
#[derive(Debug, Clone, Copy)]
pub struct Scored {
    pub distance: f32,
    pub point: u32,
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.point.cmp(&other.point))
    }
}

/// Nearest first, for a min-heap of candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Nearest(pub std::cmp::Reverse<Scored>);

pub struct Scratch {
    /// `visited[p] == epoch` marks point p as visited in the current search.
    visited: Vec<u16>,
    epoch: u16,
    /// Points still to expand, nearest on top.
    pub candidates: BinaryHeap<Nearest>,
    /// The best points found so far, farthest on top.
    pub found: BinaryHeap<Scored>,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            visited: Vec::new(),
            epoch: 0,
            candidates: BinaryHeap::new(),
            found: BinaryHeap::new(),
        }
    }

    /// Starts a search over `points` points: nothing visited, heaps empty.
    pub fn start(&mut self, points: usize) {
        if self.visited.len() < points {
            self.visited.resize(points, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Marks of 65,535 searches ago would look current: clear once per wrap.
            self.visited.fill(0);
            self.epoch = 1;
        }
        self.candidates.clear();
        self.found.clear();
    }

    /// Marks `p` visited; false when it already was.
    #[inline]
    pub fn visit(&mut self, p: u32) -> bool {
        let slot = &mut self.visited[p as usize];
        if *slot == self.epoch {
            false
        } else {
            *slot = self.epoch;
            true
        }
    }

    /// Seeds a beam search with its entry point (visited, a candidate, and a result when
    /// `accepted`).
    pub fn enter(&mut self, entry: Scored, accepted: bool) {
        self.visit(entry.point);
        self.candidates.push(Nearest(std::cmp::Reverse(entry)));
        if accepted {
            self.found.push(entry);
        }
    }

    /// The next candidate to expand in a beam search of width `ef`; none when the search
    /// is done (no candidate left, or the nearest is farther than all of `ef` results).
    #[inline]
    pub fn next_candidate(&mut self, ef: usize) -> Option<Scored> {
        let std::cmp::Reverse(current) = self.candidates.pop()?.0;
        let farthest = self.found.peek().map_or(f32::INFINITY, |s| s.distance);
        (self.found.len() < ef || current.distance <= farthest).then_some(current)
    }

    /// Offers a point met at `distance` to a beam search of width `ef`: it becomes a
    /// candidate when it could still be among the `ef` nearest, and a result too when
    /// `accepted()` (asked only then).
    #[inline]
    pub fn offer(&mut self, point: u32, distance: f32, ef: usize, accepted: impl FnOnce() -> bool) {
        let farthest = self.found.peek().map_or(f32::INFINITY, |s| s.distance);
        if self.found.len() < ef || distance < farthest {
            let s = Scored { distance, point };
            self.candidates.push(Nearest(std::cmp::Reverse(s)));
            if accepted() {
                self.found.push(s);
                if self.found.len() > ef {
                    self.found.pop();
                }
            }
        }
    }

    /// The results of a beam search, nearest first.
    pub fn results(&mut self) -> Vec<Scored> {
        let mut out: Vec<Scored> = self.found.drain().collect();
        out.sort_unstable();
        out
    }

    /// The visited mark of `p`, to prefetch it.
    #[inline]
    pub fn mark_address(&self, p: u32) -> *const u16 {
        self.visited.as_ptr().wrapping_add(p as usize)
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// Runs `f` with this thread's scratch space (a fresh one if it is already in use, which
/// only a search nested in a search would do).
pub fn with_scratch<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch::new()),
    })
}
