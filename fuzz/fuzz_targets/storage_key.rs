//! storaged's key parser, fed arbitrary request paths: no panic, and every key it accepts
//! maps to stored names and back to itself (the mapping is a bijection).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vectord::storaged::keys::{decode_segment, encode_segment, Key};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(key) = Key::from_wire(raw) else {
        return;
    };
    for segment in key.segments() {
        let stored = encode_segment(segment);
        assert!(!stored.contains('/') && !stored.contains('#'), "{stored:?}");
        assert_eq!(decode_segment(&stored).as_deref(), Some(segment.as_str()));
    }
    assert_eq!(Key::from_path(&key.to_path()).as_ref(), Some(&key));
    let _ = key.display();
});
