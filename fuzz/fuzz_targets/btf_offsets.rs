//! See `bpfmem_fuzz::targets::btf_offsets`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bpfmem_fuzz::targets::btf_offsets::run(data);
});
