//! The replication core under a fault schedule the fuzzer writes (see quorum::fuzzing).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| quorum::fuzzing::check_core_schedule(data));
