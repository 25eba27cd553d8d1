//! Real-kernel tests: every guest of the test bed (Debian 6.1 and 6.12, booted as
//! bzImage with 5-level and 4-level paging under KASLR, and through PVH without
//! KASLR), read from its ELF dump and from its raw RAM file, checked against what
//! the guest itself reported.

use std::collections::HashMap;

use bpfmem::kernel::BtfOrigin;
use bpfmem::source::{ElfCore, RamFile};
use bpfmem::{
    ArenaPageData, BpfMapAccessor, DiscoverOptions, Entry, Image, Kernel, VmcoreinfoOrigin,
};
use bpfmem_core::uapi::MapType;
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
            "poke",
            "btf_hash",
            "st_ops",
            "churn",
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
            // Both kernels have kallsyms_seqs_of_names (Debian's 6.1 too), which
            // lookups binary-search.
            assert!(k.kallsyms().has_name_index(), "{}: {what}", g.name);
            assert_eq!(k.symbol("no_such_symbol_here"), Ok(None));
            // The search finds what a scan finds (the first of each name, in
            // address order) for every 97th name of the table.
            let mut first: HashMap<String, u64> = HashMap::new();
            let mut names = Vec::new();
            for (i, s) in k.kallsyms().iter(k.mem()).enumerate() {
                let s = s.unwrap_or_else(|e| panic!("{}: {what}: kallsyms walk: {e}", g.name));
                let name = String::from_utf8_lossy(s.name()).into_owned();
                if i % 97 == 0 {
                    names.push(name.clone());
                }
                first.entry(name).or_insert(s.addr());
            }
            assert!(
                names.len() > 500,
                "{}: {what}: {} names",
                g.name,
                names.len()
            );
            for name in &names {
                assert_eq!(
                    k.symbol(name),
                    Ok(Some(Kva(first[name]))),
                    "{}: {what}: kallsyms {name}",
                    g.name
                );
            }
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

#[test]
fn map_contents_read_from_memory_equal_the_manifest() {
    for g in guests() {
        for (what, k) in kernels_of(g) {
            let ctx = |m: &str| format!("{}: {what}: map {m}", g.name);
            for mm in &g.manifest.maps {
                let id = mm.id;
                if MapType(mm.map_type) == MapType::ARENA {
                    let mut pages = k
                        .arena_pages(id)
                        .unwrap_or_else(|e| panic!("{}: {e}", ctx(&mm.name)));
                    let mut got = Vec::new();
                    let mut p = ArenaPageData {
                        user_addr: 0,
                        data: Vec::new(),
                    };
                    while pages
                        .next_into(&mut p)
                        .unwrap_or_else(|e| panic!("{}: {e}", ctx(&mm.name)))
                    {
                        got.push((p.user_addr, p.data.clone()));
                    }
                    let want: Vec<_> = mm
                        .arena_pages
                        .iter()
                        .map(|p| (p.user_addr, p.data.0.clone()))
                        .collect();
                    assert_eq!(got, want, "{}: present pages", ctx(&mm.name));
                    continue;
                }
                let mut got: Vec<Entry> = k
                    .entries(id)
                    .unwrap_or_else(|e| panic!("{}: {e}", ctx(&mm.name)))
                    .collect::<Result<_, _>>()
                    .unwrap_or_else(|e| panic!("{}: {e}", ctx(&mm.name)));
                got.sort_by(|a, b| a.key.cmp(&b.key));
                assert_eq!(got.len(), mm.entries.len(), "{}: entries", ctx(&mm.name));
                for (e, want) in got.iter().zip(&mm.entries) {
                    assert_eq!(e.key, want.key.0, "{}: keys", ctx(&mm.name));
                    match (&want.value, &want.values) {
                        (Some(v), None) => {
                            assert_eq!(e.value, v.0, "{}: key {:?}", ctx(&mm.name), e.key)
                        }
                        (None, Some(per_cpu)) => {
                            let got: Vec<&[u8]> = e.percpu_values(mm.value_size).collect();
                            let want: Vec<&[u8]> = per_cpu.iter().map(|v| &v.0[..]).collect();
                            assert_eq!(got, want, "{}: key {:?}", ctx(&mm.name), e.key);
                        }
                        _ => panic!("{}: manifest entry without a value", ctx(&mm.name)),
                    }
                }
            }
            // Where each kernel keeps per-CPU pointers of a 4-byte-key hash:
            // decided from the image alone, and reported.
            if let Some(pcpu) = g.manifest.maps.iter().find(|m| m.name == "pcpu_hash") {
                let at = k.pcpu_ptr_at(pcpu.id).unwrap();
                eprintln!("{}: {what}: pcpu_hash per-CPU pointers at {at:?}", g.name);
                assert!(at.is_some(), "{}: {what}", g.name);
            }
        }
    }
}

#[test]
fn single_values_read_by_key_equal_the_manifest() {
    for g in guests() {
        for (what, k) in kernels_of(g) {
            for mm in &g.manifest.maps {
                match MapType(mm.map_type) {
                    MapType::ARRAY => {
                        // The last key and a window inside its value.
                        let last = mm.entries.iter().max_by_key(|e| le_u32(&e.key.0)).unwrap();
                        let key = le_u32(&last.key.0);
                        let value = &last.value.as_ref().unwrap().0;
                        let mut buf = vec![0u8; value.len()];
                        k.read_array_value(mm.id, key, 0, &mut buf).unwrap();
                        assert_eq!(&buf, value, "{}: {what}: {} key {key}", g.name, mm.name);
                        if value.len() > 3 {
                            let mut w = vec![0u8; value.len() - 3];
                            k.read_array_value(mm.id, key, 2, &mut w).unwrap();
                            assert_eq!(&w[..], &value[2..value.len() - 1]);
                        }
                        assert!(k
                            .read_array_value(mm.id, mm.max_entries, 0, &mut buf)
                            .is_err());
                        assert!(k.read_array_value(mm.id, key, 1, &mut buf).is_err());
                    }
                    MapType::PERCPU_ARRAY => {
                        for e in &mm.entries {
                            let mut out = Vec::new();
                            k.read_percpu_array_value(mm.id, le_u32(&e.key.0), &mut out)
                                .unwrap();
                            let want: Vec<u8> = e
                                .values
                                .as_ref()
                                .unwrap()
                                .iter()
                                .flat_map(|v| v.0.clone())
                                .collect();
                            assert_eq!(out, want, "{}: {what}: {}", g.name, mm.name);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap())
}

#[test]
fn a_value_written_into_running_guest_ram_is_what_the_guest_reads() {
    for g in guests() {
        let p = g
            .poke
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: live write round trip: {e}", g.name));
        assert!(p.crosses_page, "{}", g.name);
        assert_eq!(p.written.0.len(), 1000, "{}", g.name);
        assert_eq!(
            p.seen, p.written,
            "{}: bpf(2) in the guest returned other bytes for poke key {} than the host wrote at kva {:#x}",
            g.name, p.key, p.kva
        );
        // The frozen images still hold the value from before the write.
        let poke = g.manifest.maps.iter().find(|m| m.name == "poke").unwrap();
        let before = &poke
            .entries
            .iter()
            .find(|e| e.key.0 == p.key.to_le_bytes())
            .unwrap();
        assert_ne!(before.value.as_ref().unwrap(), &p.written, "{}", g.name);
    }
}

#[test]
fn map_btf_read_from_memory_equals_what_the_guest_reported() {
    for g in guests() {
        let m = &g.manifest;
        assert!(
            !m.btfs.is_empty(),
            "{}: the agent reported no BTF object",
            g.name
        );
        for (what, k) in kernels_of(g) {
            for mm in m.maps.iter().filter(|mm| mm.btf_id != 0) {
                let got = k
                    .map_btf(mm.id)
                    .unwrap_or_else(|e| panic!("{}: {what}: {}: {e}", g.name, mm.name))
                    .unwrap_or_else(|| panic!("{}: {what}: {}: no BTF", g.name, mm.name));
                let want = m.btfs.iter().find(|b| b.id == mm.btf_id).unwrap();
                assert_eq!(got.id, want.id, "{}: {what}: {}", g.name, mm.name);
                assert_eq!(got.name, want.name, "{}: {what}: {}", g.name, mm.name);
                assert_eq!(got.kernel_btf, want.kernel_btf, "{}: {what}", g.name);
                assert!(!got.split, "{}: {what}: program BTF is not split", g.name);
                assert_eq!(
                    got.data, want.data.0,
                    "{}: {what}: {} BTF bytes",
                    g.name, mm.name
                );
            }
            // The BTF the agent built itself, byte for byte.
            let own = m.maps.iter().find(|mm| mm.name == "btf_hash").unwrap();
            let got = k.map_btf(own.id).unwrap().unwrap();
            assert_eq!(
                got.data,
                bpfmem_guest_agent::btf::blob(),
                "{}: {what}",
                g.name
            );
        }
    }
}

#[test]
fn each_guest_reads_its_own_maps_through_proc_kcore() {
    for g in guests() {
        let r = g
            .manifest
            .kcore
            .as_ref()
            .unwrap_or_else(|| panic!("{}: the agent did not read /proc/kcore", g.name));
        assert_eq!(r.error, None, "{}: /proc/kcore", g.name);
        assert!(
            r.ok,
            "{}: /proc/kcore disagrees with bpf(2): {:?}",
            g.name, r.problems
        );
        // Every map, every entry: with the image tests above, the bpf(2) view,
        // the in-guest kcore view and the host's image view agree entry for entry.
        assert_eq!(r.maps as usize, g.manifest.maps.len(), "{}", g.name);
        let entries: usize = g
            .manifest
            .maps
            .iter()
            .map(|m| m.entries.len() + m.arena_pages.len())
            .sum();
        assert_eq!(r.entries as usize, entries, "{}", g.name);
        eprintln!(
            "{}: /proc/kcore: {} maps, {} entries in {} ms",
            g.name, r.maps, r.entries, r.elapsed_ms
        );
    }
}

#[test]
fn dev_mem_reads_ram_exactly_where_the_kernel_allows_it() {
    for g in guests() {
        let r = g
            .manifest
            .devmem
            .as_ref()
            .unwrap_or_else(|| panic!("{}: the agent did not try /dev/mem", g.name));
        let config = g
            .kernel
            .bzimage
            .with_file_name(format!("config-{}", g.kernel.release));
        let config = std::fs::read_to_string(&config)
            .unwrap_or_else(|e| panic!("{}: {}: {e}", g.name, config.display()));
        if config.lines().any(|l| l == "CONFIG_STRICT_DEVMEM=y") {
            // devmem_is_allowed() refuses RAM: bpfmem must say so, once, clearly.
            let e = r.error.as_deref().unwrap_or_else(|| {
                panic!("{}: /dev/mem read RAM on a STRICT_DEVMEM kernel", g.name)
            });
            assert!(e.contains("CONFIG_STRICT_DEVMEM"), "{}: {e}", g.name);
        } else {
            assert_eq!(r.error, None, "{}", g.name);
            assert!(r.ok, "{}: /dev/mem: {:?}", g.name, r.problems);
        }
    }
}

/// `bpfmem ARGS` on a test-bed image; stdout, or a panic with stderr.
fn cli(g: &Guest, args: &[&str]) -> String {
    let bin = testbed::bpfmem_bin().expect("building bpfmem");
    let out = std::process::Command::new(&bin)
        .args(args)
        .output()
        .expect("running bpfmem");
    assert!(
        out.status.success(),
        "{}: bpfmem {args:?}: {}",
        g.name,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn cli_json(g: &Guest, args: &[&str]) -> serde_json::Value {
    let text = cli(g, args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {args:?}: {e}", g.name))
}

fn hex_bytes(v: &serde_json::Value) -> Vec<u8> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect()
}

#[test]
fn the_command_shows_and_dumps_every_map_as_the_guest_reported() {
    for g in guests() {
        let elf = g.elf.to_str().unwrap();
        let ram = g.ram.to_str().unwrap();
        // `map show`: bpftool's fields, equal to what bpf(2) said.
        let shown = cli_json(g, &["--core", elf, "-j", "map", "show"]);
        assert_eq!(
            shown,
            cli_json(g, &["--ram", ram, "-j", "map", "show"]),
            "{}: ELF and RAM",
            g.name
        );
        let shown = shown.as_array().unwrap();
        assert_eq!(shown.len(), g.manifest.maps.len(), "{}", g.name);
        for (s, m) in shown.iter().zip(&g.manifest.maps) {
            assert_eq!(s["id"], m.id, "{}", g.name);
            assert_eq!(s["type"], m.type_name.as_str(), "{}", g.name);
            assert_eq!(s["name"], m.name.as_str(), "{}", g.name);
            assert_eq!(s["flags"], m.map_flags, "{}", g.name);
            assert_eq!(s["bytes_key"], m.key_size, "{}", g.name);
            assert_eq!(s["bytes_value"], m.value_size, "{}", g.name);
            assert_eq!(s["max_entries"], m.max_entries, "{}", g.name);
            assert_eq!(s["btf_id"].as_u64().unwrap_or(0), u64::from(m.btf_id));
        }
        // `map dump` of every map with entries, from both images.
        for m in g
            .manifest
            .maps
            .iter()
            .filter(|m| m.map_type != MapType::ARENA.0)
        {
            let id = m.id.to_string();
            let dumped = cli_json(g, &["--core", elf, "-j", "map", "dump", "id", &id]);
            assert_eq!(
                dumped,
                cli_json(g, &["--ram", ram, "-j", "map", "dump", "id", &id]),
                "{}: {}: ELF and RAM",
                g.name,
                m.name
            );
            let mut got: Vec<(Vec<u8>, Vec<Vec<u8>>)> = dumped
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    let values = match e.get("values") {
                        Some(per_cpu) => per_cpu
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| hex_bytes(&v["value"]))
                            .collect(),
                        None => vec![hex_bytes(&e["value"])],
                    };
                    (hex_bytes(&e["key"]), values)
                })
                .collect();
            got.sort();
            let want: Vec<(Vec<u8>, Vec<Vec<u8>>)> = m
                .entries
                .iter()
                .map(|e| {
                    let values = match (&e.value, &e.values) {
                        (Some(v), _) => vec![v.0.clone()],
                        (None, Some(vs)) => vs.iter().map(|v| v.0.clone()).collect(),
                        (None, None) => vec![],
                    };
                    (e.key.0.clone(), values)
                })
                .collect();
            assert_eq!(got, want, "{}: map dump {} ({})", g.name, m.id, m.name);
        }
        // The arena's pages, as the guest wrote them.
        if let Some(a) = g
            .manifest
            .maps
            .iter()
            .find(|m| m.map_type == MapType::ARENA.0)
        {
            let id = a.id.to_string();
            let pages = cli_json(g, &["--core", elf, "-j", "map", "dump", "id", &id]);
            let got: Vec<(u64, Vec<u8>)> = pages
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["user_addr"].as_u64().unwrap(), hex_bytes(&p["data"])))
                .collect();
            let want: Vec<(u64, Vec<u8>)> = a
                .arena_pages
                .iter()
                .map(|p| (p.user_addr, p.data.0.clone()))
                .collect();
            assert_eq!(got, want, "{}: arena pages", g.name);
        }
    }
}

#[test]
fn the_command_fails_cleanly_on_bad_input() {
    let Some(g) = guests().first() else {
        return;
    };
    let bin = testbed::bpfmem_bin().expect("building bpfmem");
    let elf = g.elf.to_str().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(&bin)
            .args(args)
            .output()
            .unwrap()
    };
    // Usage errors exit 2, one line, no panic.
    for args in [
        vec!["--core", elf, "map", "dump", "id", "x"],
        vec!["--core", elf, "map", "lookup", "id", "1", "key", "1"],
        vec!["--core", elf, "--ram", elf, "map", "show"],
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(2) || out.status.code() == Some(1),
            "{args:?}: {:?} {err}",
            out.status
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            err.starts_with("bpfmem: ") || err.starts_with("error:"),
            "{args:?}: {err}"
        );
    }
    // A missing map is an error naming it.
    let out = run(&["--core", elf, "map", "dump", "id", "99999"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "bpfmem: no map with id 99999\n"
    );
    // A truncated image: one line naming the file and offset.
    let dir = std::env::temp_dir().join(format!("bpfmem-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cut = dir.join("truncated.elf");
    let mut head = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(&g.elf).unwrap(), 100_000),
        &mut head,
    )
    .unwrap();
    std::fs::write(&cut, &head).unwrap();
    let out = run(&["--core", cut.to_str().unwrap(), "map", "show"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("truncated.elf: offset 0x") && err.lines().count() == 1,
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Programs from `prog_idr`, read out of the ELF dump and the RAM file, are
/// what `bpf_prog_get_info_by_fd()` told the guest, every field: id, type,
/// name, tag, `load_time` (stored as `ktime_get_boottime_ns()` at load and
/// reported unchanged, so exact), jited and translated lengths, BTF id and
/// the ids of the maps used.
#[test]
fn programs_listed_from_memory_equal_the_manifest() {
    use bpfmem::objects::BpfObjectAccessor;
    use bpfmem_guest_agent::manifest::AGENT_PROG;

    for g in guests() {
        let m = &g.manifest;
        // The agent's own program, over `arr`: prog_idr and used_maps are
        // not empty.
        let arr = m.maps.iter().find(|x| x.name == "arr").unwrap().id;
        let own = m
            .progs
            .iter()
            .find(|p| p.name == AGENT_PROG)
            .unwrap_or_else(|| panic!("{}: no {AGENT_PROG}: {:?}", g.name, m.notes));
        assert_eq!(
            (own.prog_type, &own.map_ids[..]),
            (1, &[arr][..]),
            "{}",
            g.name
        );
        let want: Vec<_> = m
            .progs
            .iter()
            .map(|p| {
                (
                    p.id,
                    p.prog_type,
                    p.name.clone(),
                    p.tag.0.clone(),
                    p.load_time,
                    p.jited_len,
                    p.xlated_len,
                    p.btf_id,
                    p.map_ids.clone(),
                )
            })
            .collect();
        for (what, k) in kernels_of(g) {
            let progs: Vec<_> = k
                .progs()
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{}: {what}: listing programs: {e}", g.name));
            let got: Vec<_> = progs
                .iter()
                .map(|p| {
                    (
                        p.id,
                        p.prog_type.0,
                        p.name().to_string(),
                        p.tag.to_vec(),
                        p.load_time,
                        p.jited_len,
                        p.xlated_len,
                        p.btf_id,
                        p.map_ids().to_vec(),
                    )
                })
                .collect();
            assert_eq!(got, want, "{}: {what}", g.name);
            assert_eq!(k.list_progs().unwrap(), progs, "{}: {what}", g.name);
            // One program by id, through an xa_load-style descent.
            for p in &progs {
                assert_eq!(k.prog(p.id).unwrap().as_ref(), Some(p), "{}", g.name);
            }
            let absent = progs.iter().map(|p| p.id).max().unwrap_or(0) + 1000;
            assert_eq!(k.prog(absent).unwrap(), None, "{}", g.name);
        }
    }
}

/// BTF objects from `btf_idr`, read out of both images, are what
/// `BPF_BTF_GET_NEXT_ID` and `btf_get_info_by_fd()` told the guest: id,
/// name, size and kernel_btf. vmlinux's is id 1 and its data is the kernel's
/// own `__start_BTF..__stop_BTF` (`btf_parse_vmlinux()`).
#[test]
fn btf_objects_listed_from_memory_equal_the_manifest() {
    use bpfmem::objects::{BpfObjectAccessor, BtfInfo};

    for g in guests() {
        let m = &g.manifest;
        let vmlinux = m.btf_objects.iter().find(|b| b.id == 1);
        assert!(
            vmlinux.is_some_and(|b| b.name == "vmlinux" && b.kernel_btf),
            "{}: {:?}",
            g.name,
            m.btf_objects
        );
        // The BTF objects of maps are among them, with the size of their data.
        for b in &m.btfs {
            assert!(
                m.btf_objects
                    .iter()
                    .any(|o| o.id == b.id && o.size as usize == b.data.0.len()),
                "{}: map BTF {} not listed",
                g.name,
                b.id
            );
        }
        let want: Vec<BtfInfo> = m
            .btf_objects
            .iter()
            .map(|b| BtfInfo {
                id: b.id,
                name: b.name.clone(),
                size: b.size,
                kernel_btf: b.kernel_btf,
            })
            .collect();
        for (what, k) in kernels_of(g) {
            let got = k
                .list_btfs()
                .unwrap_or_else(|e| panic!("{}: {what}: listing BTF objects: {e}", g.name));
            assert_eq!(got, want, "{}: {what}", g.name);
            let v = k.btf(1).unwrap().expect("BTF object 1");
            let (start, stop) = (k.symbols().start_btf, k.symbols().stop_btf);
            assert_eq!(Some(v.data), start, "{}: {what}: vmlinux btf->data", g.name);
            assert_eq!(
                stop.and_then(|s| s.offset_from(v.data)),
                Some(u64::from(v.data_size)),
                "{}: {what}: vmlinux btf->data_size",
                g.name
            );
            assert_eq!(v.base_btf, Kva(0), "{}: {what}", g.name);
            let absent = want.iter().map(|b| b.id).max().unwrap_or(0) + 1000;
            assert_eq!(k.btf(absent).unwrap(), None, "{}", g.name);
        }
    }
}

#[test]
fn the_command_shows_programs_and_btf_objects_as_the_guest_reported() {
    for g in guests() {
        let elf = g.elf.to_str().unwrap();
        let progs = cli_json(g, &["--core", elf, "-j", "prog", "show"]);
        let progs = progs.as_array().unwrap();
        assert_eq!(progs.len(), g.manifest.progs.len(), "{}", g.name);
        for (p, m) in progs.iter().zip(&g.manifest.progs) {
            let tag: String = m.tag.0.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(p["id"], m.id, "{}", g.name);
            assert_eq!(p["name"], m.name.as_str(), "{}", g.name);
            assert_eq!(p["tag"], tag.as_str(), "{}", g.name);
            assert_eq!(p["loaded_at_boot_ns"], m.load_time, "{}", g.name);
            assert_eq!(p["bytes_xlated"], m.xlated_len, "{}", g.name);
            assert_eq!(p["bytes_jited"], m.jited_len, "{}", g.name);
            assert_eq!(p["map_ids"], serde_json::json!(m.map_ids), "{}", g.name);
        }
        let btfs = cli_json(g, &["--core", elf, "-j", "btf", "show"]);
        let got: Vec<(u64, String, u64, bool)> = btfs
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["id"].as_u64().unwrap(),
                    b["name"].as_str().unwrap_or("").to_string(),
                    b["size"].as_u64().unwrap(),
                    b["kernel_btf"].as_bool().unwrap(),
                )
            })
            .collect();
        let want: Vec<(u64, String, u64, bool)> = g
            .manifest
            .btf_objects
            .iter()
            .map(|b| {
                (
                    u64::from(b.id),
                    b.name.clone(),
                    u64::from(b.size),
                    b.kernel_btf,
                )
            })
            .collect();
        assert_eq!(got, want, "{}", g.name);
    }
}

#[test]
fn typed_values_of_the_btf_map_decode_the_raw_bytes() {
    // The agent's btf_hash: key struct bk { u32 pid; u16 port; u8 tag[2]; },
    // value struct bv { u64 count; s32 delta; enum state; flags:3, level:5;
    // char name[4]; } (tests/guest-agent/src/btf.rs). Each formatted field
    // must be what the raw bytes say, decoded here by hand.
    for g in guests() {
        let elf = g.elf.to_str().unwrap();
        let dumped = cli_json(g, &["--core", elf, "-j", "map", "dump", "name", "btf_hash"]);
        let entries = dumped.as_array().unwrap();
        assert_eq!(entries.len(), 20, "{}", g.name);
        for e in entries {
            let key = hex_bytes(&e["key"]);
            let value = hex_bytes(&e["value"]);
            let f = &e["formatted"];
            let u = |b: &[u8]| b.iter().rev().fold(0u64, |acc, &x| acc << 8 | u64::from(x));
            assert_eq!(f["key"]["pid"], u(&key[0..4]), "{}", g.name);
            assert_eq!(f["key"]["port"], u(&key[4..6]), "{}", g.name);
            assert_eq!(f["key"]["tag"], serde_json::json!([key[6], key[7]]));
            assert_eq!(f["value"]["count"], u(&value[0..8]), "{}", g.name);
            let delta = i32::from_le_bytes(value[8..12].try_into().unwrap());
            assert_eq!(f["value"]["delta"], delta, "{}", g.name);
            let state = i32::from_le_bytes(value[12..16].try_into().unwrap());
            let names = [(0, "IDLE"), (1, "BUSY"), (7, "DONE")];
            match names.iter().find(|(v, _)| *v == state) {
                Some((_, n)) => assert_eq!(f["value"]["state"], *n),
                None => assert_eq!(f["value"]["state"], state),
            }
            // bpftool prints bitfields as hex strings.
            let unit = u32::from_le_bytes(value[16..20].try_into().unwrap());
            assert_eq!(f["value"]["flags"], format!("{:#x}", unit & 7));
            assert_eq!(f["value"]["level"], format!("{:#x}", (unit >> 3) & 31));
        }
    }
}

#[test]
fn reading_a_guest_that_rewrites_its_maps_never_crashes_or_hangs() {
    // While the guest's agent updates and deletes entries of its churn hash
    // from another CPU without pause, the host walks it in the live RAM file
    // for five seconds (tests/src/poke.rs). Every walk ends, quickly; a walk
    // the changing structure tripped up ends in an error that says so; values
    // torn by an update are counted by the test, since no reader can know.
    for g in guests() {
        let p = g
            .poke
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", g.name));
        let c = p
            .churn
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no churn read", g.name));
        eprintln!("{}: churn: {c:?}", g.name);
        assert!(c.walks >= 5, "{}: only {} walks in 5 s", g.name, c.walks);
        assert!(
            c.max_walk_ms < 3000,
            "{}: a walk took {} ms",
            g.name,
            c.max_walk_ms
        );
        assert!(
            c.complete >= 1,
            "{}: no walk completed: {:?}",
            g.name,
            c.errors
        );
        // The churn ran: walks saw keys it inserted.
        assert!(c.max_entries > 1000, "{}: the churn never showed", g.name);
        assert!(
            c.max_entries <= 4096 + 64,
            "{}: {} entries in one walk",
            g.name,
            c.max_entries
        );
        assert_eq!(c.foreign, 0, "{}", g.name);
        // An error names what broke, in the library's words.
        for e in &c.errors {
            assert!(
                e.starts_with(&format!(
                    "map {}: ",
                    g.manifest
                        .maps
                        .iter()
                        .find(|m| m.name == "churn")
                        .unwrap()
                        .id
                )),
                "{}: {e}",
                g.name
            );
        }
    }
}
