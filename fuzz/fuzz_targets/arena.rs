//! See `bpfmem_fuzz::targets::arena`.
#![no_main]

use bpfmem_fuzz::targets::arena::{run, Input};

libfuzzer_sys::fuzz_target!(|input: (Input, &[u8])| {
    run(&input.0, input.1);
});
