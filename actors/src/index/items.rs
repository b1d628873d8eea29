//! Items by ids or by filter: many read at once, the whole index paged through by id,
//! counted, or deleted as one change.
//!
//! Items by filter are found through a sealed segment's field indexes when they can
//! answer the filter (only the candidates' metadata is read), else by trying every item.
//!
//! Paging is by id order: a page holds the `limit` smallest live ids after the cursor (the
//! last id of the previous page), so paging through an index that changes meanwhile never
//! returns an id twice, and returns every item that was there the whole time. Each page
//! reads every live point once (no sort of the whole index: the page is kept in a heap of
//! `limit` ids).

use std::collections::{BinaryHeap, HashSet};

use super::field_index::FieldIndexes;
use super::points::Points;
use super::{Extras, Index, Item, State};
use crate::filter::Filter;

/// One page of items, and where the next one starts (none when this one is the last).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<String>,
}

impl State {
    /// Every live point: which segment (the growing one last), its points, its number.
    fn live(&self) -> impl Iterator<Item = (usize, &Points, u32)> {
        let sealed = self.segments.iter().enumerate().flat_map(|(i, seg)| {
            (0..seg.points.len() as u32)
                .filter(|&p| !seg.deleted.get(p as usize))
                .map(move |p| (i, &*seg.points, p))
        });
        let growing = (0..self.growing.points.len() as u32)
            .filter(|&p| !self.growing.deleted.get(p as usize))
            .map(|p| (self.segments.len(), &self.growing.points, p));
        sealed.chain(growing)
    }

    /// Calls `f` with every live point passing `filter` (numbered as `live` does).
    fn for_each_passing<'s>(&'s self, filter: &Filter, mut f: impl FnMut(usize, &'s Points, u32)) {
        static NONE: std::sync::LazyLock<FieldIndexes> = std::sync::LazyLock::new(Default::default);
        let lookup = filter.lookup();
        let segments = self
            .segments
            .iter()
            .map(|seg| (&*seg.points, &seg.deleted, &*seg.fields))
            .chain(std::iter::once((
                &self.growing.points,
                &self.growing.deleted,
                &*NONE,
            )));
        for (which, (points, deleted, fields)) in segments.enumerate() {
            let found = lookup
                .as_ref()
                .and_then(|(l, complete)| Some((fields.find(l, points)?, *complete)));
            let Some((found, complete)) = found else {
                for p in 0..points.len() as u32 {
                    if !deleted.get(p as usize) && passes(Some(filter), points, p) {
                        f(which, points, p);
                    }
                }
                continue;
            };
            // Exactly the lookup's points: no metadata read (`gather` checked the columns).
            let exact = complete && found.exact();
            for p in found.gather(points.len()) {
                if !deleted.get(p as usize) && (exact || passes(Some(filter), points, p)) {
                    f(which, points, p);
                }
            }
        }
    }

    /// The points of segment `which`, as `live` numbers them.
    fn points_of(&self, which: usize) -> &Points {
        match self.segments.get(which) {
            Some(seg) => &seg.points,
            None => &self.growing.points,
        }
    }
}

/// An item as read, its vector and document copied only when asked for.
fn item(points: &Points, p: u32, extras: Extras) -> Item {
    let p = p as usize;
    Item {
        id: points.id(p).to_string(),
        vector: if extras.vector {
            points.vector(p).to_vec()
        } else {
            Vec::new()
        },
        metadata: points.metadata_owned(p),
        document: extras
            .document
            .then(|| points.document(p).map(str::to_string))
            .flatten(),
    }
}

/// `f` as it is: names the lifetime of the points it takes, which a closure's own
/// signature cannot (they live as long as the state they come from).
fn points_of_state<'s, F: FnMut(usize, &'s Points, u32)>(f: F) -> F {
    f
}

fn passes(filter: Option<&Filter>, points: &Points, p: u32) -> bool {
    filter.is_none_or(|f| super::search::matches(points, p, f))
}

impl Index {
    /// The live items of `ids` that pass `filter`, in the order of `ids` (each once; ids
    /// not there are left out).
    pub fn get_many(&self, ids: &[String], filter: Option<&Filter>, extras: Extras) -> Vec<Item> {
        let s = self.read();
        let mut seen = HashSet::with_capacity(ids.len());
        ids.iter()
            .filter(|id| seen.insert(id.as_str()))
            .filter_map(|id| {
                let (points, p) = s.point_of(id)?;
                passes(filter, points, p).then(|| item(points, p, extras))
            })
            .collect()
    }

    /// The ids of `ids` that are live and pass `filter` (for a delete by ids and filter,
    /// which the index actor runs between two mutations).
    pub fn ids_passing(&self, ids: &[String], filter: &Filter) -> Vec<String> {
        let s = self.read();
        ids.iter()
            .filter(|id| {
                s.point_of(id)
                    .is_some_and(|(points, p)| passes(Some(filter), points, p))
            })
            .cloned()
            .collect()
    }

    /// Up to `limit` (at least 1) live items passing `filter` whose ids come after `after`,
    /// smallest ids first.
    pub fn page(
        &self,
        filter: Option<&Filter>,
        after: Option<&str>,
        limit: usize,
        extras: Extras,
    ) -> Page {
        let limit = limit.max(1);
        let s = self.read();
        // The `limit` smallest ids seen so far, largest on top; and whether more passed.
        let mut heap: BinaryHeap<(&str, usize, u32)> = BinaryHeap::with_capacity(limit + 1);
        let mut more = false;
        let mut offer = points_of_state(|which, points: &Points, p| {
            let id = points.id(p as usize);
            if after.is_some_and(|a| id <= a) {
                return;
            }
            if heap.len() == limit {
                more = true;
                match heap.peek() {
                    Some(&(top, _, _)) if id < top => {
                        heap.pop();
                    }
                    _ => return,
                }
            }
            heap.push((id, which, p));
        });
        match filter {
            Some(f) => s.for_each_passing(f, &mut offer),
            None => s
                .live()
                .for_each(|(which, points, p)| offer(which, points, p)),
        }
        let items: Vec<Item> = heap
            .into_sorted_vec()
            .iter()
            .map(|&(_, which, p)| item(s.points_of(which), p, extras))
            .collect();
        let next = more.then(|| items.last().map(|i| i.id.clone())).flatten();
        Page { items, next }
    }

    /// How many live items pass `filter`.
    pub fn count_matching(&self, filter: &Filter) -> usize {
        let s = self.read();
        let mut count = 0;
        s.for_each_passing(filter, |_, _, _| count += 1);
        count
    }

    /// The ids of the live items that pass `filter` (for a delete by filter, which the
    /// index actor runs between two mutations, so that nothing changes meanwhile).
    pub fn matching_ids(&self, filter: &Filter) -> Vec<String> {
        let s = self.read();
        let mut ids = Vec::new();
        s.for_each_passing(filter, |_, points, p| {
            ids.push(points.id(p as usize).to_string())
        });
        ids
    }

    /// Tombstones every item of `ids` that is there, all under one write lock (a search
    /// sees all of them deleted or none); answers the ids deleted, each once. Must not run
    /// concurrently with another mutation.
    pub fn delete_many(&self, ids: &[String]) -> Vec<String> {
        let mut s = self.write();
        let mut deleted = Vec::new();
        let mut seen = HashSet::with_capacity(ids.len());
        for id in ids {
            if !seen.insert(id.as_str()) {
                continue;
            }
            if let Some(loc) = s.locate(id) {
                s.tombstone(loc);
                deleted.push(id.clone());
            }
        }
        if !deleted.is_empty() {
            self.refresh_stats(&s);
        }
        deleted
    }
}
