//! `map show`, `map dump`, `map lookup`, in bpftool's grammar and output.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use bpfmem::{ArenaPageData, Entry};
use bpfmem_core::bpf_map::MapInfo;
use bpfmem_core::uapi::MapType;
use serde_json::{json, Value};

use bpfmem::format::{plain_lookup, EntryValues, MapTypes, PlainDump};

use super::output::{
    entry_json, entry_plain, entry_plain_percpu, found, hex_json, push_entry_json, EntryValue,
};
use super::source::Source;
use super::{Failure, JsonArray, Out};

/// Which maps a verb is about (bpftool's `MAP`).
pub enum MapSel {
    All,
    Id(u32),
    Name(String),
}

impl MapSel {
    /// `id N` or `name NAME` (or nothing, where `allow_all`).
    pub fn parse(args: &[String], allow_all: bool) -> Result<MapSel, Failure> {
        match args {
            [] if allow_all => Ok(MapSel::All),
            [kw, v] if kw == "id" => v
                .parse()
                .map(MapSel::Id)
                .map_err(|_| Failure::Usage(format!("map id must be a number, not '{v}'"))),
            [kw, v] if kw == "name" => Ok(MapSel::Name(v.clone())),
            [kw, _] if kw == "pinned" => Err(Failure::Usage(
                "maps are chosen by 'id N' or 'name NAME' ('pinned' needs bpffs, which a memory image has not)"
                    .into(),
            )),
            _ => Err(Failure::Usage(format!(
                "expected 'id N' or 'name NAME', got '{}'",
                args.join(" ")
            ))),
        }
    }

    fn matches(&self, m: &MapInfo) -> bool {
        match self {
            MapSel::All => true,
            MapSel::Id(id) => m.id == *id,
            MapSel::Name(n) => m.name() == n,
        }
    }
}

/// The maps `sel` names, or an error naming what was not found.
/// The maps `sel` names, or an error naming what was not found. A map chosen
/// by id is looked up alone, so one broken map elsewhere does not hide it.
/// Listing that breaks partway gives the maps before the break and the error,
/// for the caller to show both.
fn select(src: &Source, sel: &MapSel) -> Result<(Vec<MapInfo>, Option<Failure>), Failure> {
    let fail = |e: bpfmem::AccessError| Failure::Error(format!("{}: {e}", src.name()));
    if let MapSel::Id(id) = sel {
        return match src.maps().map_info(*id) {
            Ok(m) => Ok((vec![m], None)),
            Err(bpfmem::AccessError::NoSuchMap { .. }) => {
                Err(Failure::Error(format!("no map with id {id}")))
            }
            Err(e) => Err(fail(e)),
        };
    }
    let (all, broke) = src.maps().list_maps_partial();
    let chosen: Vec<MapInfo> = all.into_iter().filter(|m| sel.matches(m)).collect();
    let broke = broke.map(fail);
    match (sel, broke) {
        (MapSel::Name(n), None) if chosen.is_empty() => {
            Err(Failure::Error(format!("no map named '{n}'")))
        }
        (_, Some(b)) if chosen.is_empty() => Err(b),
        (_, broke) => Ok((chosen, broke)),
    }
}

/// The map's BTF key and value types, when it has them (bpftool then adds a
/// `"formatted"` object in JSON and prints typed values in plain text).
fn map_types(src: &Source, m: &MapInfo) -> Option<MapTypes> {
    if m.btf_id == 0 || m.btf_value_type_id == 0 {
        return None;
    }
    let btf = src.maps().map_btf(m.id).ok()??;
    let types = MapTypes::new(&btf.data, m.btf_key_type_id, m.btf_value_type_id).ok()?;
    // BTF that cannot type even zeroes (a type too deep or too large for the
    // formatter's budgets) types nothing: print bytes, as for a map without.
    let small =
        |n: u32| (u64::from(n) <= bpfmem::access::MAX_VALUE_BYTES).then(|| vec![0u8; n as usize]);
    let (key, value) = (small(m.key_size)?, small(m.value_size)?);
    let probe = if types.has_key() {
        types.key(&key).is_ok()
    } else {
        true
    };
    (probe && types.value(&value).is_ok()).then_some(types)
}

/// bpftool's type name, or `type N`.
fn type_name(t: MapType) -> String {
    match t.name() {
        Some(n) => n.to_string(),
        None => format!("type {}", t.0),
    }
}

/// `show_map_header_json()`.
fn header_json(m: &MapInfo) -> serde_json::Map<String, Value> {
    let mut o = serde_json::Map::new();
    o.insert("id".into(), json!(m.id));
    o.insert(
        "type".into(),
        m.map_type
            .name()
            .map_or_else(|| json!(m.map_type.0), |n| json!(n)),
    );
    if !m.name().is_empty() {
        o.insert("name".into(), json!(m.name()));
    }
    o.insert("flags".into(), json!(m.map_flags));
    o
}

/// `show_map_header_plain()`.
fn header_plain(m: &MapInfo) -> String {
    let mut s = format!("{}: {}  ", m.id, type_name(m.map_type));
    if !m.name().is_empty() {
        s.push_str(&format!("name {}  ", m.name()));
    }
    s.push_str(&format!("flags 0x{:x}", m.map_flags));
    s
}

pub fn show(src: &Source, sel: &MapSel, out: &Out) -> Result<(), Failure> {
    let (maps, broke) = select(src, sel)?;
    show_maps(src, sel, &maps, out)?;
    // What was listed is shown; then the break that stopped the listing.
    broke.map_or(Ok(()), Err)
}

fn show_maps(src: &Source, sel: &MapSel, maps: &[MapInfo], out: &Out) -> Result<(), Failure> {
    if out.json {
        let v: Vec<Value> = maps
            .iter()
            .map(|m| {
                let (memlock, frozen) = src.fdinfo(m.id);
                let mut o = header_json(m);
                o.insert("bytes_key".into(), json!(m.key_size));
                o.insert("bytes_value".into(), json!(m.value_size));
                o.insert("max_entries".into(), json!(m.max_entries));
                if let Some(b) = memlock {
                    o.insert("bytes_memlock".into(), json!(b));
                }
                o.insert("frozen".into(), json!(frozen.unwrap_or(0)));
                if m.btf_id != 0 {
                    o.insert("btf_id".into(), json!(m.btf_id));
                }
                Value::Object(o)
            })
            .collect();
        // bpftool prints one object for `show id N`, an array otherwise.
        let v = match sel {
            MapSel::Id(_) => v.into_iter().next().unwrap_or(Value::Null),
            _ => Value::Array(v),
        };
        return out.json_value(&v);
    }
    let mut text = String::new();
    for m in maps {
        let (memlock, frozen) = src.fdinfo(m.id);
        text.push_str(&header_plain(m));
        text.push('\n');
        text.push_str(&format!(
            "\tkey {}B  value {}B  max_entries {}",
            m.key_size, m.value_size, m.max_entries
        ));
        if let Some(b) = memlock {
            text.push_str(&format!("  memlock {b}B"));
        }
        if frozen.unwrap_or(0) != 0 {
            text.push_str("  frozen");
        }
        text.push('\n');
        if m.btf_id != 0 {
            text.push_str(&format!("\tbtf_id {}\n", m.btf_id));
        }
    }
    out.text(&text)
}

/// Counts entries on stderr while a long dump runs, when stderr is a terminal.
struct Progress {
    on: bool,
    start: Instant,
    last: Instant,
    shown: bool,
}

impl Progress {
    fn new() -> Self {
        let now = Instant::now();
        Progress {
            on: std::io::stderr().is_terminal(),
            start: now,
            last: now,
            shown: false,
        }
    }

    fn tick(&mut self, map: u32, n: u64) {
        if !self.on || n % 1024 != 0 {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.start) < Duration::from_millis(500)
            || now.duration_since(self.last) < Duration::from_millis(200)
        {
            return;
        }
        self.last = now;
        self.shown = true;
        let _ = write!(std::io::stderr(), "\rmap {map}: {n} entries read");
    }

    fn done(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
            self.shown = false;
        }
    }
}

/// Stream one map's elements to `out`: JSON items into `arr`, or text. Returns
/// the element count.
fn dump_one(
    src: &Source,
    m: &MapInfo,
    out: &Out,
    mut arr: Option<&mut JsonArray<'_>>,
) -> Result<u64, Failure> {
    let acc = src.maps();
    let mut count = 0u64;
    let fail = |e: bpfmem::AccessError, n: u64| {
        Failure::Error(format!(
            "{}: {e} (map {}, after {n} entries)",
            src.name(),
            m.name()
        ))
    };
    if m.map_type == MapType::ARENA {
        let mut pages = acc.arena_pages(m.id).map_err(|e| fail(e, 0))?;
        let mut p = ArenaPageData {
            user_addr: 0,
            data: Vec::new(),
        };
        while pages.next_into(&mut p).map_err(|e| fail(e, count))? {
            count += 1;
            match arr.as_deref_mut() {
                Some(a) => {
                    a.item(&json!({ "user_addr": p.user_addr, "data": hex_json(&p.data) }))?
                }
                None => out.text(&format!(
                    "page 0x{:x}:\n{}\n",
                    p.user_addr,
                    super::output::fprint_hex(&p.data, " ")
                ))?,
            }
        }
        return Ok(count);
    }
    let mut entries = acc.entries(m.id).map_err(|e| fail(e, 0))?;
    let percpu = m.map_type.is_percpu();
    let mut types = map_types(src, m);
    let mut plain_btf = match (&types, out.json) {
        (Some(_), false) => Some(PlainDump::new()),
        _ => None,
    };
    let mut e = Entry::default();
    let mut line = Vec::new();
    let mut progress = Progress::new();
    let r = loop {
        match entries.next_into(&mut e) {
            Ok(true) => {}
            Ok(false) => break Ok(count),
            Err(err) => break Err(fail(err, count)),
        }
        count += 1;
        progress.tick(m.id, count);
        let per_cpu: Vec<&[u8]> = if percpu {
            e.percpu_values(m.value_size).collect()
        } else {
            Vec::new()
        };
        let value = if percpu {
            EntryValue::PerCpu(&per_cpu)
        } else {
            EntryValue::One(&e.value)
        };
        let typed_entry = |t: &MapTypes| {
            let values = match value {
                EntryValue::One(v) => EntryValues::One(v),
                EntryValue::PerCpu(v) => EntryValues::PerCpu(v),
            };
            t.entry(&e.key, values)
        };
        // BTF that cannot type the first entry is not used at all: the dump
        // is printed as bytes, as for a map without BTF.
        if count == 1 && types.as_ref().is_some_and(|t| typed_entry(t).is_err()) {
            types = None;
            plain_btf = None;
        }
        let typed = |t: &MapTypes| typed_entry(t).ok();
        let written = match (arr.as_deref_mut(), value, plain_btf.as_mut()) {
            (Some(a), value, _) => {
                let formatted = types
                    .as_ref()
                    .and_then(typed)
                    .and_then(|f| f.to_json().ok());
                line.clear();
                push_entry_json(&mut line, &e.key, value, formatted.as_ref());
                a.item_raw(&line)
            }
            (None, _, Some(plain)) => match types.as_ref().map(typed_entry) {
                Some(Ok(f)) => {
                    plain.push(&f);
                    out.text(&plain.take())
                }
                // Never drop an entry in silence.
                Some(Err(err)) => Err(Failure::Error(format!(
                    "{}: map {} ({}): entry {count}: its BTF cannot type it ({err}); \
                     -j prints the raw bytes",
                    src.name(),
                    m.id,
                    m.name()
                ))),
                None => Ok(()),
            },
            (None, EntryValue::One(v), None) => out.text(&entry_plain(&e.key, v)),
            (None, EntryValue::PerCpu(v), None) => out.text(&entry_plain_percpu(&e.key, v)),
        };
        if let Err(f) = written {
            break Err(f);
        }
    };
    progress.done();
    if let Some(plain) = plain_btf {
        // bpftool ends a typed plain dump with the array, and no count.
        out.text(&plain.finish())?;
        return r.map(|_| u64::MAX);
    }
    r
}

pub fn dump(src: &Source, sel: &MapSel, out: &Out) -> Result<(), Failure> {
    let (maps, broke) = select(src, sel)?;
    dump_maps(src, &maps, out)?;
    broke.map_or(Ok(()), Err)
}

fn dump_maps(src: &Source, maps: &[MapInfo], out: &Out) -> Result<(), Failure> {
    let several = maps.len() > 1;
    if !out.json {
        for m in maps {
            if several {
                out.text(&header_plain(m))?;
                out.text("\n")?;
            }
            let n = dump_one(src, m, out, None)?;
            // u64::MAX: a typed dump, which bpftool ends without a count.
            if n != u64::MAX {
                out.text(&found(n))?;
                out.text("\n")?;
            }
        }
        return Ok(());
    }
    if !several {
        let mut arr = out.array();
        for m in maps {
            dump_one(src, m, out, Some(&mut arr))?;
        }
        return arr.end(true);
    }
    // Several maps (one name): bpftool's root array of map objects, each with
    // its header and an "elements" array.
    out.text("[")?;
    for (i, m) in maps.iter().enumerate() {
        if i > 0 {
            out.text(",")?;
        }
        let head = serde_json::to_string(&Value::Object(header_json(m)))
            .map_err(|e| Failure::Error(format!("JSON: {e}")))?;
        out.text(head.strip_suffix('}').unwrap_or(&head))?;
        out.text(",\"elements\":")?;
        let mut arr = out.array();
        dump_one(src, m, out, Some(&mut arr))?;
        arr.end(false)?;
        out.text("}")?;
    }
    out.text("]\n")
}

/// `key BYTES` or `key hex BYTES`, as bpftool parses them (`parse_bytes()`:
/// each byte by `strtoul(.., 0)`, or base 16 after `hex`).
pub fn parse_key(args: &[String], key_size: u32) -> Result<Vec<u8>, Failure> {
    let usage = |m: String| Failure::Usage(m);
    let rest = match args.split_first() {
        Some((kw, rest)) if kw == "key" => rest,
        _ => return Err(usage("expected 'key BYTES'".into())),
    };
    let (base, bytes) = match rest.split_first() {
        Some((h, more)) if h == "hex" => (16, more),
        _ => (0, rest),
    };
    let parsed: Result<Vec<u8>, _> = bytes
        .iter()
        .map(|b| {
            let (digits, radix) = match base {
                16 => (b.as_str(), 16),
                _ => match b.strip_prefix("0x").or_else(|| b.strip_prefix("0X")) {
                    Some(h) => (h, 16),
                    None if b.len() > 1 && b.starts_with('0') => (&b[1..], 8),
                    None => (b.as_str(), 10),
                },
            };
            u8::from_str_radix(digits, radix).map_err(|_| usage(format!("'{b}' is not a byte")))
        })
        .collect();
    let key = parsed?;
    if key.len() != key_size as usize {
        return Err(usage(format!(
            "key has {} bytes, the map's keys have {key_size}",
            key.len()
        )));
    }
    Ok(key)
}

pub fn lookup(src: &Source, sel: &MapSel, key_args: &[String], out: &Out) -> Result<(), Failure> {
    let (maps, broke) = select(src, sel)?;
    if let Some(b) = broke {
        return Err(b);
    }
    let [m] = &maps[..] else {
        return Err(Failure::Usage(format!(
            "{} maps match; look up in one, by id",
            maps.len()
        )));
    };
    let key = parse_key(key_args, m.key_size)?;
    let acc = src.maps();
    let fail = |e: bpfmem::AccessError| Failure::Error(format!("{}: {e}", src.name()));
    let mut value = Vec::new();
    let found_it = match m.map_type {
        MapType::ARRAY | MapType::PERCPU_ARRAY => {
            let k = u32::from_le_bytes([key[0], key[1], key[2], key[3]]);
            if k >= m.max_entries {
                false
            } else {
                if m.map_type == MapType::ARRAY {
                    value.resize(m.value_size as usize, 0);
                    acc.read_array_value(m.id, k, 0, &mut value).map_err(fail)?;
                } else {
                    acc.read_percpu_array_value(m.id, k, &mut value)
                        .map_err(fail)?;
                }
                true
            }
        }
        _ => {
            let mut entries = acc.entries(m.id).map_err(fail)?;
            let mut e = Entry::default();
            let mut hit = false;
            while entries.next_into(&mut e).map_err(fail)? {
                if e.key == key {
                    value = std::mem::take(&mut e.value);
                    hit = true;
                    break;
                }
            }
            hit
        }
    };
    if !found_it {
        return Err(Failure::Error(format!(
            "map {} ({}): no entry for key {}",
            m.id,
            m.name(),
            super::output::fprint_hex(&key, " ")
        )));
    }
    let per_cpu: Vec<&[u8]> = if m.map_type.is_percpu() {
        value.chunks(m.value_size.max(1) as usize).collect()
    } else {
        Vec::new()
    };
    let v = if m.map_type.is_percpu() {
        EntryValue::PerCpu(&per_cpu)
    } else {
        EntryValue::One(&value)
    };
    let typed = map_types(src, m).and_then(|t| {
        let values = match v {
            EntryValue::One(val) => EntryValues::One(val),
            EntryValue::PerCpu(vals) => EntryValues::PerCpu(vals),
        };
        t.entry(&key, values).ok()
    });
    if out.json {
        let formatted = typed.and_then(|f| f.to_json().ok());
        out.json_value(&entry_json(&key, v, formatted))
    } else if let Some(f) = typed {
        out.text(&plain_lookup(&f))
    } else {
        match v {
            EntryValue::One(val) => out.text(&entry_plain(&key, val)),
            EntryValue::PerCpu(vals) => out.text(&entry_plain_percpu(&key, vals)),
        }
    }
}
