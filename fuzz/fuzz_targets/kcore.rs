//! See `bpfmem_fuzz::targets::kcore`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bpfmem_fuzz::targets::kcore::run(data);
});
