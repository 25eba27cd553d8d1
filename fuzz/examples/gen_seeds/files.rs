//! ELF core and kcore files, VMCOREINFO text.

/// One ELF note, padded.
pub fn note(name: &[u8], ty: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&ty.to_le_bytes());
    n.extend_from_slice(name);
    n.push(0);
    while n.len() % 4 != 0 {
        n.push(0);
    }
    n.extend_from_slice(desc);
    while n.len() % 4 != 0 {
        n.push(0);
    }
    n
}

/// A `PT_LOAD`: physical and virtual address, bytes in the file, and how
/// many more the segment claims (`p_memsz - p_filesz`).
pub struct Load {
    pub paddr: u64,
    pub vaddr: u64,
    pub data: Vec<u8>,
    pub extra: u64,
}

/// An x86-64 `ET_CORE` file: one `PT_NOTE`, then the loads.
pub fn core(notes: &[u8], loads: &[Load]) -> Vec<u8> {
    let phnum = 1 + loads.len();
    let mut f = vec![0u8; 64];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&4u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    let notes_at = 64 + 56 * phnum as u64;
    let mut data_at = notes_at + notes.len() as u64;
    let phdr = |ty: u32, off: u64, vaddr: u64, paddr: u64, filesz: u64, memsz: u64| {
        let mut p = vec![0u8; 56];
        p[0..4].copy_from_slice(&ty.to_le_bytes());
        p[4..8].copy_from_slice(&7u32.to_le_bytes());
        p[8..16].copy_from_slice(&off.to_le_bytes());
        p[16..24].copy_from_slice(&vaddr.to_le_bytes());
        p[24..32].copy_from_slice(&paddr.to_le_bytes());
        p[32..40].copy_from_slice(&filesz.to_le_bytes());
        p[40..48].copy_from_slice(&memsz.to_le_bytes());
        p
    };
    f.extend(phdr(
        4,
        notes_at,
        0,
        0,
        notes.len() as u64,
        notes.len() as u64,
    ));
    for l in loads {
        let n = l.data.len() as u64;
        f.extend(phdr(1, data_at, l.vaddr, l.paddr, n, n + l.extra));
        data_at += n;
    }
    f.extend_from_slice(notes);
    for l in loads {
        f.extend_from_slice(&l.data);
    }
    f
}

/// A VMCOREINFO text with the keys discovery reads.
pub fn vmcoreinfo(
    release: &str,
    l5: bool,
    kernel_offset: u64,
    phys_base: i64,
    syms: &[(&str, u64)],
) -> String {
    vmcoreinfo_text(
        release,
        l5,
        kernel_offset,
        phys_base,
        0xffff_ffff_8360_c000u64.wrapping_add(kernel_offset),
        syms,
    )
}

/// [`vmcoreinfo`] with `init_top_pgt` at `pgt`.
pub fn vmcoreinfo_text(
    release: &str,
    l5: bool,
    kernel_offset: u64,
    phys_base: i64,
    pgt: u64,
    syms: &[(&str, u64)],
) -> String {
    let mut t = format!(
        "OSRELEASE={release}\nBUILD-ID=0123456789abcdef0123456789abcdef01234567\nPAGESIZE=4096\n"
    );
    t += &format!("SYMBOL(init_top_pgt)={pgt:x}\n");
    t += &format!("SYMBOL(swapper_pg_dir)={pgt:x}\n");
    t += "SYMBOL(_stext)=ffffffff81000000\nSIZE(page)=64\nOFFSET(page.flags)=0\nLENGTH(mem_section)=2048\n";
    for (name, v) in syms {
        t += &format!("SYMBOL({name})={v:x}\n");
    }
    t += &format!("NUMBER(phys_base)={phys_base}\n");
    t += &format!("NUMBER(pgtable_l5_enabled)={}\n", u8::from(l5));
    t += &format!("KERNELOFFSET={kernel_offset:x}\nCRASHTIME=1700000000\n");
    t
}
