//! Where an index's objects live in storaged.

pub const KEY_PREFIX: &str = "_vectors/";
pub const KEY_SUFFIX: &str = ".lhv1";

/// The manifest of index `name` (in 0.1.0, the whole index).
pub fn manifest_key(name: &str) -> String {
    format!("{KEY_PREFIX}{name}{KEY_SUFFIX}")
}

/// Everything else of index `name`, all incarnations: `_vectors/<name>/`.
pub fn index_dir(name: &str) -> String {
    format!("{KEY_PREFIX}{name}/")
}

/// The objects of one incarnation of index `name`.
pub fn incarnation_dir(name: &str, incarnation: &str) -> String {
    format!("{KEY_PREFIX}{name}/{incarnation}/")
}

/// The index name of a manifest key (`_vectors/<name>.lhv1`), if it is one.
pub fn name_of_manifest(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?.strip_suffix(KEY_SUFFIX)?;
    (!rest.contains('/')).then_some(rest)
}

/// The index name and the rest of a key under `_vectors/<name>/`.
pub fn split_index_object(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(KEY_PREFIX)?.split_once('/')
}

/// A new incarnation: sixteen hex digits, different for every index created (time, process
/// and a counter), so that objects of a deleted index are never mistaken for a newer one's.
pub fn new_incarnation() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mixed = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{mixed:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(manifest_key("a"), "_vectors/a.lhv1");
        assert_eq!(name_of_manifest("_vectors/a.lhv1"), Some("a"));
        assert_eq!(name_of_manifest("_vectors/a/b.lhv1"), None);
        assert_eq!(
            split_index_object("_vectors/a/0123/seg-1.lhv1"),
            Some(("a", "0123/seg-1.lhv1"))
        );
        assert_ne!(new_incarnation(), new_incarnation());
        assert_eq!(new_incarnation().len(), 16);
    }
}
