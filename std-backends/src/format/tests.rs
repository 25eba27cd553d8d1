//! Unit tests on hand-built BTF. Expected texts are what bpftool 7.1 printed
//! for the same BTF and bytes on a v6.18 host (tests/format_bpftool.rs checks
//! the same rules against the binary itself).

use serde_json::json;

use super::test_btf::{Btf, BOOL, CHAR, SIGNED};
use super::*;

/// `v` as bpftool -j writes it (compact, not plain text).
fn json_text(f: &Formatted) -> String {
    let mut w = JsonWriter::new(false);
    w.formatted(f, false);
    w.take()
}

/// `v` as plain-text bpftool writes it, at depth 0.
fn plain_text(f: &Formatted) -> String {
    let mut w = JsonWriter::new(true);
    w.formatted(f, true);
    w.take()
}

/// Bytes `len` long with `parts` copied in at their offsets.
fn bytes(len: usize, parts: &[(usize, &[u8])]) -> Vec<u8> {
    let mut v = vec![0u8; len];
    for &(at, b) in parts {
        v[at..at + b.len()].copy_from_slice(b);
    }
    v
}

fn types(b: &Btf, key: u32, value: u32) -> MapTypes {
    MapTypes::new(&b.blob(), key, value).unwrap()
}

// ---------------------------------------------------------------------------
// Every type kind.

#[test]
fn agent_blob_key_and_value() {
    use bpfmem_guest_agent::btf::{blob, BK_TYPE_ID, BV_TYPE_ID};
    let t = MapTypes::new(&blob(), BK_TYPE_ID, BV_TYPE_ID).unwrap();
    let key = bytes(
        8,
        &[
            (0, &1234u32.to_le_bytes()),
            (4, &80u16.to_le_bytes()),
            (6, &[1, 2]),
        ],
    );
    // flags:3 = 5 and level:5 = 17 share byte 16: 5 | 17 << 3.
    let value = bytes(
        24,
        &[
            (0, &5u64.to_le_bytes()),
            (8, &(-3i32).to_le_bytes()),
            (12, &7u32.to_le_bytes()),
            (16, &[5 | 17 << 3]),
            (20, b"ab\0\0"),
        ],
    );
    assert_eq!(
        t.format_key(&key).unwrap(),
        json!({"pid": 1234, "port": 80, "tag": [1, 2]})
    );
    let v = t.value(&value).unwrap();
    assert_eq!(
        json_text(&v),
        r#"{"count":5,"delta":-3,"state":"DONE","flags":"0x5","level":"0x11","name":"ab"}"#
    );
    // An enum value without a name, a name without a NUL.
    let value2 = bytes(24, &[(12, &3u32.to_le_bytes()), (20, b"abcd")]);
    assert_eq!(
        t.format_value(&value2).unwrap(),
        json!({"count": 0, "delta": 0, "state": 3, "flags": "0x0", "level": "0x0",
               "name": [97, 98, 99, 100]})
    );
    let entry = t.entry(&key, EntryValues::One(&value)).unwrap();
    assert_eq!(
        plain_lookup(&entry),
        "{\n    \"key\": {\n        \"pid\": 1234,\n        \"port\": 80,\n        \
         \"tag\": [1,2\n        ]\n    },\n    \"value\": {\n        \"count\": 5,\n        \
         \"delta\": -3,\n        \"state\": \"DONE\",\n        \"flags\": 0x5,\n        \
         \"level\": 0x11,\n        \"name\": \"ab\"\n    }\n}\n"
    );
}

#[test]
fn ints_of_every_width() {
    let mut b = Btf::new();
    let u8_ = b.int("unsigned char", 1, 0);
    let s8 = b.int("signed char", 1, SIGNED);
    let u16_ = b.int("unsigned short", 2, 0);
    let s16 = b.int("short", 2, SIGNED);
    let u32_ = b.int("unsigned int", 4, 0);
    let s32 = b.int("int", 4, SIGNED);
    let u64_ = b.int("long long unsigned int", 8, 0);
    let s64 = b.int("long long int", 8, SIGNED);
    let s128 = b.int("__int128", 16, SIGNED);
    let i24 = b.int_bits("i24", 4, 0, 24, 0);
    let i12 = b.int_bits("i12", 2, SIGNED, 12, 0);
    let ioff = b.int_bits("ioff", 4, 0, 8, 4);
    let i3 = b.int_bits("i3", 1, 0, 3, 0);
    // No kind_flag: the old way of describing bitfields, with odd ints.
    let v = b.strukt(
        "v",
        64,
        &[
            ("u8", u8_, 0, 0),
            ("s8", s8, 8, 0),
            ("u16", u16_, 16, 0),
            ("s16", s16, 32, 0),
            ("u32", u32_, 64, 0),
            ("s32", s32, 96, 0),
            ("u64", u64_, 128, 0),
            ("s64", s64, 192, 0),
            ("s128", s128, 256, 0),
            ("i24", i24, 384, 0),
            ("i12", i12, 416, 0),
            ("ioff", ioff, 448, 0),
            ("ob", i3, 485, 0),
        ],
    );
    let t = types(&b, 0, v);
    let data = bytes(
        64,
        &[
            (0, &[0xff]),
            (1, &[0x80]),
            (2, &0xffffu16.to_le_bytes()),
            (4, &i16::MIN.to_le_bytes()),
            (8, &u32::MAX.to_le_bytes()),
            (12, &i32::MIN.to_le_bytes()),
            (16, &u64::MAX.to_le_bytes()),
            (24, &i64::MIN.to_le_bytes()),
            (32, &(-2i128).to_le_bytes()),
            (48, &[0x12, 0x34, 0x56, 0x78]),
            (52, &0x0fffu16.to_le_bytes()),
            (56, &0xabcu32.to_le_bytes()),
            (60, &[0xe0]),
        ],
    );
    let f = t.value(&data).unwrap();
    assert_eq!(
        json_text(&f),
        r#"{"u8":255,"s8":-128,"u16":65535,"s16":-32768,"u32":4294967295,"s32":-2147483648,"#
            .to_owned()
            + r#""u64":18446744073709551615,"s64":-9223372036854775808,"#
            + r#""s128":"0xfffffffffffffffffffffffffffffffe","i24":"0x563412","i12":"0xfff","#
            + r#""ioff":"0xab","ob":"0x7"}"#
    );
    // A 128-bit int whose high half is 0 prints the low half alone.
    let small = bytes(64, &[(32, &5u128.to_le_bytes())]);
    assert_eq!(t.format_value(&small).unwrap()["s128"], json!("0x5"));
    assert!(plain_text(&t.value(&small).unwrap()).contains("\"s128\": 0x5,"));
}

#[test]
fn char_ints_and_bools() {
    let mut b = Btf::new();
    let c = b.int("char", 1, CHAR);
    let bl = b.int("_Bool", 1, BOOL);
    let v = b.strukt(
        "v",
        8,
        &[
            ("a", c, 0, 0),
            ("e", c, 8, 0),
            ("q", c, 16, 0),
            ("z", c, 24, 0),
            ("b0", bl, 32, 0),
            ("b1", bl, 40, 0),
            ("b2", bl, 48, 0),
        ],
    );
    let t = types(&b, 0, v);
    // bool b0 is 0 with non-zero bytes after it: v6.1 reads one byte.
    let data = [b'a', 0xc8, b'"', 0, 0, 2, 0x80, 0];
    let f = t.value(&data).unwrap();
    assert_eq!(
        json_text(&f),
        r#"{"a":"a","e":"\u00c8","q":""","z":"\u0000","b0":false,"b1":true,"b2":true}"#
    );
    assert_eq!(
        plain_text(&f),
        "{\n    \"a\": \"a\",\n    \"e\": 0xc8,\n    \"q\": \"\"\",\n    \"z\": 0x0,\n    \
         \"b0\": false,\n    \"b1\": true,\n    \"b2\": true\n}"
    );
    assert_eq!(
        f.to_json().unwrap(),
        json!({"a": "a", "e": "\u{c8}", "q": "\"", "z": "\u{0}", "b0": false, "b1": true, "b2": true})
    );
}

#[test]
fn char_arrays_follow_is_str_array() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let ch = b.int("char", 1, SIGNED);
    let uch = b.int("char", 1, 0);
    let cc = b.int("cchar", 1, CHAR);
    let u8_ = b.int("unsigned char", 1, 0);
    let tch = b.typedef("mychar", ch);
    let cvch = b.konst(ch);
    let cvch = b.volatile(cvch);
    let arrays = [ch, uch, cc, u8_, tch, cvch].map(|e| b.array(e, u32_, 4));
    let empty = b.array(ch, u32_, 0);
    let long = b.array(ch, u32_, 8);
    let names = ["a1", "a2", "a3", "a4", "a5", "a6"];
    let mut ms: Vec<(&str, u32, u32, u32)> = names
        .iter()
        .zip(arrays)
        .zip(0u32..)
        .map(|((n, a), i)| (*n, a, i * 32, 0))
        .collect();
    ms.push(("a0", empty, 192, 0));
    ms.push(("s", long, 192, 0));
    let v = b.strukt("v", 32, &ms);
    let t = types(&b, 0, v);

    let data = bytes(
        32,
        &[
            (0, b"ab\0x"),
            (4, b"cd\0\0"),
            (8, b"ef\0\0"),
            (12, b"gh\0\0"),
            (16, b"ij\0\0"),
            (20, b"kl\0\0"),
            (24, b"a\\\"'z\0"),
        ],
    );
    let f = t.value(&data).unwrap();
    // char, "char" without a sign, BTF_INT_CHAR and const volatile char are
    // strings; unsigned char and a typedef of char are not.
    assert_eq!(
        json_text(&f),
        r#"{"a1":"ab","a2":"cd","a3":"ef","a4":[103,104,0,0],"a5":[105,106,0,0],"a6":"kl","a0":[],"s":"a\n\"'z"}"#
    );
    // bpftool 7.1 writes a backslash as \n: a JSON parser reads a newline.
    assert_eq!(f.to_json().unwrap()["s"], json!("a\n\"'z"));
    assert!(plain_text(&f).contains("\"a4\": [103,104,0,0\n    ],\n    \"a5\""));
    assert!(plain_text(&f).contains("\"a0\": [],"));

    // No NUL, a byte from 0x80, a control character: arrays of numbers,
    // signed for char, and characters for BTF_INT_CHAR.
    let data = bytes(
        32,
        &[
            (0, b"abcd"),
            (4, b"a\x80\0\0"),
            (8, b"\tb\0\0"),
            (20, b" ~\0\0"),
        ],
    );
    let f = t.format_value(&data).unwrap();
    assert_eq!(f["a1"], json!([97, 98, 99, 100]));
    assert_eq!(f["a2"], json!([97, 128, 0, 0]));
    assert_eq!(f["a3"], json!(["\t", "b", "\u{0}", "\u{0}"]));
    assert_eq!(f["a6"], json!(" ~"));
    assert_eq!(f["s"], json!(""));
    let f = t.value(&data).unwrap();
    assert!(json_text(&f).contains(r#""a3":["\u0009","b","\u0000","\u0000"]"#));
    assert!(plain_text(&f).contains("\"a3\": [0x9,\"b\",0x0,0x0\n    ],"));
}

#[test]
fn enums_named_or_signed() {
    let mut b = Btf::new();
    let e = b.enumeration("e", 4, false, &[("A", 0), ("B", -1), ("C", i32::MAX)]);
    let e1 = b.enumeration("e1", 1, false, &[("X", 1), ("Y", -2)]);
    let e2 = b.enumeration("e2", 2, true, &[("W", 300)]);
    let e8 = b.enumeration("e8", 8, false, &[("P", 5)]);
    let e64 = b.enum64("e64", 8, false, &[("Q", (1 << 63) + 5), ("R", 1)]);
    let e64s = b.enum64("e64s", 4, false, &[("S", 3)]);
    let v = b.strukt(
        "v",
        32,
        &[
            ("e", e, 0, 0),
            ("e1", e1, 32, 0),
            ("e2", e2, 48, 0),
            ("e8", e8, 64, 0),
            ("e64", e64, 128, 0),
            ("e64s", e64s, 192, 0),
        ],
    );
    let t = types(&b, 0, v);
    let named = bytes(
        32,
        &[
            (0, &(-1i32).to_le_bytes()),
            (4, &[0xfe]),
            (6, &300u16.to_le_bytes()),
            (8, &5u64.to_le_bytes()),
            (16, &((1u64 << 63) + 5).to_le_bytes()),
            (24, &3u32.to_le_bytes()),
        ],
    );
    assert_eq!(
        t.format_value(&named).unwrap(),
        json!({"e": "B", "e1": "Y", "e2": "W", "e8": "P", "e64": "Q", "e64s": "S"})
    );
    // Unnamed values print signed; ENUM64 reads 8 bytes whatever its size.
    let unnamed = bytes(
        32,
        &[
            (0, &0x8000_0000u32.to_le_bytes()),
            (4, &[0x80]),
            (6, &0xffffu16.to_le_bytes()),
            (8, &(-7i64).to_le_bytes()),
            (16, &((1u64 << 63) + 6).to_le_bytes()),
            (24, &[3, 0, 0, 0, 1, 0, 0, 0]),
        ],
    );
    assert_eq!(
        json_text(&t.value(&unnamed).unwrap()),
        r#"{"e":-2147483648,"e1":-128,"e2":-1,"e8":-7,"e64":-9223372036854775802,"e64s":4294967299}"#
    );
    // An ENUM64 of 4 bytes at the very end: the bytes past the data read as 0.
    let t = types(&b, 0, e64s);
    assert_eq!(t.format_value(&3u32.to_le_bytes()).unwrap(), json!("S"));
    assert!(matches!(
        t.value(&[3, 0]),
        Err(FormatError::DataTooShort { .. })
    ));
}

#[test]
fn bitfields_at_odd_offsets() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let u64_ = b.int("long unsigned int", 8, 0);
    let u128_ = b.int("unsigned __int128", 16, 0);
    let e = b.enumeration("e", 4, false, &[("A", 1)]);
    let v = b.strukt(
        "v",
        48,
        &[
            ("f3", u32_, 24, 3),
            ("f5", u32_, 27, 5),
            ("f13", u64_, 39, 13),
            ("f64", u64_, 64, 64),
            ("en", e, 128, 2),
            ("b128", u128_, 256, 128),
        ],
    );
    let t = types(&b, 0, v);
    let data = bytes(
        48,
        &[
            (3, &[0xff, 0x7f, 0xa5, 0x5a]),
            (8, &(u64::MAX - 1).to_le_bytes()),
            (16, &[1]),
            (
                32,
                &0x99aa_bbcc_ddee_ff00_1122_3344_5566_7788u128.to_le_bytes(),
            ),
        ],
    );
    // A 128-bit bitfield: btf_int128_shift() shifts by 64 - 0, a shift by 0
    // on x86, and ORs the halves into each other.
    assert_eq!(
        json_text(&t.value(&data).unwrap()),
        r#"{"f3":"0x7","f5":"0x1f","f13":"0x154a","f64":"0xfffffffffffffffe","en":"0x1","b128":"0x99aabbccddeeff8899aabbccddeeff88"}"#
    );
    let one = bytes(48, &[(32, &1u128.to_le_bytes())]);
    assert_eq!(
        t.format_value(&one).unwrap()["b128"],
        json!("0x10000000000000001")
    );
    assert!(plain_text(&t.value(&one).unwrap()).contains("\"b128\": 0x10000000000000001\n"));
}

#[test]
fn structs_unions_and_anonymous_members() {
    let mut b = Btf::new();
    let u8_ = b.int("unsigned char", 1, 0);
    let u16_ = b.int("unsigned short", 2, 0);
    let u32_ = b.int("unsigned int", 4, 0);
    let bytes4 = b.array(u8_, u32_, 4);
    let u = b.union("u", 4, &[("x", u32_, 0, 0), ("y", bytes4, 0, 0)]);
    let anon = b.strukt("", 4, &[("p", u16_, 0, 0), ("q", u16_, 16, 0)]);
    let v = b.strukt(
        "v",
        12,
        &[("u", u, 0, 0), ("", anon, 32, 0), ("", u, 64, 0)],
    );
    let t = types(&b, 0, v);
    let data = bytes(
        12,
        &[(0, &[1, 2, 3, 4]), (4, &[7, 0, 0xff, 0xff]), (8, &[0xff])],
    );
    let f = t.value(&data).unwrap();
    // Both anonymous members are printed; a parser keeps the last.
    assert_eq!(
        json_text(&f),
        r#"{"u":{"x":67305985,"y":[1,2,3,4]},"":{"p":7,"q":65535},"":{"x":255,"y":[255,0,0,0]}}"#
    );
    assert_eq!(
        f.to_json().unwrap(),
        json!({"u": {"x": 67305985, "y": [1, 2, 3, 4]}, "": {"x": 255, "y": [255, 0, 0, 0]}})
    );
}

#[test]
fn multi_dimensional_arrays() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let s16 = b.int("short", 2, SIGNED);
    let row = b.array(s16, u32_, 3);
    let grid = b.array(row, u32_, 2);
    let t = types(&b, 0, grid);
    let data: Vec<u8> = [1i16, -2, 3, -4, 5, i16::MIN]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f = t.value(&data).unwrap();
    assert_eq!(json_text(&f), "[[1,-2,3],[-4,5,-32768]]");
    assert_eq!(plain_text(&f), "[[1,-2,3\n    ],[-4,5,-32768\n    ]\n]");
}

#[test]
fn pointers() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let p = b.ptr(u32_);
    let vp = b.ptr(0);
    let opaque = b.fwd("opaque");
    let fp = b.ptr(opaque);
    let v = b.strukt(
        "v",
        24,
        &[("p", p, 0, 0), ("vp", vp, 64, 0), ("fp", fp, 128, 0)],
    );
    let t = types(&b, 0, v);
    let data = bytes(
        24,
        &[
            (0, &0xffff_8888_1234_5678u64.to_le_bytes()),
            (8, &0x1000u64.to_le_bytes()),
        ],
    );
    let f = t.value(&data).unwrap();
    assert_eq!(
        json_text(&f),
        r#"{"p":18446612716735190648,"vp":4096,"fp":0}"#
    );
    assert_eq!(
        plain_text(&f),
        "{\n    \"p\": 0xffff888812345678,\n    \"vp\": 0x1000,\n    \"fp\": (nil)\n}"
    );
}

/// libbpf takes the pointer size from an int named like `long`: with a 4-byte
/// `long`, arrays of pointers step by 4 bytes while each pointer still reads
/// 8 (the last one past the data reads zeros there).
#[test]
fn pointer_size_from_a_4_byte_long() {
    let mut b = Btf::new();
    let long = b.int("long", 4, SIGNED);
    let p = b.ptr(long);
    let pair = b.array(p, long, 2);
    let t = types(&b, 0, pair);
    let data = bytes(8, &[(0, &1u32.to_le_bytes()), (4, &2u32.to_le_bytes())]);
    assert_eq!(t.format_value(&data).unwrap(), json!([(2u64 << 32) | 1, 2]));
}

#[test]
fn modifier_chains_and_type_tags() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let vol = b.volatile(u32_);
    let con = b.konst(vol);
    let td2 = b.typedef("td2", con);
    let td = b.typedef("td", td2);
    let p = b.ptr(u32_);
    let rp = b.restrict(p);
    let tag = b.type_tag("user", u32_);
    let tdtag = b.typedef("tdtag", tag);
    let v = b.strukt(
        "v",
        24,
        &[
            ("td", td, 0, 0),
            ("rp", rp, 64, 0),
            ("tdtag", tdtag, 128, 0),
            ("tag", tag, 160, 0),
        ],
    );
    let t = types(&b, 0, v);
    let data = bytes(24, &[(0, &9u32.to_le_bytes()), (16, &3u32.to_le_bytes())]);
    let f = t.value(&data).unwrap();
    // A typedef resolves through the type tag; a type tag met directly is
    // `(unsupported-kind`, which ends the struct.
    assert_eq!(
        json_text(&f),
        r#"{"td":9,"rp":0,"tdtag":3,"tag":(unsupported-kind}"#
    );
    assert!(matches!(
        t.format_value(&data),
        Err(FormatError::NotJson {
            kind: "type_tag",
            ..
        })
    ));
    assert_eq!(
        f.marker(),
        Some(Marker {
            type_id: tag,
            kind: test_btf::TYPE_TAG
        })
    );
}

#[test]
fn float_stops_the_dump_like_bpftool() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let f32_ = b.float("float", 4);
    let v = b.strukt(
        "v",
        12,
        &[("a", u32_, 0, 0), ("f", f32_, 32, 0), ("b", u32_, 64, 0)],
    );
    let t = types(&b, u32_, v);
    let data = bytes(12, &[(0, &5u32.to_le_bytes()), (8, &6u32.to_le_bytes())]);
    let entry = t.entry(&[0; 4], EntryValues::One(&data)).unwrap();
    assert_eq!(
        json_text(&entry),
        r#"{"key":0,"value":{"a":5,"f":(unsupported-kind}}"#
    );
    assert_eq!(
        plain_lookup(&entry),
        "{\n    \"key\": 0,\n    \"value\": {\n        \"a\": 5,\n        \
         \"f\": (unsupported-kind\n    }\n}\n"
    );
    assert!(matches!(
        t.format_entry(&[0; 4], EntryValues::One(&data)),
        Err(FormatError::NotJson { kind: "float", .. })
    ));
    // A key that stops leaves the value out; a CPU that stops ends the list.
    let t = types(&b, v, u32_);
    assert_eq!(
        json_text(&t.entry(&data, EntryValues::One(&[1, 0, 0, 0])).unwrap()),
        r#"{"key":{"a":5,"f":(unsupported-kind}}"#
    );
    let t = types(&b, u32_, v);
    let per_cpu: [&[u8]; 2] = [&data, &data];
    assert_eq!(
        json_text(&t.entry(&[0; 4], EntryValues::PerCpu(&per_cpu)).unwrap()),
        r#"{"key":0,"values":[{"cpu":0,"value":{"a":5,"f":(unsupported-kind}}]}"#
    );
}

#[test]
fn void_and_fwd_markers() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let opaque = b.fwd("opaque");
    let v = b.strukt(
        "v",
        8,
        &[
            ("v", 0, 0, 0),
            ("a", u32_, 0, 0),
            ("o", opaque, 32, 0),
            ("b", u32_, 32, 0),
        ],
    );
    let t = types(&b, 0, v);
    // `(unknown)` goes on, `(fwd-kind-invalid)` stops.
    assert_eq!(
        json_text(&t.value(&[1, 0, 0, 0, 2, 0, 0, 0]).unwrap()),
        r#"{"v":(unknown),"a":1,"o":(fwd-kind-invalid)}"#
    );
}

#[test]
fn datasec_values() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let ch = b.int("char", 1, SIGNED);
    let u64_ = b.int("unsigned long", 8, 0);
    let arr = b.array(ch, u32_, 4);
    let x = b.var("x", u32_);
    let y = b.var("y", arr);
    let z = b.var("z", u64_);
    let ds = b.datasec(".data", 24, &[(x, 0, 4), (y, 4, 4), (z, 16, 8)]);
    let t = types(&b, 0, ds);
    assert!(!t.has_key());
    let data = bytes(24, &[(0, &42u32.to_le_bytes()), (4, b"hi\0\0"), (16, &[7])]);
    let entry = t.entry(&[0; 4], EntryValues::One(&data)).unwrap();
    assert_eq!(
        entry.to_json().unwrap(),
        json!({"value": {".data": [{"x": 42}, {"y": "hi"}, {"z": 7}]}})
    );
    let mut dump = PlainDump::new();
    dump.push(&entry);
    assert_eq!(
        dump.finish(),
        "[{\n        \"value\": {\n            \".data\": [{\n                    \"x\": 42\n                \
         },{\n                    \"y\": \"hi\"\n                },{\n                    \"z\": 7\n                \
         }\n            ]\n        }\n    }\n]\n"
    );
}

#[test]
fn percpu_entries() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let bl = b.int("_Bool", 1, BOOL);
    let pc = b.strukt("pc", 5, &[("n", u32_, 0, 0), ("b", bl, 32, 0)]);
    let t = types(&b, u32_, pc);
    let cpu0 = [11, 0, 0, 0, 1];
    let cpu1 = [22, 0, 0, 0, 0];
    let per_cpu: [&[u8]; 2] = [&cpu0, &cpu1];
    let entry = t
        .entry(&[1, 0, 0, 0], EntryValues::PerCpu(&per_cpu))
        .unwrap();
    assert_eq!(
        t.format_entry(&[1, 0, 0, 0], EntryValues::PerCpu(&per_cpu))
            .unwrap(),
        json!({"key": 1, "values": [{"cpu": 0, "value": {"n": 11, "b": true}},
                                    {"cpu": 1, "value": {"n": 22, "b": false}}]})
    );
    let mut dump = PlainDump::new();
    assert_eq!(dump.take(), "[");
    dump.push(&entry);
    dump.push(&entry);
    let mut text = String::from("[");
    text += &dump.take();
    text += &dump.finish();
    let one = "{\n        \"key\": 1,\n        \"values\": [{\n                \"cpu\": 0,\n                \
               \"value\": {\n                    \"n\": 11,\n                    \"b\": true\n                \
               }\n            },{\n                \"cpu\": 1,\n                \"value\": {\n                    \
               \"n\": 22,\n                    \"b\": false\n                }\n            }\n        ]\n    }";
    assert_eq!(text, format!("[{one},{one}\n]\n"));
}

#[test]
fn json_writer_matches_bpftool_layouts() {
    assert_eq!(PlainDump::new().finish(), "[]\n");
    let mut w = JsonWriter::new(false);
    w.start_array();
    w.start_object();
    w.name("key");
    w.hex_data(&[3, 0]);
    w.name("formatted");
    w.start_object();
    w.end_object();
    w.end_object();
    w.end_array();
    assert_eq!(
        w.finish(),
        "[{\"key\":[\"0x03\",\"0x00\"],\"formatted\":{}}]\n"
    );
    // bpftool -p: what `map dump` printed for a u32 -> u32 hash map.
    let mut w = JsonWriter::new(true);
    w.start_array();
    w.start_object();
    w.name("key");
    w.hex_data(&[3, 0, 0, 0]);
    w.name("formatted");
    w.start_object();
    w.name("key");
    w.uint(3);
    w.end_object();
    w.end_object();
    w.end_array();
    assert_eq!(
        w.finish(),
        "[{\n        \"key\": [\"0x03\",\"0x00\",\"0x00\",\"0x00\"\n        ],\n        \
         \"formatted\": {\n            \"key\": 3\n        }\n    }\n]\n"
    );
    let mut w = JsonWriter::new(false);
    w.string("t\tn\nr\rf\u{c}b\u{8}q\"s\\a'");
    assert_eq!(w.take(), r#""t\tn\nr\rf\fb\bq\"s\na'""#);
}

// ---------------------------------------------------------------------------
// Hostile BTF and data: errors, never panics.

/// A blob with one of almost everything, and a value for it.
fn rich() -> (Vec<u8>, u32, u32, Vec<u8>) {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let ch = b.int("char", 1, SIGNED);
    let name = b.array(ch, u32_, 4);
    let e = b.enumeration("e", 4, false, &[("A", 1)]);
    let e64 = b.enum64("e64", 8, false, &[("B", 2)]);
    let p = b.ptr(u32_);
    let td = b.typedef("td", u32_);
    let u = b.union("u", 4, &[("x", u32_, 0, 0), ("n", name, 0, 0)]);
    let v = b.strukt(
        "v",
        40,
        &[
            ("a", td, 0, 0),
            ("f", u32_, 32, 3),
            ("n", name, 64, 0),
            ("e", e, 96, 0),
            ("e64", e64, 128, 0),
            ("p", p, 192, 0),
            ("u", u, 256, 0),
        ],
    );
    let value = (0u8..40).map(|i| i.wrapping_mul(37)).collect();
    (b.blob(), u32_, v, value)
}

#[test]
fn truncated_blobs_are_errors() {
    let (blob, k, v, value) = rich();
    assert!(MapTypes::new(&blob, k, v).unwrap().value(&value).is_ok());
    for n in 0..blob.len() {
        assert!(MapTypes::new(&blob[..n], k, v).is_err(), "{n}-byte prefix");
    }
}

/// Random corruptions of the blob, formatted with random data: whatever
/// happens, no panic (a panic fails this test).
#[test]
fn corrupted_blobs_never_panic() {
    let (good, k, v, value) = rich();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut parsed, mut formatted) = (0, 0);
    for i in 0..20_000 {
        let mut blob = good.clone();
        for _ in 0..1 + i % 3 {
            let at = (next() as usize) % blob.len();
            blob[at] = next() as u8;
        }
        let Ok(t) = MapTypes::new(&blob, k, v) else {
            continue;
        };
        parsed += 1;
        let len = (next() as usize) % 48;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        for d in [&value[..], &data[..]] {
            if let Ok(f) = t.value(d) {
                formatted += 1;
                let _ = f.to_json();
                let mut w = JsonWriter::new(true);
                w.formatted(&f, true);
            }
            let _ = t.key(d);
        }
    }
    assert!(parsed > 1000 && formatted > 1000, "{parsed} {formatted}");
}

#[test]
fn typedef_cycle_is_an_error() {
    let mut b = Btf::new();
    let td = b.typedef("loop", 1);
    let t = types(&b, 0, td);
    assert!(matches!(
        t.value(&[0; 4]),
        Err(FormatError::Limit {
            what: "typedef and qualifier links",
            limit: 32
        })
    ));
}

#[test]
fn array_of_itself_is_an_error() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let a = b.array(2, u32_, 1);
    let t = types(&b, 0, a);
    assert!(matches!(
        t.value(&[0; 64]),
        Err(FormatError::Malformed { type_id: 2, .. })
    ));
}

#[test]
fn struct_containing_itself_hits_the_depth_limit() {
    let mut b = Btf::new();
    let s = b.strukt("s", 4, &[("s", 1, 0, 0)]);
    let t = types(&b, 0, s);
    assert!(matches!(
        t.value(&[0; 4]),
        Err(FormatError::Limit {
            what: "nesting depth",
            ..
        })
    ));
}

#[test]
fn deep_nesting_is_an_error() {
    let mut b = Btf::new();
    let mut inner = b.int("unsigned int", 4, 0);
    for _ in 0..100 {
        inner = b.strukt("s", 4, &[("s", inner, 0, 0)]);
    }
    let t = types(&b, 0, inner);
    assert!(matches!(
        t.value(&[0; 4]),
        Err(FormatError::Limit {
            what: "nesting depth",
            limit: 64
        })
    ));
    // 60 levels are fine.
    let t = MapTypes::new(&b.blob(), 0, 61).unwrap();
    assert!(t.value(&[0; 4]).is_ok());
}

/// Unions of two copies of the level below, 40 levels deep: 2^40 leaves in
/// four bytes.
#[test]
fn union_dag_hits_the_node_budget() {
    let mut b = Btf::new();
    let mut inner = b.int("unsigned int", 4, 0);
    for _ in 0..40 {
        inner = b.union("u", 4, &[("a", inner, 0, 0), ("b", inner, 0, 0)]);
    }
    let t = types(&b, 0, inner);
    assert!(matches!(
        t.value(&[0; 4]),
        Err(FormatError::Limit {
            what: "output nodes",
            limit: 1_048_576
        })
    ));
    let small = Limits {
        max_depth: 64,
        max_nodes: 100,
    };
    let t = MapTypes::with_limits(&b.blob(), 0, inner, small).unwrap();
    assert!(matches!(
        t.value(&[0; 4]),
        Err(FormatError::Limit { limit: 100, .. })
    ));
}

/// Nodes and levels of a tree.
fn measure(f: &Formatted) -> (u64, u32) {
    let inner: Vec<&Formatted> = match f {
        Formatted::Array(items) => items.iter().collect(),
        Formatted::Object(members) => members.iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    };
    inner.into_iter().fold((1, 1), |(n, d), i| {
        let (a, b) = measure(i);
        (n + a, d.max(b + 1))
    })
}

/// Regression for fuzz/regressions/btf_format/datasec-elements-count-one-
/// node-for-two: `{"<section>": [...]}` is two nodes on two levels, and was
/// paid for as one.
#[test]
fn datasec_elements_count_one_node_for_two() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let x = b.var("x", u32_);
    let data = b.datasec(".data", 4, &[(x, 0, 4)]);
    let bss = b.datasec(".bss", 0, &[]);
    let bsss = b.array(bss, u32_, 10);
    let blob = b.blob();
    let dump = |id, max_depth, max_nodes| {
        let limits = Limits {
            max_depth,
            max_nodes,
        };
        MapTypes::with_limits(&blob, 0, id, limits)
            .unwrap()
            .value(&42u32.to_le_bytes())
    };
    // An array and ten objects each holding an empty array: 21 nodes, 3 levels.
    let f = dump(bsss, 2, 21).unwrap();
    assert_eq!(measure(&f), (21, 3));
    assert!(matches!(
        dump(bsss, 2, 20),
        Err(FormatError::Limit {
            what: "output nodes",
            limit: 20
        })
    ));
    assert!(matches!(
        dump(bsss, 1, 21),
        Err(FormatError::Limit {
            what: "nesting depth",
            limit: 1
        })
    ));
    // {".data": [{"x": 42}]}: 4 nodes, 4 levels.
    let f = dump(data, 3, 4).unwrap();
    assert_eq!(json_text(&f), r#"{".data":[{"x":42}]}"#);
    assert_eq!(measure(&f), (4, 4));
    assert!(dump(data, 2, 4).is_err());
    assert!(dump(data, 3, 3).is_err());
    // Whatever the budgets, a tree stays within them or is an error.
    for id in [data, bsss] {
        for max_depth in 0..6 {
            for max_nodes in 0..30 {
                if let Ok(f) = dump(id, max_depth, max_nodes) {
                    let (nodes, levels) = measure(&f);
                    assert!(nodes <= max_nodes && levels <= max_depth + 1);
                }
            }
        }
    }
}

/// A bitfield is one node one level below its struct, like any member.
#[test]
fn bitfields_count_one_node_and_one_level() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let s = b.strukt("s", 4, &[("f", u32_, 0, 3)]);
    let blob = b.blob();
    let dump = |max_depth, max_nodes| {
        let limits = Limits {
            max_depth,
            max_nodes,
        };
        MapTypes::with_limits(&blob, 0, s, limits)
            .unwrap()
            .value(&[5, 0, 0, 0])
    };
    let f = dump(1, 2).unwrap();
    assert_eq!(json_text(&f), r#"{"f":"0x5"}"#);
    assert_eq!(measure(&f), (2, 2));
    assert!(dump(0, 2).is_err());
    assert!(dump(1, 1).is_err());
}

/// An enum of 65535 enumerators, none matching, under a union DAG: each
/// lookup is paid for, so the walk ends early instead of comparing 2^36 times.
#[test]
fn huge_enums_are_paid_for() {
    let mut b = Btf::new();
    let names: Vec<String> = (0..65535).map(|i| format!("E{i}")).collect();
    let vals: Vec<(&str, i32)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    let mut inner = b.enumeration("big", 4, false, &vals);
    for _ in 0..20 {
        inner = b.union("u", 4, &[("a", inner, 0, 0), ("b", inner, 0, 0)]);
    }
    let t = types(&b, 0, inner);
    let start = std::time::Instant::now();
    assert!(matches!(
        t.value(&[0; 4]),
        Err(FormatError::Limit {
            what: "output nodes",
            ..
        })
    ));
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn names_of_ksym_name_len_are_errors() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let long = "x".repeat(512);
    let v = b.strukt("v", 4, &[(&long, u32_, 0, 0)]);
    let t = types(&b, 0, v);
    assert!(matches!(
        t.value(&[0; 4]),
        Err(FormatError::Malformed {
            what: "name of KSYM_NAME_LEN bytes or more",
            ..
        })
    ));
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let v = b.strukt("v", 4, &[(&long[..511], u32_, 0, 0)]);
    assert!(types(&b, 0, v).value(&[0; 4]).is_ok());
}

#[test]
fn huge_arrays_are_errors() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let u8_ = b.int("unsigned char", 1, 0);
    let empty = b.strukt("empty", 0, &[]);
    let nothing = b.array(empty, u32_, u32::MAX);
    let bytes = b.array(u8_, u32_, u32::MAX);
    let too_big = b.array(u32_, u32_, u32::MAX);
    let t = types(&b, 0, nothing);
    assert!(matches!(
        t.value(&[]),
        Err(FormatError::Limit {
            what: "output nodes",
            ..
        })
    ));
    let t = types(&b, 0, bytes);
    assert!(matches!(
        t.value(&[0; 16]),
        Err(FormatError::DataTooShort {
            offset: 16,
            len: 1,
            have: 16,
            ..
        })
    ));
    let outer = b.array(too_big, u32_, 2);
    let t = types(&b, 0, outer);
    assert!(matches!(
        t.value(&[0; 16]),
        Err(FormatError::Malformed {
            what: "array size does not fit 32 bits",
            ..
        })
    ));
}

#[test]
fn type_ids_out_of_range_are_errors() {
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let v = b.strukt("v", 4, &[("x", 99, 0, 0)]);
    let blob = b.blob();
    assert!(matches!(
        MapTypes::new(&blob, 99, u32_),
        Err(FormatError::NoSuchType { id: 99 })
    ));
    assert!(matches!(
        MapTypes::new(&blob, 0, u32::MAX),
        Err(FormatError::NoSuchType { id: u32::MAX })
    ));
    assert!(matches!(
        MapTypes::new(&blob, 0, 0),
        Err(FormatError::NoValueType)
    ));
    let t = MapTypes::new(&blob, 0, v).unwrap();
    assert!(matches!(
        t.value(&[0; 4]),
        Err(FormatError::NoSuchType { id: 99 })
    ));
}

#[test]
fn malformed_types_are_errors() {
    let malformed = |b: &Btf, id: u32, data: &[u8]| match MapTypes::new(&b.blob(), 0, id) {
        Err(e) => e,
        Ok(t) => t.value(data).unwrap_err(),
    };
    // A bitfield past 128 bits.
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let v = b.strukt("v", 32, &[("f", u32_, 7, 128)]);
    assert!(matches!(
        malformed(&b, v, &[0; 32]),
        FormatError::Malformed {
            what: "bitfield runs past 128 bits",
            ..
        }
    ));
    // An int encoding that is two at once.
    let mut b = Btf::new();
    let i = b.int("odd", 1, SIGNED | CHAR);
    assert!(matches!(
        malformed(&b, i, &[0]),
        FormatError::Malformed {
            what: "int encoding",
            ..
        }
    ));
    // A 3-byte enum.
    let mut b = Btf::new();
    let e = b.enumeration("e", 3, false, &[]);
    assert!(matches!(
        malformed(&b, e, &[0; 4]),
        FormatError::Malformed {
            what: "enum size is not 1, 2, 4 or 8",
            ..
        }
    ));
    // A member name past the string section.
    let mut b = Btf::new();
    let u32_ = b.int("unsigned int", 4, 0);
    let v = b.strukt("v", 4, &[("x", u32_, 0, 0)]);
    let name_at = b.types.len() - 12;
    b.types[name_at..name_at + 4].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(
        malformed(&b, v, &[0; 4]),
        FormatError::Malformed {
            what: "name offset outside the string section",
            ..
        }
    ));
    // A kind that does not exist.
    let mut b = Btf::new();
    b.raw("x", 25, false, 0, 0);
    assert!(matches!(
        malformed(&b, 1, &[]),
        FormatError::Malformed {
            type_id: 1,
            what: "unknown kind"
        }
    ));
    // A struct whose members run past the type section.
    let mut b = Btf::new();
    b.raw("v", test_btf::STRUCT, false, 3, 4);
    b.u32s(&[0, 0, 0]);
    assert!(matches!(
        malformed(&b, 1, &[]),
        FormatError::Malformed {
            what: "record runs past the type section",
            ..
        }
    ));
    // A typedef of void.
    let mut b = Btf::new();
    let td = b.typedef("t", 0);
    assert!(matches!(
        malformed(&b, td, &[]),
        FormatError::Malformed {
            what: "typedef or qualifier of void",
            ..
        }
    ));
}

#[test]
fn short_data_is_an_error() {
    use bpfmem_guest_agent::btf::{blob, BV_TYPE_ID};
    let t = MapTypes::new(&blob(), 0, BV_TYPE_ID).unwrap();
    let e = t.value(&[0; 10]).unwrap_err();
    assert!(matches!(e, FormatError::DataTooShort { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "BTF: type 2 wants 4 bytes at offset 0x8 of 0xa bytes"
    );
}

#[test]
fn errors_display_one_line() {
    let e = MapTypes::new(&[0; 8], 0, 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "BTF: 8 bytes are too short for a BTF header (24 bytes)"
    );
    assert!(std::error::Error::source(&e).is_some());
    let e = FormatError::NotJson {
        type_id: 3,
        kind: "float",
    };
    assert_eq!(
        e.to_string(),
        "BTF: type 3 is a float, which bpftool prints as a non-JSON marker"
    );
}
