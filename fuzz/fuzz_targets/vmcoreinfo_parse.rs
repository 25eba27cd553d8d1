//! See `bpfmem_fuzz::targets::vmcoreinfo`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bpfmem_fuzz::targets::vmcoreinfo::parse(data);
});
