//! See `bpfmem_fuzz::targets::page_walk`.
#![no_main]

use bpfmem_fuzz::targets::page_walk::{run, Input};

libfuzzer_sys::fuzz_target!(|input: (Input, &[u8])| {
    run(&input.0, input.1);
});
