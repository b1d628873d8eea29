//! The documents of one segment's points (the text each item's vector was made from, a RAG
//! chunk): every document back to back in one byte array with an end offset per point.
//! That is also the form a segment object stores them in, so a save streams them and a
//! load takes them over without a copy per point. A segment none of whose points has a
//! document holds nothing at all (no offsets either).
//!
//! Point p's entry is `bytes[ends[p - 1]..ends[p]]`: empty when the item has no document,
//! else one marker byte (1) and the document's UTF-8 text, so that an empty document and
//! no document stay apart.

/// The marker byte in front of each document.
const PRESENT: u8 = 1;

#[derive(Default, Clone)]
pub struct Documents {
    bytes: Vec<u8>,
    /// Empty while no point has a document; else one end offset per point.
    ends: Vec<u64>,
}

impl Documents {
    /// Rebuilds the table of `points` points from a stored segment's sections, checking
    /// every entry (offsets in order and in range, marker, UTF-8).
    pub fn from_parts(bytes: Vec<u8>, ends: Vec<u64>, points: usize) -> Result<Documents, String> {
        if ends.len() != points {
            return Err(format!(
                "{} document offsets for {points} points",
                ends.len()
            ));
        }
        let mut start = 0usize;
        for (p, &end) in ends.iter().enumerate() {
            let end = usize::try_from(end).unwrap_or(usize::MAX);
            if end < start || end > bytes.len() {
                return Err(format!("document of point {p} is out of range"));
            }
            let entry = &bytes[start..end];
            if let Some((&marker, text)) = entry.split_first() {
                if marker != PRESENT || std::str::from_utf8(text).is_err() {
                    return Err(format!("document of point {p} is not UTF-8 text"));
                }
            }
            start = end;
        }
        if start != bytes.len() {
            return Err("document bytes past the last point".into());
        }
        Ok(Documents { bytes, ends })
    }

    /// The documents of a stored segment of `points` points (none stored: no point has
    /// one).
    pub fn from_stored(
        stored: Option<(Vec<u8>, Vec<u64>)>,
        points: usize,
    ) -> Result<Documents, String> {
        match stored {
            None => Ok(Documents::default()),
            Some((bytes, ends)) => Documents::from_parts(bytes, ends, points),
        }
    }

    /// Appends point `p`'s document (`p` is the number of points before it).
    pub fn push(&mut self, p: usize, document: Option<&str>) {
        if self.ends.is_empty() {
            let Some(_) = document else {
                return;
            };
            // The first document of the segment: every earlier point has none.
            self.ends.resize(p, 0);
        }
        if let Some(text) = document {
            self.bytes.push(PRESENT);
            self.bytes.extend_from_slice(text.as_bytes());
        }
        self.ends.push(self.bytes.len() as u64);
    }

    /// Point `p`'s document, if it has one.
    pub fn get(&self, p: usize) -> Option<&str> {
        let end = *self.ends.get(p)? as usize;
        let start = if p == 0 { 0 } else { self.ends[p - 1] as usize };
        let entry = self.bytes.get(start..end)?;
        // Entries are whole `&str`s behind their marker (pushed so, or checked by
        // `from_parts`): the `None`s can only be reached by a broken invariant.
        std::str::from_utf8(entry.get(1..)?).ok()
    }

    /// The stored form: bytes and end offsets; `None` when no point has a document.
    pub fn parts(&self) -> Option<(&[u8], &[u64])> {
        (!self.ends.is_empty()).then_some((&self.bytes, &self.ends))
    }

    pub fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_empty_and_text_stay_apart_and_round_trip() {
        let mut d = Documents::default();
        d.push(0, None);
        d.push(1, None);
        assert!(d.parts().is_none(), "no document yet: nothing held");
        d.push(2, Some(""));
        d.push(3, Some("héllo\nwörld"));
        d.push(4, None);
        let got: Vec<Option<&str>> = (0..5).map(|p| d.get(p)).collect();
        assert_eq!(got, [None, None, Some(""), Some("héllo\nwörld"), None]);
        let (bytes, ends) = d.parts().expect("documents");
        let back = Documents::from_parts(bytes.to_vec(), ends.to_vec(), 5).expect("valid");
        assert_eq!((0..5).map(|p| back.get(p)).collect::<Vec<_>>(), got);
        assert_eq!(back.get(5), None);
    }

    #[test]
    fn damaged_parts_are_refused() {
        let mut d = Documents::default();
        d.push(0, Some("ab"));
        d.push(1, Some("c"));
        let (bytes, ends) = d.parts().expect("documents");
        let (bytes, ends) = (bytes.to_vec(), ends.to_vec());
        assert!(Documents::from_parts(bytes.clone(), ends.clone(), 3).is_err());
        assert!(Documents::from_parts(bytes.clone(), vec![3, 2], 2).is_err());
        assert!(Documents::from_parts(bytes.clone(), vec![3, 9], 2).is_err());
        assert!(Documents::from_parts(bytes.clone(), vec![3, 4], 2).is_err());
        let mut bad_marker = bytes.clone();
        bad_marker[0] = 7;
        assert!(Documents::from_parts(bad_marker, ends.clone(), 2).is_err());
        let mut not_utf8 = bytes;
        not_utf8[1] = 0xff;
        assert!(Documents::from_parts(not_utf8, ends, 2).is_err());
    }
}
