//! RESP decoding: no panic, split-invariance, re-encoding round trip, bounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quorum::fuzzing::{CountingAlloc, check_resp_decode, take_largest_allocation};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| {
    take_largest_allocation();
    check_resp_decode(data);
    let largest = take_largest_allocation();
    assert!(
        largest <= 64 * data.len() + 64 * 1024,
        "a {largest}-byte allocation for {} input bytes",
        data.len()
    );
});
