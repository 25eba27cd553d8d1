//! [`bpfmem::format`] against the real bpftool 7.1 on this host. Each test
//! loads BTF and creates maps with raw `bpf(2)` (tests/common), fills them,
//! runs `bpftool map dump`, and formats the same raw bytes (bpftool's own
//! `"key"`/`"value"` hex, or the bytes written) with [`MapTypes`]:
//!
//! - `-j`: each entry's `"formatted"` object equals [`MapTypes::format_entry`],
//!   and the whole output, rebuilt with [`JsonWriter`], is byte-identical;
//! - `-p`: the same, pretty;
//! - plain text: [`PlainDump`] of the same entries is byte-identical.
//!
//! Needs root and `bpftool` v7.1. Under `CI=true` (or `BPFMEM_REQUIRE_REAL=1`)
//! their absence fails; elsewhere the tests print `SKIPPED` and pass.
#![cfg(all(feature = "format", feature = "bpf-syscall"))]

mod common;
use common::*;

#[path = "../src/format/test_btf.rs"]
mod test_btf;

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;

use bpfmem::core::uapi::{MapCreateAttr, MapType, BPF_BTF_LOAD};
use bpfmem::format::{EntryValues, Formatted, JsonWriter, MapTypes, PlainDump};
use serde_json::Value;
use test_btf::{Btf, BOOL, CHAR, SIGNED};

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("BPFMEM_REQUIRE_REAL").is_ok_and(|v| v == "1")
}

/// `None` when the host cannot run these tests (and that is allowed here).
fn ready(test: &str) -> Option<()> {
    let why = match Command::new("bpftool").arg("version").output() {
        Err(e) => Some(format!(
            "bpftool is not installed ({e}): apt-get install bpftool"
        )),
        Ok(out) if !String::from_utf8_lossy(&out.stdout).starts_with("bpftool v7.1.") => {
            Some(format!(
                "these tests pin bpftool v7.1's output; this is {:?}",
                String::from_utf8_lossy(&out.stdout).lines().next()
            ))
        }
        Ok(_) => map_create(&MapCreateAttr {
            map_type: MapType::ARRAY.0,
            key_size: 4,
            value_size: 4,
            max_entries: 1,
            ..MapCreateAttr::default()
        })
        .err()
        .map(|e| format!("bpf(2) does not work here: {e}")),
    };
    match why {
        None => Some(()),
        Some(w) if required() => panic!("{test}: {w} (required under CI=true)"),
        Some(w) => {
            eprintln!("SKIPPED {test}: {w}");
            None
        }
    }
}

/// `BPF_BTF_LOAD`, with the verifier's log in the panic message.
fn load_btf(blob: &[u8]) -> OwnedFd {
    let mut log = vec![0u8; 1 << 16];
    let mut attr = BtfLoadAttr {
        btf: blob.as_ptr() as u64,
        btf_size: blob.len() as u32,
        btf_log_buf: log.as_mut_ptr() as u64,
        btf_log_size: log.len() as u32,
        btf_log_level: 1,
        ..BtfLoadAttr::default()
    };
    // SAFETY: the kernel reads `btf_size` bytes of `blob` and writes at most
    // `btf_log_size` bytes to `log`.
    match unsafe { sys_bpf(BPF_BTF_LOAD, &mut attr) } {
        Ok(fd) => owned(fd),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            panic!("BTF load: {e}\n{}", String::from_utf8_lossy(&log[..end]));
        }
    }
}

/// A map with BTF. Its BTF descriptor may close: the map holds the BTF.
fn create(
    t: MapType,
    btf: &OwnedFd,
    (key_size, key_id): (u32, u32),
    (value_size, value_id): (u32, u32),
    max_entries: u32,
    name: &str,
) -> TestMap {
    map_create(&MapCreateAttr {
        map_type: t.0,
        key_size,
        value_size,
        max_entries,
        map_name: name16(name),
        btf_fd: btf.as_raw_fd() as u32,
        btf_key_type_id: key_id,
        btf_value_type_id: value_id,
        ..MapCreateAttr::default()
    })
    .unwrap_or_else(|e| panic!("creating {t} map {name}: {e}"))
}

fn bpftool(args: &[&str]) -> String {
    let out = Command::new("bpftool")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("bpftool: {e}"));
    assert!(
        out.status.success(),
        "bpftool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("bpftool printed non-UTF-8")
}

/// One entry: the key, and the value or the per-CPU values.
struct Elem {
    key: Vec<u8>,
    values: Vec<Vec<u8>>,
}

fn unhex(v: &Value) -> Vec<u8> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a hex array: {v}"))
        .iter()
        .map(|b| {
            let s = b.as_str().unwrap();
            u8::from_str_radix(s.strip_prefix("0x").unwrap(), 16).unwrap()
        })
        .collect()
}

/// What `bpftool -j map dump` (`-p` if `pretty`) prints for these entries
/// (`print_entry_json()`, map.c, v6.1).
fn expected_json(t: &MapTypes, elems: &[Elem], percpu: bool, pretty: bool) -> String {
    let mut w = JsonWriter::new(pretty);
    w.start_array();
    for e in elems {
        w.start_object();
        w.name("key");
        w.hex_data(&e.key);
        if percpu {
            w.name("values");
            w.start_array();
            for (cpu, v) in (0u64..).zip(&e.values) {
                w.start_object();
                w.name("cpu");
                w.uint(cpu);
                w.name("value");
                w.hex_data(v);
                w.end_object();
            }
            w.end_array();
        } else {
            w.name("value");
            w.hex_data(&e.values[0]);
        }
        w.name("formatted");
        w.formatted(&entry(t, e, percpu), false);
        w.end_object();
    }
    w.end_array();
    w.finish()
}

fn entry(t: &MapTypes, e: &Elem, percpu: bool) -> Formatted {
    let slices: Vec<&[u8]> = e.values.iter().map(Vec::as_slice).collect();
    let v = if percpu {
        EntryValues::PerCpu(&slices)
    } else {
        EntryValues::One(slices[0])
    };
    t.entry(&e.key, v)
        .unwrap_or_else(|err| panic!("formatting {:02x?}: {err}", e.key))
}

/// Check one map against bpftool. `known`: its entries in bpftool's order,
/// for maps whose `-j` output is not JSON; otherwise they come from it.
fn check(map: &TestMap, t: &MapTypes, percpu: bool, known: Option<Vec<Elem>>) -> usize {
    let id = map.id.to_string();
    let json_text = bpftool(&["-j", "map", "dump", "id", &id]);
    let elems = match known {
        Some(k) => k,
        None => {
            let parsed: Value = serde_json::from_str(&json_text)
                .unwrap_or_else(|e| panic!("bpftool -j printed no JSON ({e}):\n{json_text}"));
            let mut elems = Vec::new();
            for item in parsed.as_array().expect("an array of entries") {
                let key = unhex(&item["key"]);
                let values = if percpu {
                    item["values"]
                        .as_array()
                        .expect("values")
                        .iter()
                        .map(|v| unhex(&v["value"]))
                        .collect()
                } else {
                    vec![unhex(&item["value"])]
                };
                let e = Elem { key, values };
                let ours = entry(t, &e, percpu).to_json().expect("JSON");
                assert_eq!(
                    ours, item["formatted"],
                    "map {id}, key {:02x?}: ours, then bpftool's",
                    e.key
                );
                elems.push(e);
            }
            elems
        }
    };
    assert_eq!(
        expected_json(t, &elems, percpu, false),
        json_text,
        "bpftool -j map dump id {id}: ours, then bpftool's"
    );
    assert_eq!(
        expected_json(t, &elems, percpu, true),
        bpftool(&["-p", "map", "dump", "id", &id]),
        "bpftool -p map dump id {id}: ours, then bpftool's"
    );
    let mut plain = PlainDump::new();
    for e in &elems {
        plain.push(&entry(t, e, percpu));
    }
    assert_eq!(
        plain.finish(),
        bpftool(&["map", "dump", "id", &id]),
        "bpftool map dump id {id}: ours, then bpftool's"
    );
    elems.len()
}

fn le<const N: usize>(parts: &[(usize, &[u8])]) -> Vec<u8> {
    let mut v = vec![0u8; N];
    for &(at, b) in parts {
        v[at..at + b.len()].copy_from_slice(b);
    }
    v
}

// ---------------------------------------------------------------------------

/// The test-bed agent's own BTF and typed hash map: struct keys, bitfields,
/// enum values with and without names, char arrays with and without a NUL.
#[test]
fn agent_hash_map() {
    let Some(()) = ready("agent_hash_map") else {
        return;
    };
    use bpfmem_guest_agent::btf::{blob, BK_SIZE, BK_TYPE_ID, BV_SIZE, BV_TYPE_ID};
    let blob = blob();
    let btf = load_btf(&blob);
    let map = create(
        MapType::HASH,
        &btf,
        (BK_SIZE, BK_TYPE_ID),
        (BV_SIZE, BV_TYPE_ID),
        8,
        "fmt_agent",
    );
    for (i, (state, flags_level, name)) in [
        (0u32, 0u8, *b"idle"),
        (1, 5 | 17 << 3, *b"ab\0\0"),
        (7, 0xff, *b"\0xyz"),
        (3, 0x80, *b"a\x80\0\0"),
        (0xffff_ffff, 1, *b"~ !\0"),
    ]
    .into_iter()
    .enumerate()
    {
        let i = i as u32;
        let key = le::<8>(&[
            (0, &(1000 + i).to_le_bytes()),
            (4, &(80u16 + i as u16).to_le_bytes()),
            (6, &[i as u8, 0xfe]),
        ]);
        let value = le::<24>(&[
            (0, &(u64::MAX - u64::from(i)).to_le_bytes()),
            (8, &(-(i as i32) * 1000).to_le_bytes()),
            (12, &state.to_le_bytes()),
            (16, &[flags_level]),
            (20, &name),
        ]);
        map.update(&key, &value);
    }
    let t = MapTypes::new(&blob, BK_TYPE_ID, BV_TYPE_ID).unwrap();
    assert_eq!(check(&map, &t, false, None), 5);
}

/// The ids [`kinds_btf`] hands out that the test needs.
struct Kinds {
    blob: Vec<u8>,
    u32_: u32,
    kinds: u32,
}

const KINDS_SIZE: u32 = 240;

/// One struct with a member of almost every kind bpftool prints as JSON.
fn kinds_btf() -> Kinds {
    let mut b = Btf::new();
    let u8_ = b.int("unsigned char", 1, 0);
    let s8 = b.int("signed char", 1, SIGNED);
    let u16_ = b.int("unsigned short", 2, 0);
    let s16 = b.int("short", 2, SIGNED);
    let u32_ = b.int("unsigned int", 4, 0);
    let s32 = b.int("int", 4, SIGNED);
    let u64_ = b.int("long long unsigned int", 8, 0);
    let s64 = b.int("long long int", 8, SIGNED);
    let u128_ = b.int("unsigned __int128", 16, 0);
    let s128 = b.int("__int128", 16, SIGNED);
    let ch = b.int("char", 1, SIGNED);
    let cc = b.int("cchar", 1, CHAR);
    let bl = b.int("_Bool", 1, BOOL);
    // Ints of odd widths and offsets, at an odd bit offset: only a struct
    // without kind_flag may hold them.
    let i24 = b.int_bits("i24", 4, 0, 24, 0);
    let i12 = b.int_bits("i12", 2, SIGNED, 12, 0);
    let ioff = b.int_bits("ioff", 4, 0, 8, 4);
    let i3 = b.int_bits("i3", 1, 0, 3, 0);
    let odd = b.strukt(
        "odd",
        12,
        &[
            ("i24", i24, 0, 0),
            ("i12", i12, 32, 0),
            ("ioff", ioff, 64, 0),
            ("ob", i3, 85, 0),
        ],
    );
    let e = b.enumeration("e", 4, false, &[("A", 0), ("B", -1), ("C", i32::MAX)]);
    let e1 = b.enumeration("e1", 1, false, &[("X", 1), ("Y", -2)]);
    let e2 = b.enumeration("e2", 2, true, &[("W", 300)]);
    let e8 = b.enumeration("e8", 8, false, &[("P", 5)]);
    let e64 = b.enum64("e64", 8, false, &[("Q", (1 << 63) + 5), ("R", 1)]);
    let e64s = b.enum64("e64s", 4, false, &[("S", 3)]);
    let a_char = b.array(ch, u32_, 4);
    let a_uchar = b.array(u8_, u32_, 4);
    let a_cc = b.array(cc, u32_, 4);
    let tch = b.typedef("mychar", ch);
    let a_td = b.array(tch, u32_, 4);
    let cch = b.konst(ch);
    let cvch = b.volatile(cch);
    let a_cv = b.array(cvch, u32_, 4);
    let a_empty = b.array(ch, u32_, 0);
    let row = b.array(s16, u32_, 3);
    let grid = b.array(row, u32_, 2);
    let bytes4 = b.array(u8_, u32_, 4);
    let un = b.union("un", 4, &[("x", u32_, 0, 0), ("y", bytes4, 0, 0)]);
    let anon = b.strukt("", 4, &[("p", u16_, 0, 0), ("q", u16_, 16, 0)]);
    let p = b.ptr(u32_);
    let vp = b.ptr(0);
    let opaque = b.fwd("opaque");
    let fp = b.ptr(opaque);
    let vol = b.volatile(u32_);
    let con = b.konst(vol);
    let td2 = b.typedef("td2", con);
    let td = b.typedef("td", td2);
    let rp = b.restrict(p);
    let s = b.array(ch, u32_, 8);
    let kinds = b.strukt(
        "kinds",
        KINDS_SIZE,
        &[
            ("u8", u8_, 0, 0),
            ("s8", s8, 8, 0),
            ("u16", u16_, 16, 0),
            ("s16", s16, 32, 0),
            ("b", bl, 48, 0),
            ("c", cc, 56, 0),
            ("u32", u32_, 64, 0),
            ("s32", s32, 96, 0),
            ("u64", u64_, 128, 0),
            ("s64", s64, 192, 0),
            ("u128", u128_, 256, 0),
            ("s128", s128, 384, 0),
            ("odd", odd, 512, 0),
            ("e", e, 608, 0),
            ("e1", e1, 640, 0),
            ("e2", e2, 656, 0),
            ("e64s", e64s, 672, 0),
            ("e8", e8, 704, 0),
            ("e64", e64, 768, 0),
            ("f3", u32_, 832, 3),
            ("f5", u32_, 835, 5),
            ("f13", u64_, 847, 13),
            ("f64", u64_, 896, 64),
            ("en", e, 960, 2),
            ("b128", u128_, 1024, 128),
            ("a_char", a_char, 1152, 0),
            ("a_uchar", a_uchar, 1184, 0),
            ("a_cc", a_cc, 1216, 0),
            ("a_td", a_td, 1248, 0),
            ("a_cv", a_cv, 1280, 0),
            ("a_empty", a_empty, 1312, 0),
            ("grid", grid, 1312, 0),
            ("un", un, 1408, 0),
            ("", anon, 1440, 0),
            ("", un, 1472, 0),
            ("p", p, 1536, 0),
            ("vp", vp, 1600, 0),
            ("fp", fp, 1664, 0),
            ("td", td, 1728, 0),
            ("rp", rp, 1792, 0),
            ("s", s, 1856, 0),
        ],
    );
    Kinds {
        blob: b.blob(),
        u32_,
        kinds,
    }
}

/// Values for [`kinds_btf`]'s struct: extremes, odd bits, names and no names.
fn kinds_values() -> Vec<Vec<u8>> {
    let a = le::<240>(&[
        (0, &[0xff, 0x80]),
        (2, &0xffffu16.to_le_bytes()),
        (4, &i16::MIN.to_le_bytes()),
        (6, &[2, b'a']),
        (8, &u32::MAX.to_le_bytes()),
        (12, &i32::MIN.to_le_bytes()),
        (16, &u64::MAX.to_le_bytes()),
        (24, &i64::MIN.to_le_bytes()),
        (32, &u128::MAX.to_le_bytes()),
        (48, &(-2i128).to_le_bytes()),
        (64, &[0x12, 0x34, 0x56, 0x78]),
        (68, &0x0fffu16.to_le_bytes()),
        (72, &0xabcu32.to_le_bytes()),
        (74, &[0xe0]),
        (76, &(-1i32).to_le_bytes()),
        (80, &[0xfe]),
        (82, &300u16.to_le_bytes()),
        (84, &3u32.to_le_bytes()),
        (88, &5u64.to_le_bytes()),
        (96, &((1u64 << 63) + 5).to_le_bytes()),
        (104, &[0xff, 0x7f, 0xa5, 0x5a, 0xff]),
        (112, &(u64::MAX - 1).to_le_bytes()),
        (120, &[1]),
        (
            128,
            &0x99aa_bbcc_ddee_ff00_1122_3344_5566_7788u128.to_le_bytes(),
        ),
        (144, b"ab\0x"),
        (148, b"gh\0\0"),
        (152, b"ef\0\0"),
        (156, b"ij\0\0"),
        (160, b"kl\0\0"),
        (164, &[1, 0, 0xfe, 0xff, 3, 0, 0xfc, 0xff, 5, 0, 0, 0x80]),
        (176, &[1, 2, 3, 4]),
        (180, &[7, 0, 0xff, 0xff]),
        (184, &[0xff]),
        (192, &0xffff_8888_1234_5678u64.to_le_bytes()),
        (200, &0x1000u64.to_le_bytes()),
        (208, &1u64.to_le_bytes()),
        (216, &9u32.to_le_bytes()),
        (232, b"a\\\"'z\0"),
    ]);
    // Unnamed enum values (ENUM64 of 4 bytes reads into e8), no NULs,
    // non-printable characters, an 0x80 byte in a string.
    let b = le::<240>(&[
        (6, &[0, 0xc8]),
        (76, &0x8000_0000u32.to_le_bytes()),
        (80, &[0x80]),
        (82, &0xffffu16.to_le_bytes()),
        (84, &3u32.to_le_bytes()),
        (88, &1u64.to_le_bytes()),
        (96, &((1u64 << 63) + 6).to_le_bytes()),
        (128, &1u128.to_le_bytes()),
        (144, b"abcd"),
        (148, b"a\x80\0\0"),
        (152, b"\tb\0\0"),
        (160, b" ~\0\0"),
        (232, b"12345678"),
    ]);
    let c = le::<240>(&[
        (6, &[0, 0x7f]),
        (32, &5u128.to_le_bytes()),
        (232, b"\x1f\0"),
    ]);
    vec![a, b, c]
}

#[test]
fn every_kind_array_map() {
    let Some(()) = ready("every_kind_array_map") else {
        return;
    };
    let k = kinds_btf();
    let btf = load_btf(&k.blob);
    let map = create(
        MapType::ARRAY,
        &btf,
        (4, k.u32_),
        (KINDS_SIZE, k.kinds),
        4,
        "fmt_kinds",
    );
    for (i, v) in (0u32..).zip(kinds_values()) {
        map.update(&i.to_le_bytes(), &v);
    }
    let t = MapTypes::new(&k.blob, k.u32_, k.kinds).unwrap();
    // Index 3 stays zero.
    assert_eq!(check(&map, &t, false, None), 4);
}

/// A global-data map as libbpf makes one: an ARRAY of one DATASEC value and
/// no key type.
#[test]
fn datasec_array_map() {
    let Some(()) = ready("datasec_array_map") else {
        return;
    };
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let ch = b.int("char", 1, SIGNED);
    let u64_ = b.int("long unsigned int", 8, 0);
    let s16 = b.int("short", 2, SIGNED);
    let arr = b.array(ch, u32_, 4);
    let pair = b.strukt("pair", 4, &[("lo", s16, 0, 0), ("hi", s16, 16, 0)]);
    let x = b.var("x", u32_);
    let y = b.var("y", arr);
    let z = b.var("z", u64_);
    let w = b.var("w", pair);
    let ds = b.datasec(".data", 28, &[(x, 0, 4), (y, 4, 4), (z, 16, 8), (w, 24, 4)]);
    let blob = b.blob();
    let btf = load_btf(&blob);
    let map = create(MapType::ARRAY, &btf, (4, 0), (28, ds), 1, ".data");
    let value = le::<28>(&[
        (0, &42u32.to_le_bytes()),
        (4, b"hi\0\0"),
        (16, &7u64.to_le_bytes()),
        (24, &(-1i16).to_le_bytes()),
        (26, &2i16.to_le_bytes()),
    ]);
    map.update(&0u32.to_le_bytes(), &value);
    let t = MapTypes::new(&blob, 0, ds).unwrap();
    assert_eq!(check(&map, &t, false, None), 1);
}

/// Per-CPU array and hash maps with a 12-byte value (16-byte stride in
/// bpftool's buffer; the ENUM64 at its end reads into the padding).
#[test]
fn percpu_maps() {
    let Some(()) = ready("percpu_maps") else {
        return;
    };
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let bl = b.int("_Bool", 1, BOOL);
    let s16 = b.int("short", 2, SIGNED);
    let e64s = b.enum64("e64s", 4, false, &[("S", 3)]);
    let pc = b.strukt(
        "pc",
        12,
        &[
            ("n", u32_, 0, 0),
            ("b", bl, 32, 0),
            ("w", s16, 48, 0),
            ("ee", e64s, 64, 0),
        ],
    );
    let blob = b.blob();
    let btf = load_btf(&blob);
    let t = MapTypes::new(&blob, u32_, pc).unwrap();
    let ncpus = possible_cpus().len();
    let per_cpu = |seed: u32| -> Vec<u8> {
        let mut v = Vec::new();
        for cpu in 0..ncpus as u32 {
            let x = seed * 100 + cpu;
            v.extend_from_slice(&le::<16>(&[
                (0, &x.to_le_bytes()),
                (4, &[(x % 3) as u8]),
                (6, &(-(x as i16)).to_le_bytes()),
                (8, &(x % 5).to_le_bytes()),
            ]));
        }
        v
    };
    let array = create(
        MapType::PERCPU_ARRAY,
        &btf,
        (4, u32_),
        (12, pc),
        3,
        "fmt_pcpu_a",
    );
    for i in 0..2u32 {
        array.update(&i.to_le_bytes(), &per_cpu(i + 1));
    }
    assert_eq!(check(&array, &t, true, None), 3);
    let hash = create(
        MapType::PERCPU_HASH,
        &btf,
        (4, u32_),
        (12, pc),
        8,
        "fmt_pcpu_h",
    );
    for i in [5u32, 6, 7] {
        hash.update(&i.to_le_bytes(), &per_cpu(i));
    }
    assert_eq!(check(&hash, &t, true, None), 3);
}

/// Where bpftool 7.1 prints no JSON: a `"` or `\` char, `(unsupported-kind`
/// for a FLOAT or a TYPE_TAG member (and nothing after it), and pointers
/// stepped by 4 bytes because the BTF's `long` is 4 bytes. Compared as text.
#[test]
fn odd_corners_print_like_bpftool() {
    let Some(()) = ready("odd_corners_print_like_bpftool") else {
        return;
    };
    let mut b = Btf::new();
    let _long = b.int("long", 4, SIGNED);
    let u32_ = b.int("unsigned int", 4, 0);
    let ch = b.int("char", 1, SIGNED);
    let cc = b.int("cchar", 1, CHAR);
    let p = b.ptr(u32_);
    let pa = b.array(p, u32_, 2);
    let s = b.array(ch, u32_, 6);
    let tag = b.type_tag("tg", u32_);
    let f32_ = b.float("float", 4);
    let odd1 = b.strukt(
        "odd1",
        32,
        &[
            ("pa", pa, 0, 0),
            ("q", cc, 128, 0),
            ("bs", cc, 136, 0),
            ("s", s, 144, 0),
            ("tt", tag, 192, 0),
            ("after", u32_, 224, 0),
        ],
    );
    let odd2 = b.strukt(
        "odd2",
        12,
        &[("a", u32_, 0, 0), ("f", f32_, 32, 0), ("b", u32_, 64, 0)],
    );
    let blob = b.blob();
    let btf = load_btf(&blob);

    let m1 = create(MapType::ARRAY, &btf, (4, u32_), (32, odd1), 2, "fmt_odd1");
    let v1 = le::<32>(&[
        (0, &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0]),
        (16, b"\"\\a\\b\0\0"),
        (24, &7u32.to_le_bytes()),
        (28, &8u32.to_le_bytes()),
    ]);
    m1.update(&0u32.to_le_bytes(), &v1);
    let known1 = vec![
        Elem {
            key: 0u32.to_le_bytes().to_vec(),
            values: vec![v1],
        },
        Elem {
            key: 1u32.to_le_bytes().to_vec(),
            values: vec![vec![0; 32]],
        },
    ];
    let t1 = MapTypes::new(&blob, u32_, odd1).unwrap();
    assert_eq!(check(&m1, &t1, false, Some(known1)), 2);

    let m2 = create(MapType::ARRAY, &btf, (4, u32_), (12, odd2), 2, "fmt_odd2");
    let v2 = le::<12>(&[(0, &5u32.to_le_bytes()), (4, &1.5f32.to_le_bytes())]);
    m2.update(&1u32.to_le_bytes(), &v2);
    let known2 = vec![
        Elem {
            key: 0u32.to_le_bytes().to_vec(),
            values: vec![vec![0; 12]],
        },
        Elem {
            key: 1u32.to_le_bytes().to_vec(),
            values: vec![v2],
        },
    ];
    let t2 = MapTypes::new(&blob, u32_, odd2).unwrap();
    assert_eq!(check(&m2, &t2, false, Some(known2)), 2);
}
