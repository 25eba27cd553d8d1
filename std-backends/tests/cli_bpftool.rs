//! The `bpfmem` command against Debian's `bpftool` on the host's live maps:
//! for the same maps, `bpfmem -j map show/dump` and `bpftool -j map show/dump`
//! must give equal JSON (entry order aside), and the plain output the same
//! lines. Scripts written for bpftool then work unchanged.
//!
//! Needs root and `bpftool` (./tests/run installs it). Under `CI=true` (or
//! `BPFMEM_REQUIRE_REAL=1`) their absence fails; elsewhere the tests print
//! `SKIPPED` and pass.

mod common;
use common::*;

use std::process::Command;

use bpfmem::core::uapi::{MapType, BPF_F_NO_PREALLOC};
use serde_json::Value;

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("BPFMEM_REQUIRE_REAL").is_ok_and(|v| v == "1")
}

/// `None` when the host cannot run these tests (and that is allowed here).
fn ready(test: &str) -> Option<()> {
    let why = if Command::new("bpftool").arg("version").output().is_err() {
        Some("bpftool is not installed (apt-get install bpftool)".to_string())
    } else {
        map_create(&bpfmem::core::uapi::MapCreateAttr {
            map_type: MapType::ARRAY.0,
            key_size: 4,
            value_size: 4,
            max_entries: 1,
            ..Default::default()
        })
        .err()
        .map(|e| format!("bpf(2) does not work here: {e}"))
    };
    match why {
        None => Some(()),
        Some(w) if required() => panic!("{test}: {w}"),
        Some(w) => {
            eprintln!("SKIPPED {test}: {w}");
            None
        }
    }
}

fn run(prog: &str, args: &[&str]) -> (String, bool) {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
    )
}

fn bpfmem(args: &[&str]) -> String {
    let (out, ok) = run(env!("CARGO_BIN_EXE_bpfmem"), args);
    assert!(ok, "bpfmem {args:?} failed");
    out
}

fn bpftool(args: &[&str]) -> String {
    let (out, ok) = run("bpftool", args);
    assert!(ok, "bpftool {args:?} failed");
    out
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A dump's elements, sorted by their "key", so order does not matter.
fn sorted(v: Value) -> Vec<Value> {
    let mut a = match v {
        Value::Array(a) => a,
        other => panic!("not an array: {other}"),
    };
    a.sort_by_key(|e| e["key"].to_string());
    a
}

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (seed.wrapping_mul(2654435761).wrapping_add(i * 37) >> 7) as u8)
        .collect()
}

/// Maps of every kind the command dumps, filled; kept open while compared.
fn make_maps() -> Vec<TestMap> {
    let ncpu = possible_cpus().len();
    let mut maps = Vec::new();
    let arr = create(MapType::ARRAY, 4, 20, 8, 0, "cli_arr");
    for k in 0..8u32 {
        arr.update(&k.to_le_bytes(), &pattern(k, 20));
    }
    maps.push(arr);
    let small = create(MapType::ARRAY, 4, 8, 4, 0, "cli_small");
    for k in 0..4u32 {
        small.update(&k.to_le_bytes(), &pattern(k + 100, 8));
    }
    maps.push(small);
    let pcpu = create(MapType::PERCPU_ARRAY, 4, 12, 4, 0, "cli_pcpu_arr");
    for k in 0..4u32 {
        let v: Vec<u8> = (0..ncpu)
            .flat_map(|c| {
                let mut x = pattern(k * 10 + c as u32, 12);
                x.resize(16, 0);
                x
            })
            .collect();
        pcpu.update(&k.to_le_bytes(), &v);
    }
    maps.push(pcpu);
    for (t, flags, name, ksz, vsz) in [
        (MapType::HASH, 0, "cli_hash", 12, 20),
        (MapType::HASH, BPF_F_NO_PREALLOC, "cli_hash_np", 8, 4),
        (MapType::LRU_HASH, 0, "cli_lru", 4, 8),
    ] {
        let m = create(t, ksz, vsz, 64, flags, name);
        for i in 0..40u32 {
            m.update(
                &pattern(i + 7, ksz as usize),
                &pattern(i + 500, vsz as usize),
            );
        }
        maps.push(m);
    }
    for (t, name, ksz) in [
        (MapType::PERCPU_HASH, "cli_pcpu_hash", 4),
        (MapType::LRU_PERCPU_HASH, "cli_lru_pcpu", 8),
    ] {
        let m = create(t, ksz, 12, 64, 0, name);
        for i in 0..20u32 {
            let v: Vec<u8> = (0..ncpu)
                .flat_map(|c| {
                    let mut x = pattern(i * 31 + c as u32, 12);
                    x.resize(16, 0);
                    x
                })
                .collect();
            m.update(&pattern(i + 900, ksz as usize), &v);
        }
        maps.push(m);
    }
    maps.push(create(MapType::HASH, 4, 4, 8, 0, "cli_empty"));
    maps
}

#[test]
fn map_show_and_dump_give_bpftools_json() {
    if ready("map_show_and_dump_give_bpftools_json").is_none() {
        return;
    }
    let maps = make_maps();
    for m in &maps {
        let id = m.id.to_string();
        let ours = json(&bpfmem(&["-j", "map", "show", "id", &id]));
        let theirs = json(&bpftool(&["-j", "map", "show", "id", &id]));
        assert_eq!(ours, theirs, "map show id {id}");
        let ours = sorted(json(&bpfmem(&["-j", "map", "dump", "id", &id])));
        let theirs = sorted(json(&bpftool(&["-j", "map", "dump", "id", &id])));
        assert_eq!(ours.len(), theirs.len(), "map dump id {id}: entries");
        assert_eq!(ours, theirs, "map dump id {id}");
    }
    // The whole list, restricted to these maps (other tests' maps come and go).
    let ids: Vec<u64> = maps.iter().map(|m| u64::from(m.id)).collect();
    let pick = |v: Value| -> Vec<Value> {
        let mut a: Vec<Value> = match v {
            Value::Array(a) => a,
            other => panic!("not an array: {other}"),
        };
        a.retain(|m| ids.contains(&m["id"].as_u64().unwrap_or(0)));
        a.sort_by_key(|m| m["id"].as_u64());
        a
    };
    assert_eq!(
        pick(json(&bpfmem(&["-j", "map", "show"]))),
        pick(json(&bpftool(&["-j", "map", "show"])))
    );
}

#[test]
fn plain_output_has_bpftools_lines() {
    if ready("plain_output_has_bpftools_lines").is_none() {
        return;
    }
    let maps = make_maps();
    for m in &maps {
        let id = m.id.to_string();
        assert_eq!(
            bpfmem(&["map", "show", "id", &id]),
            bpftool(&["map", "show", "id", &id]),
            "map show id {id}"
        );
        // Entries print in walk order; compare them as sorted blocks.
        let blocks = |text: String| {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let last = lines.pop();
            let mut blocks: Vec<String> = Vec::new();
            for l in lines {
                if l.starts_with("key:") || blocks.is_empty() {
                    blocks.push(l);
                } else if let Some(b) = blocks.last_mut() {
                    b.push('\n');
                    b.push_str(&l);
                }
            }
            blocks.sort();
            (blocks, last)
        };
        assert_eq!(
            blocks(bpfmem(&["map", "dump", "id", &id])),
            blocks(bpftool(&["map", "dump", "id", &id])),
            "map dump id {id}"
        );
    }
}

#[test]
fn lookup_gives_bpftools_entry() {
    if ready("lookup_gives_bpftools_entry").is_none() {
        return;
    }
    let maps = make_maps();
    let arr = &maps[0];
    let id = arr.id.to_string();
    for args in [
        vec!["map", "lookup", "id", &id, "key", "3", "0", "0", "0"],
        vec![
            "map", "lookup", "id", &id, "key", "hex", "03", "00", "00", "00",
        ],
        vec!["map", "lookup", "id", &id, "key", "0x03", "0", "0", "00"],
    ] {
        let mut j = vec!["-j"];
        j.extend(&args);
        assert_eq!(json(&bpfmem(&j)), json(&bpftool(&j)), "{args:?}");
        assert_eq!(bpfmem(&args), bpftool(&args), "{args:?}");
    }
    let hash = &maps[3];
    let key: Vec<String> = pattern(7 + 5, 12).iter().map(|b| b.to_string()).collect();
    let hid = hash.id.to_string();
    let mut args = vec!["-j", "map", "lookup", "id", &hid, "key"];
    args.extend(key.iter().map(String::as_str));
    assert_eq!(json(&bpfmem(&args)), json(&bpftool(&args)));
}

#[test]
fn maps_with_btf_give_bpftools_formatted_values() {
    if ready("maps_with_btf_give_bpftools_formatted_values").is_none() {
        return;
    }
    use bpfmem_guest_agent::btf::{blob, BK_SIZE, BK_TYPE_ID, BV_SIZE, BV_TYPE_ID};
    let btf = btf_load(&blob());
    use std::os::fd::AsRawFd;
    let m = map_create(&bpfmem::core::uapi::MapCreateAttr {
        map_type: MapType::HASH.0,
        key_size: BK_SIZE,
        value_size: BV_SIZE,
        max_entries: 32,
        map_name: name16("cli_btf"),
        btf_fd: btf.as_raw_fd() as u32,
        btf_key_type_id: BK_TYPE_ID,
        btf_value_type_id: BV_TYPE_ID,
        ..Default::default()
    })
    .expect("BTF hash");
    for i in 0..10u32 {
        let mut v = pattern(i + 40, BV_SIZE as usize);
        v[20..24].copy_from_slice(b"ab\0\0");
        m.update(&pattern(i + 3, BK_SIZE as usize), &v);
    }
    let id = m.id.to_string();
    assert_eq!(
        json(&bpfmem(&["-j", "map", "show", "id", &id])),
        json(&bpftool(&["-j", "map", "show", "id", &id]))
    );
    let ours = sorted(json(&bpfmem(&["-j", "map", "dump", "id", &id])));
    assert!(
        ours.iter().all(|e| e.get("formatted").is_some()),
        "{ours:?}"
    );
    assert_eq!(
        ours,
        sorted(json(&bpftool(&["-j", "map", "dump", "id", &id])))
    );
    // Plain: bpftool prints the formatted entries as a pretty JSON-like array
    // (bitfields as bare hex, so not JSON); entry order aside, same lines.
    let plain = |text: String| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    assert_eq!(
        plain(bpfmem(&["map", "dump", "id", &id])),
        plain(bpftool(&["map", "dump", "id", &id]))
    );
    let key: Vec<String> = pattern(3 + 3, BK_SIZE as usize)
        .iter()
        .map(|b| b.to_string())
        .collect();
    let mut args = vec!["map", "lookup", "id", &id, "key"];
    args.extend(key.iter().map(String::as_str));
    assert_eq!(bpfmem(&args), bpftool(&args));
    let mut j = vec!["-j"];
    j.extend(&args);
    assert_eq!(json(&bpfmem(&j)), json(&bpftool(&j)));
}
