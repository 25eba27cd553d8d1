//! See `bpfmem_fuzz::targets::discover`.
#![no_main]

use bpfmem_fuzz::targets::discover::{run, Input};

libfuzzer_sys::fuzz_target!(|input: (Input, &[u8])| {
    run(&input.0, input.1);
});
