//! Real-kernel tests: every guest of the test bed (Debian 6.1 and 6.12, booted as
//! bzImage with 5-level and 4-level paging under KASLR, and through PVH without
//! KASLR), read from its ELF dump and from its raw RAM file, checked against what
//! the guest itself reported.

use bpfmem::kernel::BtfOrigin;
use bpfmem::source::{ElfCore, RamFile};
use bpfmem::{DiscoverOptions, Image, Kernel, VmcoreinfoOrigin};
use bpfmem_core::vmcoreinfo::{find_vmcoreinfo, Framing, VmcoreInfo};
use bpfmem_core::{Kva, Pa, PhysRead};
use bpfmem_tests::qemu::{Boot, MEM_MIB};
use bpfmem_tests::testbed::{self, Guest};

/// `__START_KERNEL_map` (arch/x86/include/asm/page_64_types.h): where the kernel
/// image mapping starts; `__pa(kimage address) = kva - __START_KERNEL_map + phys_base`.
const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// The link address of `_text` (`__START_KERNEL` with the default
/// CONFIG_PHYSICAL_START of 16 MiB), before the KASLR offset.
const START_KERNEL: u64 = 0xffff_ffff_8100_0000;

fn guests() -> &'static [Guest] {
    testbed::guests().unwrap_or(&[])
}

/// The physical address of a kernel-image virtual address, by VMCOREINFO alone.
fn kimage_pa(info: &VmcoreInfo, kva: u64) -> Pa {
    let phys_base = info.phys_base().expect("NUMBER(phys_base)");
    Pa((kva - START_KERNEL_MAP).wrapping_add(phys_base as u64))
}

fn check_vmcoreinfo(g: &Guest, what: &str, info: &VmcoreInfo, mem: &dyn PhysRead) {
    let m = &g.manifest;
    assert_eq!(info.osrelease(), m.release, "{}: {what}: OSRELEASE", g.name);
    assert!(info.is_complete(), "{}: {what}: no SYMBOL lines", g.name);
    assert_eq!(info.page_size(), 4096, "{}: {what}", g.name);

    // KERNELOFFSET: the guest's own _text is the link address moved by it.
    let text = m.kallsyms["_text"];
    let offset = info.kernel_offset().expect("KERNELOFFSET");
    assert_eq!(
        START_KERNEL.wrapping_add(offset),
        text,
        "{}: {what}: KERNELOFFSET {offset:#x} vs _text {text:#x}",
        g.name
    );
    match g.boot {
        Boot::Pvh => assert_eq!(offset, 0, "{}: PVH boots have no KASLR", g.name),
        Boot::BzImage { .. } => assert_ne!(offset, 0, "{}: KASLR expected", g.name),
    }

    // phys_base: the release string in init_uts_ns (kernel/utsname.c) must be where
    // the kernel image mapping says it is.
    let uts = info.symbol("init_uts_ns").expect("SYMBOL(init_uts_ns)");
    let name_off = info.offset("uts_namespace.name").unwrap_or(0);
    // struct new_utsname: sysname[65], nodename[65], release[65], ...
    let release_pa = kimage_pa(info, uts + name_off + 2 * 65);
    let mut buf = [0u8; 65];
    mem.read_phys(release_pa, &mut buf)
        .unwrap_or_else(|e| panic!("{}: {what}: reading init_uts_ns: {e}", g.name));
    let len = buf.iter().position(|&b| b == 0).unwrap_or(65);
    assert_eq!(
        std::str::from_utf8(&buf[..len]).unwrap_or("<not utf-8>"),
        m.release,
        "{}: {what}: init_uts_ns.name.release at {release_pa} (phys_base {})",
        g.name,
        info.phys_base().unwrap()
    );

    // Paging mode follows the boot: `-cpu max` gives LA57 to bzImage boots.
    let l5 = info
        .pgtable_l5_enabled()
        .expect("NUMBER(pgtable_l5_enabled)");
    let want_l5 = matches!(g.boot, Boot::BzImage { la57: true });
    assert_eq!(l5, want_l5, "{}: {what}: pgtable_l5_enabled", g.name);
}

#[test]
fn vmcoreinfo_from_elf_note_matches_the_guest() {
    for g in guests() {
        let core = ElfCore::open(&g.elf).expect("open ELF dump");
        assert_eq!(core.cpu_count(), 2, "{}: one NT_PRSTATUS per vCPU", g.name);
        let desc = core.vmcoreinfo_note().unwrap_or_else(|| {
            panic!(
                "{}: no VMCOREINFO note (qemu_fw_cfg loaded: {:?})",
                g.name, g.manifest.modules
            )
        });
        let info = VmcoreInfo::from_note_desc(desc).expect("note parses");
        check_vmcoreinfo(g, "ELF note", &info, &core);

        let image = Image::Core(core);
        let (_, origin) = image.vmcoreinfo().expect("image vmcoreinfo");
        assert_eq!(
            origin,
            VmcoreinfoOrigin::ElfNote,
            "{}: note preferred",
            g.name
        );
    }
}

#[test]
fn vmcoreinfo_scanned_from_elf_memory_matches_the_guest() {
    for g in guests() {
        let core = ElfCore::open(&g.elf).expect("open ELF dump");
        let found = find_vmcoreinfo(&core).expect("scan ELF memory");
        assert_eq!(found.framing, Framing::Note, "{}: at {}", g.name, found.pa);
        check_vmcoreinfo(g, "ELF memory scan", &found.info, &core);
    }
}

#[test]
fn vmcoreinfo_scanned_from_raw_ram_matches_the_guest() {
    for g in guests() {
        let ram = RamFile::open(&g.ram, Pa(0)).expect("open RAM file");
        assert_eq!(ram.len(), MEM_MIB << 20, "{}: RAM file size", g.name);
        let image = Image::Ram(ram);
        let (info, origin) = image.vmcoreinfo().expect("scan RAM file");
        assert!(
            matches!(
                origin,
                VmcoreinfoOrigin::Memory {
                    framing: Framing::Note,
                    ..
                }
            ),
            "{}: {origin}",
            g.name
        );
        check_vmcoreinfo(g, "RAM file scan", &info, &image);
    }
}

#[test]
fn elf_dump_and_ram_file_hold_the_same_memory() {
    for g in guests() {
        let core = ElfCore::open(&g.elf).expect("open ELF dump");
        let ram = RamFile::open(&g.ram, Pa(0)).expect("open RAM file");
        // The ELF dump covers guest RAM (below the PCI hole for a 512 MiB guest)
        // plus the BIOS ROM; every RAM byte it has must equal the RAM file's.
        let mut from = Pa(0);
        let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        let mut compared = 0u64;
        while let Some(r) = core.next_range(from) {
            let end = r.start.get() + r.len;
            let mut pa = r.start;
            while pa.get() < end.min(MEM_MIB << 20) {
                let n = ((end.min(MEM_MIB << 20) - pa.get()) as usize).min(a.len());
                core.read_phys(pa, &mut a[..n]).unwrap();
                ram.read_phys(pa, &mut b[..n]).unwrap();
                assert!(a[..n] == b[..n], "{}: memory differs near {pa}", g.name);
                compared += n as u64;
                pa = Pa(pa.get() + n as u64);
            }
            from = Pa(end);
        }
        assert_eq!(compared, MEM_MIB << 20, "{}: all of RAM compared", g.name);
    }
}

#[test]
fn some_guest_has_more_possible_than_online_cpus() {
    // QEMU's `-smp 2,maxcpus=4` lists hot-pluggable CPUs; 6.1 counts them as
    // possible (6.12 ignores MADT entries that are neither enabled nor
    // online-capable). Per-CPU walks must cover possible CPUs, so the matrix needs
    // a guest where the two differ.
    let g = guests();
    if !g.is_empty() {
        assert!(
            g.iter()
                .any(|g| g.manifest.possible_cpus.len() > g.manifest.online_cpus.len()),
            "no guest with offline possible CPUs"
        );
    }
}

#[test]
fn manifest_reports_every_map_the_agent_made() {
    for g in guests() {
        let m = &g.manifest;
        let names: Vec<&str> = m.maps.iter().map(|m| m.name.as_str()).collect();
        for want in [
            "arr",
            "arr_v20",
            "arr_v1000",
            "pcpu_arr",
            "hash",
            "hash_k12_v20",
            "hash_nopre",
            "lru_hash",
            "pcpu_hash",
            "lru_pcpu_hash",
            "hash_big",
            "hash_empty",
        ] {
            assert!(
                names.contains(&want),
                "{}: no map {want}: {names:?}",
                g.name
            );
        }
        assert_eq!(
            names.iter().filter(|n| **n == "dup").count(),
            2,
            "{}",
            g.name
        );
        let big = m.maps.iter().find(|m| m.name == "hash_big").unwrap();
        assert_eq!(big.entries.len(), 100_000, "{}: hash_big", g.name);
        let pcpu = m.maps.iter().find(|m| m.name == "pcpu_arr").unwrap();
        assert_eq!(m.online_cpus.len(), 2, "{}: online CPUs", g.name);
        assert!(m.possible_cpus.len() >= 2, "{}: possible CPUs", g.name);
        assert_eq!(pcpu.entries.len(), 16, "{}: pcpu_arr", g.name);
        for e in &pcpu.entries {
            let n = e.values.as_ref().map(Vec::len);
            assert_eq!(n, Some(m.possible_cpus.len()), "{}", g.name);
        }
        let arena = m.maps.iter().find(|m| m.name == "arena");
        if g.kernel.line.name == "6.1" {
            assert!(arena.is_none(), "{}: 6.1 has no arena", g.name);
        } else {
            let arena = arena.unwrap_or_else(|| panic!("{}: no arena: {:?}", g.name, m.notes));
            assert_eq!(arena.arena_pages.len(), 3, "{}", g.name);
        }
    }
}

/// Both images of a guest, opened and discovered from nothing but their bytes.
fn kernels_of(g: &Guest) -> Vec<(&'static str, Kernel<Image>)> {
    let opts = DiscoverOptions::default();
    let core = ElfCore::open(&g.elf).expect("open ELF dump");
    let ram = RamFile::open(&g.ram, Pa(0)).expect("open RAM file");
    [
        ("ELF dump", Image::Core(core)),
        ("RAM file", Image::Ram(ram)),
    ]
    .into_iter()
    .map(|(what, image)| {
        let k = Kernel::open(image, &opts)
            .unwrap_or_else(|e| panic!("{}: {what}: discovery: {e}", g.name));
        (what, k)
    })
    .collect()
}

#[test]
fn discovery_finds_the_guests_own_symbols_cpus_and_paging() {
    for g in guests() {
        let m = &g.manifest;
        for (what, k) in kernels_of(g) {
            let levels = match g.boot {
                Boot::BzImage { la57: true } => 5,
                _ => 4,
            };
            assert_eq!(k.paging_levels(), levels, "{}: {what}", g.name);
            // Every symbol the guest's /proc/kallsyms showed, decoded from the image.
            for (name, &want) in &m.kallsyms {
                let got = k
                    .symbol(name)
                    .unwrap_or_else(|e| panic!("{}: {what}: kallsyms {name}: {e}", g.name));
                assert_eq!(got, Some(Kva(want)), "{}: {what}: kallsyms {name}", g.name);
            }
            for name in bpfmem::kernel::WANTED {
                assert!(
                    m.kallsyms.contains_key(name),
                    "{}: the agent did not report {name}",
                    g.name
                );
            }
            // page_offset_base as read from memory is the direct map the guest used:
            // PVH boots have no KASLR and keep the default.
            if g.boot == Boot::Pvh {
                assert_eq!(
                    k.page_offset_base(),
                    Kva(0xffff_8880_0000_0000),
                    "{}",
                    g.name
                );
            }
            assert_eq!(
                k.possible_cpus(),
                &m.possible_cpus[..],
                "{}: {what}",
                g.name
            );
            assert!(
                matches!(k.btf_origin(), BtfOrigin::Image { len, .. } if *len > 1 << 20),
                "{}: {what}: {}",
                g.name,
                k.btf_origin()
            );
        }
    }
}

#[test]
fn maps_listed_from_memory_equal_the_manifest() {
    for g in guests() {
        for (what, k) in kernels_of(g) {
            let maps: Vec<_> = k
                .maps()
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{}: {what}: listing maps: {e}", g.name));
            let got: Vec<_> = maps
                .iter()
                .map(|m| {
                    (
                        m.id,
                        m.name().to_string(),
                        m.map_type.0,
                        m.key_size,
                        m.value_size,
                        m.max_entries,
                        m.map_flags,
                        m.map_extra,
                        m.btf_id,
                        m.btf_key_type_id,
                        m.btf_value_type_id,
                    )
                })
                .collect();
            let want: Vec<_> = g
                .manifest
                .maps
                .iter()
                .map(|m| {
                    (
                        m.id,
                        m.name.clone(),
                        m.map_type,
                        m.key_size,
                        m.value_size,
                        m.max_entries,
                        m.map_flags,
                        m.map_extra,
                        m.btf_id,
                        m.btf_key_type_id,
                        m.btf_value_type_id,
                    )
                })
                .collect();
            assert_eq!(got, want, "{}: {what}", g.name);
            // One map by id, through an xa_load-style descent.
            for m in &maps {
                assert_eq!(k.map(m.id).unwrap().as_ref(), Some(m), "{}", g.name);
            }
            let absent = maps.iter().map(|m| m.id).max().unwrap_or(0) + 1000;
            assert_eq!(k.map(absent).unwrap(), None, "{}", g.name);
        }
    }
}

#[test]
fn btf_from_the_image_equals_btf_from_the_package_vmlinux() {
    for g in guests() {
        let image = Image::Core(ElfCore::open(&g.elf).expect("open ELF dump"));
        let from_image = Kernel::open(image, &DiscoverOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", g.name));
        let opts = DiscoverOptions {
            btf_file: Some(g.kernel.vmlinux.clone()),
        };
        let image = Image::Core(ElfCore::open(&g.elf).expect("open ELF dump"));
        let from_file = Kernel::open(image, &opts).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert_eq!(
            from_image.offsets(),
            from_file.offsets(),
            "{}: layouts from the image's BTF and the vmlinux's .BTF",
            g.name
        );
        assert_eq!(
            from_file.btf_origin(),
            &BtfOrigin::File(g.kernel.vmlinux.clone())
        );
        // Arena maps exist from 6.9: the layout must be there exactly when the
        // guest could make one.
        let has_arena = g.manifest.maps.iter().any(|m| m.name == "arena");
        assert_eq!(
            from_image.offsets().bpf_arena.is_some(),
            has_arena,
            "{}",
            g.name
        );
    }
}
