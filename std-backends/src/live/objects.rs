//! Programs and BTF objects of the running kernel: [`BpfObjectAccessor`] for
//! [`LiveBpf`].
//!
//! Unlike maps, which [`LiveBpf::open`] holds, these are listed afresh on every
//! call: the id walk (`BPF_PROG_GET_NEXT_ID`, `BPF_BTF_GET_NEXT_ID`), then per
//! id a descriptor (`BPF_*_GET_FD_BY_ID`) held only for its
//! `BPF_OBJ_GET_INFO_BY_FD`. An object freed between the two is skipped, as
//! bpftool does. Programs report no address: [`ProgInfo::kva`] is 0.

use std::os::fd::AsFd;

use bpfmem_core::bpf_prog::{ProgInfo, ProgType, MAX_USED_MAPS};
use bpfmem_core::uapi::{BpfProgInfo, BPF_BTF_GET_NEXT_ID, BPF_PROG_GET_NEXT_ID};
use bpfmem_core::Kva;

use super::sys;
use super::{LiveBpf, LiveError, Op};
use crate::access::AccessError;
use crate::objects::{BpfObjectAccessor, BtfInfo, ObjectKind};

/// Objects listed at most per call: far above any real kernel, and every id
/// costs two system calls.
pub const MAX_OBJECTS: usize = 1 << 20;

/// The longest BTF name read (`MODULE_NAME_LEN` is 56 on 64-bit kernels).
const MAX_BTF_NAME: u32 = 4096;

/// An error of `op` on object `id` of `kind`. Missing privileges concern the
/// whole walk: they become [`AccessError::Live`] with no id.
fn obj_err(kind: ObjectKind, op: Op, id: u32) -> impl Fn(i32) -> AccessError {
    move |errno| match LiveError::from_errno(op, 0, errno) {
        e @ LiveError::Permission { .. } => AccessError::Live(e),
        error => AccessError::ObjectLive { kind, id, error },
    }
}

fn malformed(kind: ObjectKind, id: u32, what: &'static str) -> AccessError {
    AccessError::ObjectLive {
        kind,
        id,
        error: LiveError::Malformed { what, id: 0 },
    }
}

/// Walk ids with `next_id` (`Ok(None)` at the end) and `open` each
/// (`Ok(None)`: it vanished). Ids must ascend, so the walk ends.
fn walk<T>(
    kind: ObjectKind,
    mut next_id: impl FnMut(u32) -> Result<Option<u32>, AccessError>,
    mut open: impl FnMut(u32) -> Result<Option<T>, AccessError>,
) -> Result<Vec<T>, AccessError> {
    let mut out = Vec::new();
    let mut id = 0u32;
    while let Some(next) = next_id(id)? {
        if next <= id {
            return Err(malformed(
                kind,
                next,
                "id order (GET_NEXT_ID did not ascend)",
            ));
        }
        if out.len() >= MAX_OBJECTS {
            return Err(AccessError::ObjectLive {
                kind,
                id: 0,
                error: LiveError::Limit {
                    what: "number of objects",
                    id: 0,
                    limit: MAX_OBJECTS as u64,
                },
            });
        }
        if let Some(t) = open(next)? {
            out.push(t);
        }
        id = next;
    }
    Ok(out)
}

/// `bpf_prog_info` as a [`ProgInfo`], with the first `nr_map_ids` of `map_ids`.
pub fn prog_info_from_uapi(
    info: &BpfProgInfo,
    map_ids: &[u32; MAX_USED_MAPS],
) -> Result<ProgInfo, AccessError> {
    let kind = ObjectKind::Prog;
    let n = usize::try_from(info.nr_map_ids).unwrap_or(usize::MAX);
    if n > MAX_USED_MAPS {
        return Err(AccessError::ObjectLive {
            kind,
            id: info.id,
            error: LiveError::Limit {
                what: "maps used by one program (nr_map_ids)",
                id: 0,
                limit: MAX_USED_MAPS as u64,
            },
        });
    }
    let mut ids = [0u32; MAX_USED_MAPS];
    if let (Some(dst), Some(src)) = (ids.get_mut(..n), map_ids.get(..n)) {
        dst.copy_from_slice(src);
    }
    Ok(ProgInfo {
        id: info.id,
        prog_type: ProgType(info.r#type),
        name: info.name,
        tag: info.tag,
        load_time: info.load_time,
        jited_len: info.jited_prog_len,
        xlated_len: info.xlated_prog_len,
        btf_id: info.btf_id,
        nr_map_ids: info.nr_map_ids,
        map_ids: ids,
        kva: Kva(0),
    })
}

fn open_prog(id: u32) -> Result<Option<ProgInfo>, AccessError> {
    let kind = ObjectKind::Prog;
    let fd = match sys::prog_get_fd_by_id(id) {
        Ok(fd) => fd,
        Err(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(obj_err(kind, Op::ProgGetFdById, id)(e)),
    };
    let mut map_ids = [0u32; MAX_USED_MAPS];
    let info =
        sys::prog_info(fd.as_fd(), &mut map_ids).map_err(obj_err(kind, Op::ObjGetInfoByFd, id))?;
    if info.id != id {
        return Err(malformed(kind, id, "program id (bpf_prog_info of another)"));
    }
    prog_info_from_uapi(&info, &map_ids).map(Some)
}

fn open_btf(id: u32) -> Result<Option<BtfInfo>, AccessError> {
    let kind = ObjectKind::Btf;
    let fd = match sys::btf_get_fd_by_id(id) {
        Ok(fd) => fd,
        Err(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(obj_err(kind, Op::BtfGetFdById, id)(e)),
    };
    let info_err = obj_err(kind, Op::ObjGetInfoByFd, id);
    // The name's length first, then the name: BTF objects never change.
    let sizes = sys::btf_info(fd.as_fd(), &mut [], &mut []).map_err(&info_err)?;
    if sizes.name_len > MAX_BTF_NAME {
        return Err(AccessError::ObjectLive {
            kind,
            id,
            error: LiveError::Limit {
                what: "BTF name length",
                id: 0,
                limit: MAX_BTF_NAME.into(),
            },
        });
    }
    let mut name = vec![0u8; sizes.name_len as usize + 1];
    let info = sys::btf_info(fd.as_fd(), &mut [], &mut name).map_err(&info_err)?;
    if info.id != id || info.name_len != sizes.name_len {
        return Err(malformed(
            kind,
            id,
            "BTF id or name (changed between two reads)",
        ));
    }
    name.truncate(info.name_len as usize);
    Ok(Some(BtfInfo {
        id,
        name: String::from_utf8_lossy(&name).into_owned(),
        size: info.btf_size,
        kernel_btf: info.kernel_btf != 0,
    }))
}

impl BpfObjectAccessor for LiveBpf {
    fn list_progs(&self) -> Result<Vec<ProgInfo>, AccessError> {
        let kind = ObjectKind::Prog;
        let next_id = |start| {
            sys::obj_get_next_id(BPF_PROG_GET_NEXT_ID, start).map_err(obj_err(
                kind,
                Op::ProgGetNextId,
                0,
            ))
        };
        walk(kind, next_id, open_prog)
    }

    fn list_btfs(&self) -> Result<Vec<BtfInfo>, AccessError> {
        let kind = ObjectKind::Btf;
        let next_id = |start| {
            sys::obj_get_next_id(BPF_BTF_GET_NEXT_ID, start).map_err(obj_err(
                kind,
                Op::BtfGetNextId,
                0,
            ))
        };
        walk(kind, next_id, open_btf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vanished_objects_are_skipped_and_ids_must_ascend() {
        let ids = [2u32, 5, 9];
        let next = |id: u32| Ok(ids.iter().copied().find(|&i| i > id));
        let got = walk(ObjectKind::Prog, next, |id| Ok((id != 5).then_some(id))).unwrap();
        assert_eq!(got, vec![2, 9]);
        let stuck = |id: u32| Ok(Some(if id == 3 { 3 } else { id + 3 }));
        let e = walk(ObjectKind::Btf, stuck, |id| Ok(Some(id))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "BTF object 3: the kernel reported unusable id order (GET_NEXT_ID did not ascend)"
        );
    }

    #[test]
    fn errors_name_the_object_and_permission_stays_global() {
        let e = obj_err(ObjectKind::Prog, Op::ProgGetFdById, 7)(libc::EINVAL);
        assert_eq!(
            e.to_string(),
            "program 7: BPF_PROG_GET_FD_BY_ID failed: EINVAL (Invalid argument (os error 22))"
        );
        let e = obj_err(ObjectKind::Btf, Op::BtfGetNextId, 0)(libc::EFAULT);
        assert!(e
            .to_string()
            .starts_with("listing BTF objects: BPF_BTF_GET_NEXT_ID failed"));
        let e = obj_err(ObjectKind::Prog, Op::ProgGetNextId, 0)(libc::EPERM);
        assert!(matches!(
            e,
            AccessError::Live(LiveError::Permission {
                op: Op::ProgGetNextId,
                ..
            })
        ));
        assert!(e.to_string().contains("CAP_BPF and CAP_SYS_ADMIN"), "{e}");
    }

    #[test]
    fn prog_info_keeps_every_field_and_refuses_too_many_maps() {
        let mut u = BpfProgInfo {
            r#type: 1,
            id: 12,
            tag: [1, 2, 3, 4, 5, 6, 7, 8],
            jited_prog_len: 77,
            xlated_prog_len: 64,
            load_time: 123_456_789,
            nr_map_ids: 2,
            btf_id: 4,
            ..BpfProgInfo::default()
        };
        u.name[..4].copy_from_slice(b"live");
        let mut ids = [0u32; MAX_USED_MAPS];
        ids[..3].copy_from_slice(&[5, 6, 99]);
        let p = prog_info_from_uapi(&u, &ids).unwrap();
        assert_eq!(
            (p.id, p.prog_type, p.name()),
            (12, ProgType::SOCKET_FILTER, "live")
        );
        assert_eq!(
            (p.jited_len, p.xlated_len, p.load_time),
            (77, 64, 123_456_789)
        );
        assert_eq!((p.btf_id, p.map_ids(), p.kva), (4, &[5, 6][..], Kva(0)));
        assert_eq!(p.tag, [1, 2, 3, 4, 5, 6, 7, 8]);
        u.nr_map_ids = 65;
        let e = prog_info_from_uapi(&u, &ids).unwrap_err();
        assert_eq!(
            e.to_string(),
            "program 12: maps used by one program (nr_map_ids) exceeds the limit of 64"
        );
    }
}
