//! Every decoder of stored objects, fed arbitrary bytes: none may panic, hang or allocate
//! what the input merely claims. (A file in storaged is outside vectord's control.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use vectord_actors::codec;

fuzz_target!(|data: &[u8]| {
    let _ = codec::decode_index(data);
    let _ = codec::v1::decode(data);
    let _ = codec::manifest::decode(data);
    // The first byte picks the dimension the log is read with.
    let dim = data.first().map_or(1, |&b| b as usize % 64 + 1);
    let _ = codec::log::decode(data, dim);
    // A segment object arriving in chunks of a size the input picks.
    let chunk = data.get(1).map_or(1, |&b| b as usize % 97 + 1);
    let mut reader = codec::segment::SegmentObjectReader::default();
    let mut ok = true;
    for piece in data.chunks(chunk) {
        if reader.feed(piece).is_err() {
            ok = false;
            break;
        }
    }
    if ok {
        let _ = reader.finish();
    }
});
