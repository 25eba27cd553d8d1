//! Programs and BTF objects: the agent loads one program of its own, so that
//! `prog_idr` is never empty, and reports every program and BTF object
//! `bpf(2)` lists.

use std::os::fd::{AsRawFd, OwnedFd};

use bpfmem_core::uapi::{BPF_BTF_GET_NEXT_ID, BPF_PROG_GET_NEXT_ID};
use bpfmem_guest_agent::manifest::{BtfObjectManifest, Hex, MapManifest, ProgManifest, AGENT_PROG};
use bpfmem_guest_agent::plan;

use crate::bpf::{self, BpfInsn};
use crate::maps::Created;
use crate::sys::errno_text;

/// Stop walking ids after this many objects.
const MAX_OBJECTS: usize = 1 << 16;
/// `MAX_USED_MAPS` (include/linux/bpf_verifier.h): room for every map id a
/// program loaded through the verifier can have.
const MAX_USED_MAPS: usize = 64;
/// Name buffer for `bpf_btf_info::name` (`MODULE_NAME_LEN` is 56).
const BTF_NAME_BUF: usize = 64;
/// `BPF_PROG_TYPE_SOCKET_FILTER`.
const SOCKET_FILTER: u32 = 1;
/// `BPF_PSEUDO_MAP_FD`: the `src_reg` of a `BPF_LD_IMM64` whose immediate is
/// a map fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `BPF_FUNC_map_lookup_elem`.
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;

/// The agent's program: a socket filter that looks up key 0 in the map
/// behind `map_fd` and returns 0.
///
/// ```text
/// r1 = map_fd ll            ; BPF_LD_IMM64, BPF_PSEUDO_MAP_FD: used_maps gets the map
/// *(u32 *)(r10 - 4) = 0     ; the key, on the stack
/// r2 = r10
/// r2 += -4                  ; r2 = &key
/// call bpf_map_lookup_elem
/// r0 = 0
/// exit
/// ```
pub fn agent_prog(map_fd: i32) -> [BpfInsn; 8] {
    [
        BpfInsn::new(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd), // BPF_LD | BPF_DW | BPF_IMM
        BpfInsn::new(0, 0, 0, 0, 0),
        BpfInsn::new(0x62, 10, 0, -4, 0), // BPF_ST | BPF_MEM | BPF_W
        BpfInsn::new(0xbf, 2, 10, 0, 0),  // BPF_ALU64 | BPF_MOV | BPF_X
        BpfInsn::new(0x07, 2, 0, 0, -4),  // BPF_ALU64 | BPF_ADD | BPF_K
        BpfInsn::new(0x85, 0, 0, 0, BPF_FUNC_MAP_LOOKUP_ELEM), // BPF_JMP | BPF_CALL
        BpfInsn::new(0xb7, 0, 0, 0, 0),   // BPF_ALU64 | BPF_MOV | BPF_K
        BpfInsn::new(0x95, 0, 0, 0, 0),   // BPF_JMP | BPF_EXIT
    ]
}

/// Load [`agent_prog`] over the map `arr` the agent made. The program lives
/// as long as the returned descriptor; `None` (and a note) if it could not be
/// loaded.
pub fn load_agent_prog(created: &[Created], notes: &mut Vec<String>) -> Option<OwnedFd> {
    let Some(arr) = created
        .iter()
        .find(|c| plan::MAPS.get(c.index as usize).map(|m| m.name) == Some("arr"))
    else {
        notes.push(format!("{AGENT_PROG}: not loaded: no map arr"));
        return None;
    };
    let insns = agent_prog(arr.fd().as_raw_fd());
    match bpf::prog_load(SOCKET_FILTER, &insns, AGENT_PROG) {
        Ok(fd) => Some(fd),
        Err(e) => {
            let log = if e.log.is_empty() { "(empty)" } else { &e.log };
            notes.push(format!(
                "{AGENT_PROG}: BPF_PROG_LOAD: {}; log: {log}",
                errno_text(&e.error)
            ));
            None
        }
    }
}

/// The C string in a NUL-padded name field.
fn name_of(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// Walk ids with `cmd` (`BPF_*_GET_NEXT_ID`) and describe each with `one`
/// (`Ok(None)`: freed since it was listed). Failures become notes.
fn walk<T>(
    cmd: u32,
    what: &str,
    notes: &mut Vec<String>,
    mut one: impl FnMut(u32) -> Result<Option<T>, String>,
) -> Vec<T> {
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        if out.len() >= MAX_OBJECTS {
            notes.push(format!("stopped after {MAX_OBJECTS} {what}s"));
            break;
        }
        let id = match bpf::obj_get_next_id(cmd, start) {
            Ok(Some(id)) => id,
            Ok(None) => break,
            Err(e) => {
                notes.push(format!(
                    "{what}s: GET_NEXT_ID after {start}: {}",
                    errno_text(&e)
                ));
                break;
            }
        };
        start = id;
        match one(id) {
            Ok(Some(t)) => out.push(t),
            Ok(None) => {}
            Err(e) => notes.push(format!("{what} {id}: {e}")),
        }
    }
    out
}

fn is_enoent(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

/// Every program `BPF_PROG_GET_NEXT_ID` lists, by ascending id.
pub fn dump_progs(notes: &mut Vec<String>) -> Vec<ProgManifest> {
    walk(BPF_PROG_GET_NEXT_ID, "program", notes, |id| {
        let fd = match bpf::prog_get_fd_by_id(id) {
            Ok(fd) => fd,
            Err(e) if is_enoent(&e) => return Ok(None),
            Err(e) => return Err(format!("BPF_PROG_GET_FD_BY_ID: {}", errno_text(&e))),
        };
        let mut map_ids = [0u32; MAX_USED_MAPS];
        let info = bpf::prog_info(&fd, &mut map_ids)
            .map_err(|e| format!("BPF_OBJ_GET_INFO_BY_FD: {}", errno_text(&e)))?;
        let n = info.nr_map_ids as usize;
        if n > MAX_USED_MAPS {
            return Err(format!("{n} maps, more than the {MAX_USED_MAPS} copied"));
        }
        Ok(Some(ProgManifest {
            id: info.id,
            prog_type: info.r#type,
            name: name_of(&info.name),
            tag: Hex(info.tag.to_vec()),
            load_time: info.load_time,
            jited_len: info.jited_prog_len,
            xlated_len: info.xlated_prog_len,
            btf_id: info.btf_id,
            map_ids: map_ids[..n].to_vec(),
        }))
    })
}

/// Every BTF object `BPF_BTF_GET_NEXT_ID` lists, by ascending id.
pub fn dump_btf_objects(notes: &mut Vec<String>) -> Vec<BtfObjectManifest> {
    walk(BPF_BTF_GET_NEXT_ID, "BTF object", notes, |id| {
        let fd = match bpf::btf_get_fd_by_id(id) {
            Ok(fd) => fd,
            Err(e) if is_enoent(&e) => return Ok(None),
            Err(e) => return Err(format!("BPF_BTF_GET_FD_BY_ID: {}", errno_text(&e))),
        };
        let mut name = [0u8; BTF_NAME_BUF];
        let info = bpf::btf_info(&fd, &mut [], &mut name)
            .map_err(|e| format!("BPF_OBJ_GET_INFO_BY_FD: {}", errno_text(&e)))?;
        Ok(Some(BtfObjectManifest {
            id: info.id,
            name: name_of(&name),
            size: info.btf_size,
            kernel_btf: info.kernel_btf != 0,
        }))
    })
}

/// What should hold of the agent's program and the BTF objects, if the
/// program was loaded: one line per disagreement.
pub fn check(
    loaded: bool,
    maps: &[MapManifest],
    progs: &[ProgManifest],
    btfs: &[BtfObjectManifest],
) -> Vec<String> {
    let mut problems = Vec::new();
    if !loaded {
        problems.push(format!("{AGENT_PROG}: not loaded (see its note)"));
        return problems;
    }
    let arr = maps.iter().find(|m| m.name == "arr").map(|m| m.id);
    match progs.iter().find(|p| p.name == AGENT_PROG) {
        None => problems.push(format!("{AGENT_PROG}: not listed")),
        Some(p) => {
            if p.prog_type != SOCKET_FILTER {
                problems.push(format!("{AGENT_PROG}: type {}", p.prog_type));
            }
            if arr.is_none() || p.map_ids != arr.into_iter().collect::<Vec<_>>() {
                problems.push(format!(
                    "{AGENT_PROG}: map ids {:?}, arr is {arr:?}",
                    p.map_ids
                ));
            }
            if p.xlated_len == 0 || p.xlated_len % 8 != 0 || p.load_time == 0 {
                problems.push(format!(
                    "{AGENT_PROG}: xlated_len {}, load_time {}",
                    p.xlated_len, p.load_time
                ));
            }
        }
    }
    // Loading a program needs vmlinux BTF (bpf_get_btf_vmlinux()), which
    // then has an id.
    if !btfs.iter().any(|b| b.name == "vmlinux" && b.kernel_btf) {
        problems.push("no vmlinux BTF object listed".to_string());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_encoding() {
        let p = agent_prog(7);
        assert_eq!((p[0].code, p[0].regs, p[0].imm), (0x18, 0x11, 7));
        // *(u32 *)(r10 - 4) = 0: dst r10, off -4.
        assert_eq!((p[2].regs, p[2].off), (10, -4));
        // r2 = r10: dst 2, src 10.
        assert_eq!(p[3].regs, 0xa2);
        assert_eq!((p[5].code, p[5].imm), (0x85, 1));
        assert_eq!(p[7].code, 0x95);
    }

    fn prog(map_ids: Vec<u32>) -> ProgManifest {
        ProgManifest {
            id: 4,
            prog_type: SOCKET_FILTER,
            name: AGENT_PROG.into(),
            tag: Hex(vec![0; 8]),
            load_time: 1,
            jited_len: 50,
            xlated_len: 80,
            btf_id: 0,
            map_ids,
        }
    }

    #[test]
    fn checks() {
        let maps: Vec<MapManifest> = serde_json::from_str(
            r#"[{"id":3,"name":"arr","map_type":2,"type_name":"array","key_size":4,
            "value_size":8,"max_entries":1,"map_flags":0,"map_extra":0,"btf_id":0,
            "btf_key_type_id":0,"btf_value_type_id":0,"entries":[],"arena_pages":[]}]"#,
        )
        .unwrap();
        let vmlinux = vec![BtfObjectManifest {
            id: 1,
            name: "vmlinux".into(),
            size: 10,
            kernel_btf: true,
        }];
        assert_eq!(
            check(true, &maps, &[prog(vec![3])], &vmlinux),
            Vec::<String>::new()
        );
        assert_eq!(check(true, &maps, &[prog(vec![3, 4])], &vmlinux).len(), 1);
        assert_eq!(check(true, &maps, &[], &[]).len(), 2);
        assert_eq!(check(false, &maps, &[], &[]).len(), 1);
    }
}
