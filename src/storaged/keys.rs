//! Object keys of storaged: parsing them from the raw request path, checking them, and
//! mapping them onto stored names (`object_store` paths, and file names on local disk).
//!
//! A key is a sequence of segments. On the wire, segments are separated by `/` and each one
//! is percent-escaped; the server decodes each segment on its own, so a `%2F` inside a
//! segment is a literal `/` that belongs to that segment (the key `a%2Fb` is one segment,
//! not the two-level key `a/b`).
//!
//! In storage, every segment is stored under its *encoded name* (`encode_segment`):
//! `object_store`'s own part encoding (`PathPart::from`), in which `/`, `%`, `#`, control
//! bytes (NUL included) and the few other characters object stores dislike are
//! percent-encoded, and everything else (letters, digits, `:`, spaces, non-ASCII UTF-8) is
//! kept. The encoding is a bijection: decoding a stored name gives the segment back, and a
//! name that does not round-trip is not a key (a stray file, skipped). An encoded name never
//! contains `/` (so a segment cannot reach outside its directory) nor `#`.
//!
//! For object stores (S3, memory) the key's path is its encoded names joined by `/`
//! (`Key::to_path`): their namespace is flat, so `a` and `a/b` coexist there.
//!
//! On local disk (`super::local`) a key `s1/.../sn` is the file `E(sn)` in the directory
//! `E(s1)/.../E(sn-1)` — unless that name is a directory (because keys under `s1/.../sn/`
//! exist too): then the object's file is `E(sn)#obj` (`OBJECT_SUFFIX`), a name no segment
//! encodes to. So any set of keys can be stored, and a directory written before this suffix
//! existed is read as it is. Temporary upload files are `<encoded name>#<digits>`, which no
//! key maps onto either.
//!
//! In `list` (and in messages), a key is shown as its segments joined by `/`, each shown
//! decoded except that a `/` inside a segment is shown as `%2F`, so that listed keys stay
//! unambiguous for keys that a `/`-splitting client can create.

use object_store::path::{Path as StorePath, PathPart};
use percent_encoding::percent_decode_str;

/// Longest key, in bytes of its decoded segments joined by `/`.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest stored (encoded) form of one segment. File names are limited to 255 bytes, and
/// temporary upload files add `#` and up to 20 digits (object files moved aside add
/// `OBJECT_SUFFIX`).
pub const MAX_SEGMENT_BYTES: usize = 200;

/// On local disk: appended to an object's file name when its plain name is a directory.
pub const OBJECT_SUFFIX: &str = "#obj";

/// The stored name of a segment (see the module documentation).
pub fn encode_segment(segment: &str) -> String {
    PathPart::from(segment).as_ref().to_string()
}

/// The segment a stored name stands for; `None` unless `encode_segment` gives that name back
/// (names this module never writes, such as temp files, are not segments).
pub fn decode_segment(name: &str) -> Option<String> {
    let segment = percent_decode_str(name).decode_utf8().ok()?.into_owned();
    (encode_segment(&segment) == name).then_some(segment)
}

/// A checked key: at least one segment, none empty, `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    segments: Vec<String>,
}

/// Why a key was refused. Each message names the key as it was received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is empty")]
    Empty,
    #[error("key {key:?} has an empty segment")]
    EmptySegment { key: String },
    #[error("key {key:?} has a {segment:?} segment; `.` and `..` are not allowed")]
    DotSegment { key: String, segment: String },
    #[error("key {key:?}: segment {segment:?} is not valid percent-encoding")]
    BadEscape { key: String, segment: String },
    #[error("key {key:?}: segment {segment:?} is not UTF-8 once decoded")]
    NotUtf8 { key: String, segment: String },
    #[error("key {key:?} is longer than {MAX_KEY_BYTES} bytes")]
    TooLong { key: String },
    #[error(
        "key {key:?}: segment {segment:?} is longer than {MAX_SEGMENT_BYTES} bytes once stored"
    )]
    SegmentTooLong { key: String, segment: String },
}

impl Key {
    /// Parses the wire form of a key: the raw (still escaped) request path after
    /// `/storage/<op>/`.
    pub fn from_wire(raw: &str) -> Result<Key, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        let key = || raw.to_string();
        let mut segments = Vec::new();
        for seg in raw.split('/') {
            if !valid_escapes(seg) {
                return Err(KeyError::BadEscape {
                    key: key(),
                    segment: seg.to_string(),
                });
            }
            let decoded = percent_decode_str(seg)
                .decode_utf8()
                .map_err(|_| KeyError::NotUtf8 {
                    key: key(),
                    segment: seg.to_string(),
                })?;
            segments.push(decoded.into_owned());
        }
        Key::from_segments(segments).map_err(|e| e.with_key(raw))
    }

    /// Checks decoded segments. Errors name the key as the segments joined by `/`.
    pub fn from_segments(segments: Vec<String>) -> Result<Key, KeyError> {
        let shown = || segments.join("/");
        if segments.is_empty() || (segments.len() == 1 && segments[0].is_empty()) {
            return Err(KeyError::Empty);
        }
        let total: usize = segments.iter().map(|s| s.len() + 1).sum::<usize>() - 1;
        if total > MAX_KEY_BYTES {
            return Err(KeyError::TooLong { key: shown() });
        }
        for seg in &segments {
            if seg.is_empty() {
                return Err(KeyError::EmptySegment { key: shown() });
            }
            if seg == "." || seg == ".." {
                return Err(KeyError::DotSegment {
                    key: shown(),
                    segment: seg.clone(),
                });
            }
            if PathPart::from(seg.as_str()).as_ref().len() > MAX_SEGMENT_BYTES {
                return Err(KeyError::SegmentTooLong {
                    key: shown(),
                    segment: seg.clone(),
                });
            }
        }
        Ok(Key { segments })
    }

    /// The key of a stored path, or `None` for a path no valid key maps to (a stray file).
    pub fn from_path(path: &StorePath) -> Option<Key> {
        let segments = path
            .parts()
            .map(|part| {
                percent_decode_str(part.as_ref())
                    .decode_utf8()
                    .ok()
                    .map(|s| s.into_owned())
            })
            .collect::<Option<Vec<String>>>()?;
        let key = Key::from_segments(segments).ok()?;
        // Only names this module would have written: the encoding must round-trip.
        (key.to_path() == *path).then_some(key)
    }

    /// The `object_store` path of this key: one encoded part per segment.
    pub fn to_path(&self) -> StorePath {
        StorePath::from_iter(self.segments.iter().map(|s| PathPart::from(s.as_str())))
    }

    /// The decoded segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The stored name of each segment.
    pub fn encoded(&self) -> Vec<String> {
        self.segments.iter().map(|s| encode_segment(s)).collect()
    }

    /// The key as listed: segments joined by `/`, a `/` inside a segment shown as `%2F`.
    pub fn display(&self) -> String {
        let mut out = String::new();
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.push_str(&seg.replace('/', "%2F"));
        }
        out
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl KeyError {
    /// The same error, naming the key by its wire form.
    fn with_key(self, raw: &str) -> KeyError {
        let key = raw.to_string();
        match self {
            KeyError::Empty => KeyError::Empty,
            KeyError::EmptySegment { .. } => KeyError::EmptySegment { key },
            KeyError::DotSegment { segment, .. } => KeyError::DotSegment { key, segment },
            KeyError::BadEscape { segment, .. } => KeyError::BadEscape { key, segment },
            KeyError::NotUtf8 { segment, .. } => KeyError::NotUtf8 { key, segment },
            KeyError::TooLong { .. } => KeyError::TooLong { key },
            KeyError::SegmentTooLong { segment, .. } => KeyError::SegmentTooLong { key, segment },
        }
    }
}

/// The complete segments of a listed `prefix` (those before its last `/`), when they are
/// plain enough to map back unambiguously; otherwise `None` (list everything, and let the
/// prefix filter do the rest).
pub(crate) fn list_dir_segments(prefix: &str) -> Option<Vec<String>> {
    let (dir, _) = prefix.rsplit_once('/')?;
    let segments: Vec<String> = dir.split('/').map(str::to_string).collect();
    if segments.iter().any(|s| s.contains('%')) {
        return None;
    }
    Key::from_segments(segments.clone()).ok()?;
    Some(segments)
}

/// Every `%` is followed by two hex digits.
fn valid_escapes(seg: &str) -> bool {
    let b = seg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() {
                return false;
            }
            if !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(raw: &str) -> Vec<String> {
        Key::from_wire(raw).unwrap().segments().to_vec()
    }

    #[test]
    fn decodes_segment_by_segment() {
        assert_eq!(segs("a/b"), ["a", "b"]);
        assert_eq!(segs("a%2Fb"), ["a/b"]);
        assert_eq!(segs("a%20b/%C3%A9"), ["a b", "é"]);
        assert_eq!(segs("100%25"), ["100%"]);
        assert_eq!(segs("a%2F..%2Fb"), ["a/../b"]);
    }

    #[test]
    fn refuses_bad_keys() {
        for raw in [
            "", "a//b", "/a", "a/", "./x", "a/../b", "..", ".", "%2E%2E", "a/%2e", "a%zz", "a%2",
            "a%", "%FF",
        ] {
            assert!(Key::from_wire(raw).is_err(), "{raw:?} accepted");
        }
        let long = "x".repeat(MAX_SEGMENT_BYTES + 1);
        assert!(matches!(
            Key::from_wire(&long),
            Err(KeyError::SegmentTooLong { .. })
        ));
        let many = vec!["abcdefgh"; 200].join("/");
        assert!(matches!(
            Key::from_wire(&many),
            Err(KeyError::TooLong { .. })
        ));
    }

    #[test]
    fn paths_round_trip_and_stay_single_parts() {
        for raw in [
            "a%2Fb/c",
            "a%00b",
            "x%23123",
            "sp%20ace/%C3%A9",
            "100%25",
            "%3F%23%26",
        ] {
            let key = Key::from_wire(raw).unwrap();
            let path = key.to_path();
            assert_eq!(path.parts().count(), key.segments().len(), "{raw}");
            assert!(!path.as_ref().contains('#'), "{path}");
            assert_eq!(Key::from_path(&path).as_ref(), Some(&key), "{raw}");
        }
    }

    #[test]
    fn display_escapes_only_slashes_in_segments() {
        assert_eq!(Key::from_wire("a%2Fb/c").unwrap().display(), "a%2Fb/c");
        assert_eq!(
            Key::from_wire("a%20b/100%25").unwrap().display(),
            "a b/100%"
        );
    }

    #[test]
    fn stray_names_are_not_keys() {
        assert_eq!(Key::from_path(&StorePath::parse("x#12").unwrap()), None);
        assert!(Key::from_path(&StorePath::parse("a b/c").unwrap()).is_some());
    }

    #[test]
    fn segment_names_round_trip_and_never_hold_a_hash_or_slash() {
        for seg in [
            "a:", ":", "a%2Fb", "a/b", "100%", "x#1", "#obj", "é ü", "a\u{0}b", "~x", "...",
        ] {
            let name = encode_segment(seg);
            assert!(
                !name.contains('#') && !name.contains('/'),
                "{seg:?} -> {name:?}"
            );
            assert_eq!(decode_segment(&name).as_deref(), Some(seg));
        }
        // not names this module writes
        for name in ["x#1", "x#obj", "a%2fb", "a%3Ab", "%E9", "a%zz"] {
            assert_eq!(decode_segment(name), None, "{name:?}");
        }
        assert_eq!(encode_segment("a:"), "a:");
    }
}
