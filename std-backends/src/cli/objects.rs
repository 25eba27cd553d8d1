//! `prog show` and `btf show`: programs and BTF objects, with bpftool's field
//! names where they mean the same thing.

use bpfmem::objects::{BpfObjectAccessor, BtfInfo};
use bpfmem_core::bpf_prog::ProgInfo;
use serde_json::{json, Value};

use super::source::Source;
use super::{Failure, Out};

fn objects(src: &Source) -> &dyn BpfObjectAccessor {
    match src {
        Source::Image(k) => k.as_ref(),
        Source::Live(l) => l,
    }
}

/// Which programs a verb is about.
type ProgFilter = Box<dyn Fn(&ProgInfo) -> bool>;

/// `id N` or `name NAME` for programs.
fn pick(args: &[String]) -> Result<ProgFilter, Failure> {
    match args {
        [] => Ok(Box::new(|_| true)),
        [kw, v] if kw == "id" => {
            let id: u32 = v
                .parse()
                .map_err(|_| Failure::Usage(format!("program id must be a number, not '{v}'")))?;
            Ok(Box::new(move |p| p.id == id))
        }
        [kw, v] if kw == "name" => {
            let name = v.clone();
            Ok(Box::new(move |p| p.name() == name))
        }
        _ => Err(Failure::Usage(format!(
            "expected 'id N' or 'name NAME', got '{}'",
            args.join(" ")
        ))),
    }
}

fn tag_hex(p: &ProgInfo) -> String {
    p.tag.iter().map(|b| format!("{b:02x}")).collect()
}

fn type_name(p: &ProgInfo) -> String {
    p.prog_type
        .name()
        .map_or_else(|| format!("type {}", p.prog_type.0), str::to_string)
}

pub fn prog_show(src: &Source, args: &[String], out: &Out) -> Result<(), Failure> {
    let keep = pick(args)?;
    let progs: Vec<ProgInfo> = objects(src)
        .list_progs()
        .map_err(|e| Failure::Error(format!("{}: {e}", src.name())))?
        .into_iter()
        .filter(|p| keep(p))
        .collect();
    if progs.is_empty() && !args.is_empty() {
        return Err(Failure::Error(format!("no program {}", args.join(" "))));
    }
    if out.json {
        let v: Vec<Value> = progs
            .iter()
            .map(|p| {
                let mut o = json!({
                    "id": p.id,
                    "type": p.prog_type.name().map_or_else(|| json!(p.prog_type.0), |n| json!(n)),
                    "name": p.name(),
                    "tag": tag_hex(p),
                    "loaded_at_boot_ns": p.load_time,
                    "bytes_xlated": p.xlated_len,
                    "jited": p.jited_len != 0,
                    "bytes_jited": p.jited_len,
                    "map_ids": p.map_ids(),
                });
                if p.btf_id != 0 {
                    o["btf_id"] = json!(p.btf_id);
                }
                o
            })
            .collect();
        let v = match args.first().map(String::as_str) {
            Some("id") => v.into_iter().next().unwrap_or(Value::Null),
            _ => Value::Array(v),
        };
        return out.json_value(&v);
    }
    let mut t = String::new();
    for p in &progs {
        t.push_str(&format!("{}: {}  ", p.id, type_name(p)));
        if !p.name().is_empty() {
            t.push_str(&format!("name {}  ", p.name()));
        }
        t.push_str(&format!("tag {}\n", tag_hex(p)));
        t.push_str(&format!(
            "\tloaded_at {}.{:09}s after boot\n",
            p.load_time / 1_000_000_000,
            p.load_time % 1_000_000_000
        ));
        t.push_str(&format!("\txlated {}B", p.xlated_len));
        if p.jited_len != 0 {
            t.push_str(&format!("  jited {}B", p.jited_len));
        } else {
            t.push_str("  not jited");
        }
        if !p.map_ids().is_empty() {
            let ids: Vec<String> = p.map_ids().iter().map(u32::to_string).collect();
            t.push_str(&format!("  map_ids {}", ids.join(",")));
        }
        t.push('\n');
        if p.btf_id != 0 {
            t.push_str(&format!("\tbtf_id {}\n", p.btf_id));
        }
    }
    out.text(&t)
}

pub fn btf_show(src: &Source, args: &[String], out: &Out) -> Result<(), Failure> {
    let want: Option<u32> = match args {
        [] => None,
        [kw, v] if kw == "id" => Some(
            v.parse()
                .map_err(|_| Failure::Usage(format!("BTF id must be a number, not '{v}'")))?,
        ),
        _ => {
            return Err(Failure::Usage(format!(
                "expected 'id N', got '{}'",
                args.join(" ")
            )))
        }
    };
    let fail = |e: bpfmem::AccessError| Failure::Error(format!("{}: {e}", src.name()));
    let btfs: Vec<BtfInfo> = objects(src)
        .list_btfs()
        .map_err(fail)?
        .into_iter()
        .filter(|b| want.is_none_or(|id| b.id == id))
        .collect();
    if let (Some(id), true) = (want, btfs.is_empty()) {
        return Err(Failure::Error(format!("no BTF object with id {id}")));
    }
    // Which maps and programs use each object, as bpftool lists them.
    let maps = src.maps().list_maps().map_err(fail)?;
    let progs = objects(src).list_progs().map_err(fail)?;
    let users = |id: u32| -> (Vec<u32>, Vec<u32>) {
        (
            progs
                .iter()
                .filter(|p| p.btf_id == id)
                .map(|p| p.id)
                .collect(),
            maps.iter()
                .filter(|m| m.btf_id == id)
                .map(|m| m.id)
                .collect(),
        )
    };
    if out.json {
        let v: Vec<Value> = btfs
            .iter()
            .map(|b| {
                let (prog_ids, map_ids) = users(b.id);
                let mut o = json!({
                    "id": b.id,
                    "size": b.size,
                    "prog_ids": prog_ids,
                    "map_ids": map_ids,
                });
                if !b.name.is_empty() {
                    o["name"] = json!(b.name);
                }
                o["kernel_btf"] = json!(b.kernel_btf);
                o
            })
            .collect();
        let v = match want {
            Some(_) => v.into_iter().next().unwrap_or(Value::Null),
            None => Value::Array(v),
        };
        return out.json_value(&v);
    }
    let mut t = String::new();
    for b in &btfs {
        t.push_str(&format!("{}: ", b.id));
        if !b.name.is_empty() {
            t.push_str(&format!("name [{}]  ", b.name));
        }
        t.push_str(&format!("size {}B", b.size));
        let (prog_ids, map_ids) = users(b.id);
        let list = |ids: &[u32]| ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        if !prog_ids.is_empty() {
            t.push_str(&format!("  prog_ids {}", list(&prog_ids)));
        }
        if !map_ids.is_empty() {
            t.push_str(&format!("  map_ids {}", list(&map_ids)));
        }
        t.push('\n');
    }
    out.text(&t)
}
