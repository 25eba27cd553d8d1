//! Output in bpftool's shapes (bpftool 7.1, tools/bpf/bpftool/{main.c,map.c}):
//! the byte arrays, hex dumps and entry layouts scripts already parse.

use serde_json::{json, Value};

/// `print_hex_data_json()`: every byte as a `"0x%02hhx"` string.
pub fn hex_json(bytes: &[u8]) -> Value {
    Value::Array(
        bytes
            .iter()
            .map(|b| Value::String(format!("0x{b:02x}")))
            .collect(),
    )
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `%02hhx`.
fn push_hex(out: &mut String, b: u8) {
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

/// `fprint_hex()`: bytes as `%02hhx`, `sep` between them, two spaces after every
/// 8th byte and a newline after every 16th.
pub fn fprint_hex(bytes: &[u8], sep: &str) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, &b) in bytes.iter().enumerate() {
        if i > 0 {
            if i % 16 == 0 {
                out.push('\n');
            } else if i % 8 == 0 {
                out.push_str("  ");
            } else {
                out.push_str(sep);
            }
        }
        push_hex(&mut out, b);
    }
    out
}

/// `,"0xNN"` for every byte, in eight-byte slots (seven bytes and a pad, for
/// alignment): a dump spends its time here, so each byte is one fixed-size
/// copy.
const HEX_JSON_TABLE: [[u8; 8]; 256] = {
    let mut t = [[0u8; 8]; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = [b',', b'"', b'0', b'x', HEX[b >> 4], HEX[b & 15], b'"', b' '];
        b += 1;
    }
    t
};

/// [`hex_json`] written straight into `out`, compact.
fn push_hex_json(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        out.extend_from_slice(b"[]");
        return;
    }
    // Seven bytes per byte copied from its slot into the space made for them;
    // then the first comma becomes the `[`.
    let start = out.len();
    out.resize(start + 7 * bytes.len(), 0);
    let dst = &mut out[start..];
    for (slot, &b) in dst.chunks_exact_mut(7).zip(bytes) {
        slot.copy_from_slice(&HEX_JSON_TABLE[usize::from(b)][..7]);
    }
    dst[0] = b'[';
    out.push(b']');
}

/// [`entry_json`], compact, written straight into `out` (a million entries
/// build no JSON values). `formatted` is appended as it is.
pub fn push_entry_json(
    out: &mut Vec<u8>,
    key: &[u8],
    value: EntryValue<'_>,
    formatted: Option<&Value>,
) {
    out.extend_from_slice(b"{\"key\":");
    push_hex_json(out, key);
    match value {
        EntryValue::One(v) => {
            out.extend_from_slice(b",\"value\":");
            push_hex_json(out, v);
        }
        EntryValue::PerCpu(values) => {
            out.extend_from_slice(b",\"values\":[");
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"cpu\":");
                out.extend_from_slice(i.to_string().as_bytes());
                out.extend_from_slice(b",\"value\":");
                push_hex_json(out, v);
                out.push(b'}');
            }
            out.push(b']');
        }
    }
    if let Some(f) = formatted {
        out.extend_from_slice(b",\"formatted\":");
        out.extend_from_slice(f.to_string().as_bytes());
    }
    out.push(b'}');
}

/// `print_entry_plain()` for a map that is not per-CPU.
pub fn entry_plain(key: &[u8], value: &[u8]) -> String {
    let break_names = key.len() > 16 || value.len() > 16;
    let single_line = key.len() + value.len() <= 24 && !break_names;
    let nl = if break_names { '\n' } else { ' ' };
    let mut out = String::new();
    if !key.is_empty() {
        out.push_str(&format!("key:{nl}{}", fprint_hex(key, " ")));
        out.push_str(if single_line { "  " } else { "\n" });
    }
    if !value.is_empty() {
        out.push_str(&format!("value:{nl}{}", fprint_hex(value, " ")));
    }
    out.push('\n');
    out
}

/// `print_entry_plain()` for a per-CPU map: one value per possible CPU, numbered
/// by position as bpftool does.
pub fn entry_plain_percpu(key: &[u8], values: &[&[u8]]) -> String {
    let mut out = String::new();
    if !key.is_empty() {
        out.push_str(&format!("key:\n{}\n", fprint_hex(key, " ")));
    }
    for (i, v) in values.iter().enumerate() {
        let nl = if v.len() > 16 { '\n' } else { ' ' };
        out.push_str(&format!("value (CPU {i:02}):{nl}{}\n", fprint_hex(v, " ")));
    }
    out
}

/// `print_entry_json()`: `{"key": [...], "value": [...]}`, or for per-CPU maps
/// `{"key": [...], "values": [{"cpu": i, "value": [...]}, ...]}`; `formatted`
/// is added when the map has BTF.
pub fn entry_json(key: &[u8], value: EntryValue<'_>, formatted: Option<Value>) -> Value {
    let mut v = match value {
        EntryValue::One(value) => json!({ "key": hex_json(key), "value": hex_json(value) }),
        EntryValue::PerCpu(values) => json!({
            "key": hex_json(key),
            "values": values
                .iter()
                .enumerate()
                .map(|(i, v)| json!({ "cpu": i, "value": hex_json(v) }))
                .collect::<Vec<_>>(),
        }),
    };
    if let Some(f) = formatted {
        v["formatted"] = f;
    }
    v
}

/// A value, or one per possible CPU.
#[derive(Clone, Copy)]
pub enum EntryValue<'a> {
    One(&'a [u8]),
    PerCpu(&'a [&'a [u8]]),
}

/// bpftool's element count line.
pub fn found(n: u64) -> String {
    format!("Found {n} element{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_like_fprint_hex() {
        let b: Vec<u8> = (0..20).collect();
        assert_eq!(
            fprint_hex(&b, " "),
            "00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f\n10 11 12 13"
        );
        assert_eq!(fprint_hex(&[], " "), "");
        assert_eq!(hex_json(&[1, 0xab]), json!(["0x01", "0xab"]));
    }

    #[test]
    fn compact_hex_equals_the_json_values_for_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let mut s = Vec::new();
        push_hex_json(&mut s, &all);
        assert_eq!(serde_json::from_slice::<Value>(&s).unwrap(), hex_json(&all));
        // Every length up to 100, appended to what is there, byte for byte
        // as serde_json writes the same values.
        for len in 0..=100 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let mut s = b"x".to_vec();
            push_hex_json(&mut s, &bytes);
            let want = serde_json::to_string(&hex_json(&bytes)).unwrap();
            assert_eq!(s, [b"x", want.as_bytes()].concat(), "{len}");
        }
    }

    #[test]
    fn compact_entries_equal_the_json_values() {
        let mut s = Vec::new();
        push_entry_json(&mut s, &[1, 0xab], EntryValue::One(&[0, 255]), None);
        let v: Value = serde_json::from_slice(&s).unwrap();
        assert_eq!(v, entry_json(&[1, 0xab], EntryValue::One(&[0, 255]), None));
        let mut s = Vec::new();
        let f = json!({"key": 1});
        push_entry_json(&mut s, &[2], EntryValue::PerCpu(&[&[1], &[2]]), Some(&f));
        let v: Value = serde_json::from_slice(&s).unwrap();
        assert_eq!(
            v,
            entry_json(&[2], EntryValue::PerCpu(&[&[1], &[2]]), Some(f))
        );
    }

    #[test]
    fn entry_layouts() {
        assert_eq!(
            entry_plain(&[1, 0, 0, 0], &[2, 0, 0, 0, 0, 0, 0, 0]),
            "key: 01 00 00 00  value: 02 00 00 00 00 00 00 00\n"
        );
        assert_eq!(
            entry_plain(&[1; 12], &[2; 20]),
            format!(
                "key:\n{}\nvalue:\n{}\n",
                fprint_hex(&[1; 12], " "),
                fprint_hex(&[2; 20], " ")
            )
        );
        assert_eq!(
            entry_plain(&[1; 12], &[2; 16]),
            format!(
                "key: {}\nvalue: {}\n",
                fprint_hex(&[1; 12], " "),
                fprint_hex(&[2; 16], " ")
            )
        );
        assert_eq!(
            entry_plain_percpu(&[7, 0, 0, 0], &[&[1, 2], &[3, 4]]),
            "key:\n07 00 00 00\nvalue (CPU 00): 01 02\nvalue (CPU 01): 03 04\n"
        );
        assert_eq!(found(1), "Found 1 element");
        assert_eq!(found(0), "Found 0 elements");
    }
}
