//! The peer port's decoders: frame splitting, handshakes, messages (see quorum::fuzzing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use quorum::fuzzing::{CountingAlloc, check_peer_decode, take_largest_allocation};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| {
    take_largest_allocation();
    check_peer_decode(data);
    let largest = take_largest_allocation();
    assert!(
        largest <= 64 * data.len() + (1 << 20),
        "a {largest}-byte allocation for {} input bytes",
        data.len()
    );
});
