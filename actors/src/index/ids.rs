//! The item ids of one segment: every id once, in one byte arena, with a hash table from id
//! to point number that stores only point numbers (4 bytes a slot) and compares against
//! the arena. About 14 bytes per point plus the id itself, where a `HashMap<String, _>`
//! plus a `Vec<String>` would hold each id twice and spend ~70 bytes per point.

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

#[derive(Default, Clone)]
pub struct IdTable {
    /// All ids back to back.
    bytes: Vec<u8>,
    /// End offset in `bytes` of each point's id.
    ends: Vec<u64>,
    /// Point numbers, hashed by their id.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl IdTable {
    pub fn with_capacity(points: usize, id_bytes: usize) -> IdTable {
        IdTable {
            bytes: Vec::with_capacity(id_bytes),
            ends: Vec::with_capacity(points),
            index: HashTable::with_capacity(points),
            hasher: DefaultHashBuilder::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The id of point `p`.
    pub fn get(&self, p: usize) -> &str {
        let start = if p == 0 { 0 } else { self.ends[p - 1] as usize };
        let end = self.ends[p] as usize;
        // Only whole `&str`s are ever appended, so every range between two ends is UTF-8;
        // the fallback can only be reached by a broken invariant.
        std::str::from_utf8(&self.bytes[start..end]).unwrap_or("")
    }

    /// Appends an id as the next point; returns its point number. An id already present
    /// (a dead copy: the caller tombstoned it) stays findable only through the new point.
    pub fn push(&mut self, id: &str) -> u32 {
        let p = self.ends.len() as u32;
        self.bytes.extend_from_slice(id.as_bytes());
        self.ends.push(self.bytes.len() as u64);
        let hash = self.hasher.hash_one(id);
        let (bytes, ends, hasher) = (&self.bytes, &self.ends, &self.hasher);
        let id_of = |q: u32| id_at(bytes, ends, q as usize);
        match self.index.find_entry(hash, |&q| id_of(q) == id.as_bytes()) {
            Ok(mut entry) => *entry.get_mut() = p,
            Err(_) => {
                self.index.insert_unique(hash, p, |&q| {
                    hasher.hash_one(as_str(id_at(bytes, ends, q as usize)))
                });
            }
        }
        p
    }

    /// The newest point holding `id`.
    pub fn find(&self, id: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(id);
        self.index
            .find(hash, |&q| {
                id_at(&self.bytes, &self.ends, q as usize) == id.as_bytes()
            })
            .copied()
    }

    pub fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        self.ends.shrink_to_fit();
        let hasher = &self.hasher;
        let (bytes, ends) = (&self.bytes, &self.ends);
        self.index
            .shrink_to_fit(|&q| hasher.hash_one(as_str(id_at(bytes, ends, q as usize))));
    }

    /// Bytes held, by capacity.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 8 + self.index.capacity() * 5
    }

    /// The raw parts, for encoding: the arena and the end offsets.
    pub fn parts(&self) -> (&[u8], &[u64]) {
        (&self.bytes, &self.ends)
    }

    /// Rebuilds a table from its raw parts; refuses parts that are not a valid table.
    pub fn from_parts(bytes: Vec<u8>, ends: Vec<u64>) -> Result<IdTable, String> {
        let mut prev = 0u64;
        for (p, &end) in ends.iter().enumerate() {
            if end < prev || end as usize > bytes.len() {
                return Err(format!(
                    "id {p} ends at {end}, outside the {}-byte arena",
                    bytes.len()
                ));
            }
            if std::str::from_utf8(&bytes[prev as usize..end as usize]).is_err() {
                return Err(format!("id {p} is not UTF-8"));
            }
            prev = end;
        }
        if prev as usize != bytes.len() {
            return Err(format!("ids cover {prev} of {} arena bytes", bytes.len()));
        }
        let mut table = IdTable {
            index: HashTable::with_capacity(ends.len()),
            bytes,
            ends,
            hasher: DefaultHashBuilder::default(),
        };
        for p in 0..table.ends.len() {
            let (bytes, ends, hasher) = (&table.bytes, &table.ends, &table.hasher);
            let id = id_at(bytes, ends, p);
            let hash = hasher.hash_one(as_str(id));
            match table
                .index
                .find_entry(hash, |&q| id_at(bytes, ends, q as usize) == id)
            {
                Ok(mut entry) => *entry.get_mut() = p as u32,
                Err(_) => {
                    table.index.insert_unique(hash, p as u32, |&q| {
                        hasher.hash_one(as_str(id_at(bytes, ends, q as usize)))
                    });
                }
            }
        }
        Ok(table)
    }
}

fn id_at<'a>(bytes: &'a [u8], ends: &[u64], p: usize) -> &'a [u8] {
    let start = if p == 0 { 0 } else { ends[p - 1] as usize };
    &bytes[start..ends[p] as usize]
}

/// Ids are hashed as `&str` everywhere, so that a lookup by `&str` finds them.
fn as_str(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_find_and_rebuild() {
        let mut t = IdTable::default();
        for i in 0..1000 {
            assert_eq!(t.push(&format!("id-{i}")), i);
        }
        assert_eq!(t.push("id-7"), 1000); // a newer copy of id-7
        assert_eq!(t.find("id-7"), Some(1000));
        assert_eq!(t.find("id-8"), Some(8));
        assert_eq!(t.find("nope"), None);
        assert_eq!(t.get(8), "id-8");
        let (bytes, ends) = t.parts();
        let again = IdTable::from_parts(bytes.to_vec(), ends.to_vec()).unwrap();
        assert_eq!(again.find("id-7"), Some(1000));
        assert_eq!(again.get(999), "id-999");
        assert!(IdTable::from_parts(b"ab".to_vec(), vec![3]).is_err());
        assert!(IdTable::from_parts(vec![0xff], vec![1]).is_err());
        assert!(IdTable::from_parts(b"abc".to_vec(), vec![2]).is_err());
    }
}
