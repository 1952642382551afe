//! WAL recovery: random appends, a crash at any offset, byte flips (see quorum::fuzzing).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| quorum::fuzzing::check_wal_recovery(data));
