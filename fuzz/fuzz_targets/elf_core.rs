//! See `bpfmem_fuzz::targets::elf_core`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bpfmem_fuzz::targets::elf_core::run(data);
});
