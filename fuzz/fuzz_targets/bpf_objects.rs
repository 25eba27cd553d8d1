//! See `bpfmem_fuzz::targets::bpf_objects`.
#![no_main]

use bpfmem_fuzz::targets::bpf_objects::{run, Input};

libfuzzer_sys::fuzz_target!(|input: (Input, &[u8])| {
    run(&input.0, input.1);
});
