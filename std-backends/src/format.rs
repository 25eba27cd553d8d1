//! Typed map keys and values, printed as bpftool 7.1 prints them.
//!
//! When a map has BTF, `bpftool map dump` adds a `"formatted"` object to each
//! entry in JSON mode, and in plain mode prints, instead of hex, one JSON-like
//! document of formatted entries. Both come from `btf_dumper`
//! (tools/bpf/bpftool/btf_dumper.c) through bpftool's own JSON writer
//! (json_writer.c). This module re-implements the two as Debian's bpftool
//! 7.1.0 (Linux v6.1 sources, libbpf 1.1) behaves, odd corners included,
//! each one checked against that binary (`tests/format_bpftool.rs`):
//!
//! - ints of 8, 16, 32 and 64 bits print as decimal numbers; 128-bit ints,
//!   bitfields, and ints of other widths or at bit offsets print as hex
//!   (`"0x1f"` in JSON, bare `0x1f` in plain text), signed or not;
//! - `BTF_INT_CHAR` ints print as the character or `"\u00xx"`/`0xNN`, bools
//!   as `true`/`false` from their first byte;
//! - char arrays print as strings when they hold printable ASCII up to a NUL
//!   (`is_str_array()`), otherwise as arrays of numbers;
//! - enums print the enumerator's name, or the value as a signed number;
//! - pointers print as decimal numbers in JSON and as `%p` in plain text;
//! - DATASEC values (`.data`, `.bss`, `.rodata` maps) print as
//!   `{".data": [{"var": value}, ...]}`;
//! - per-CPU values print as `"values": [{"cpu": i, "value": ...}]`, `i`
//!   counting possible CPUs from 0.
//!
//! [`MapTypes`] parses a map's BTF once and formats keys, values and whole
//! entries into a [`Formatted`] tree. [`Formatted::to_json`] gives the
//! [`serde_json::Value`] a parser reads from `bpftool -j`; [`JsonWriter`],
//! [`PlainDump`] and [`plain_lookup`] give bpftool's exact text.
//!
//! ```no_run
//! use bpfmem::format::{EntryValues, MapTypes, PlainDump};
//! use bpfmem::{BpfMapAccessor, Entry};
//!
//! # fn show(src: &impl BpfMapAccessor, id: u32) -> Result<(), Box<dyn std::error::Error>> {
//! // `bpftool map dump id N` of a (not per-CPU) map with BTF.
//! let m = src.map_info(id)?;
//! if let Some(btf) = src.map_btf(id)? {
//!     let types = MapTypes::new(&btf.data, m.btf_key_type_id, m.btf_value_type_id)?;
//!     let mut dump = PlainDump::new();
//!     let mut entries = src.entries(id)?;
//!     let mut e = Entry::default();
//!     while entries.next_into(&mut e)? {
//!         dump.push(&types.entry(&e.key, EntryValues::One(&e.value))?);
//!         print!("{}", dump.take());
//!     }
//!     print!("{}", dump.finish());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The BTF comes from the machine being read, so it is hostile. Its size is
//! capped and its header checked ([`crate::btf::check_btf_header`]); every type record,
//! name and read is bounds-checked; every chain of links, the nesting depth
//! and the size of the output have limits ([`Limits`]). The parser is this
//! module's own code, written without panicking constructs (the lints below
//! deny them), so there is no third-party parser to guard with
//! `catch_unwind` as [`crate::btf`] guards `btf-rs`.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unreachable,
        clippy::todo
    )
)]

mod dumper;
mod json_writer;
mod types;
mod value;

#[cfg(test)]
pub(crate) mod test_btf;
#[cfg(test)]
mod tests;

use std::fmt;

pub use json_writer::{plain_lookup, JsonWriter, PlainDump};
pub use value::{Formatted, Marker};

use crate::btf::BtfError;
use dumper::{Dumper, Flow};
use types::Types;

/// Formatting failed: the BTF is not BTF the kernel accepts, or the bytes do
/// not fit it. `Display` is one line starting `BTF: `; it never prints bytes
/// of the blob or the data.
#[derive(Debug)]
#[non_exhaustive]
pub enum FormatError {
    /// The blob's size or header is wrong.
    Header(BtfError),
    /// Type `type_id` (0: the blob as a whole) is malformed as `what` says.
    Malformed { type_id: u32, what: &'static str },
    /// Type id `id` does not exist.
    NoSuchType { id: u32 },
    /// The map has no value type (bpftool prints no `"formatted"` then).
    NoValueType,
    /// A walk hit its limit of `limit` `what`.
    Limit { what: &'static str, limit: u64 },
    /// Type `type_id` wants `len` bytes at offset `offset`, past the `have`
    /// bytes given.
    DataTooShort {
        type_id: u32,
        offset: u64,
        len: u64,
        have: u64,
    },
    /// bpftool's output for this value is not JSON: it prints a marker for
    /// type `type_id` of `kind` (see [`Marker`]).
    NotJson { type_id: u32, kind: &'static str },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BTF: ")?;
        match self {
            // BtfError's Display starts with "BTF: " already.
            FormatError::Header(e) => {
                let text = e.to_string();
                f.write_str(text.strip_prefix("BTF: ").unwrap_or(&text))
            }
            FormatError::Malformed { type_id: 0, what } => write!(f, "malformed: {what}"),
            FormatError::Malformed { type_id, what } => {
                write!(f, "type {type_id} is malformed: {what}")
            }
            FormatError::NoSuchType { id } => write!(f, "type id {id} does not exist"),
            FormatError::NoValueType => f.write_str("the map has no value type"),
            FormatError::Limit { what, limit } => {
                write!(f, "{what} exceed the limit of {limit}")
            }
            FormatError::DataTooShort {
                type_id,
                offset,
                len,
                have,
            } => write!(
                f,
                "type {type_id} wants {len} bytes at offset {offset:#x} of {have:#x} bytes"
            ),
            FormatError::NotJson { type_id, kind } => write!(
                f,
                "type {type_id} is a {kind}, which bpftool prints as a non-JSON marker"
            ),
        }
    }
}

impl std::error::Error for FormatError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FormatError::Header(e) => Some(e),
            _ => None,
        }
    }
}

/// Budgets for one key or value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Levels of nesting: types inside each other (typedefs and qualifiers
    /// count), and one more for a DATASEC's array of variables or a bitfield
    /// member. The kernel allows 32 types (`MAX_RESOLVE_DEPTH`,
    /// kernel/bpf/btf.c).
    pub max_depth: u32,
    /// Output nodes (numbers, strings, arrays, objects): a 1 MiB array of
    /// bytes is a million of them. Every 32 bytes of names and strings, and
    /// every 256 enumerators compared or string bytes scanned, count as one
    /// more.
    pub max_nodes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_nodes: 1 << 20,
        }
    }
}

/// A map's value, or its values on each possible CPU.
#[derive(Debug, Clone, Copy)]
pub enum EntryValues<'a> {
    One(&'a [u8]),
    /// One `value_size`-byte value per possible CPU, in CPU order (bpftool
    /// numbers them from 0 by position, not by CPU id).
    PerCpu(&'a [&'a [u8]]),
}

/// A map's key and value types, parsed once: `btf_key_type_id` and
/// `btf_value_type_id` in the map's BTF object (for STRUCT_OPS maps,
/// `btf_vmlinux_value_type_id` in the kernel's BTF, as bpftool does).
#[derive(Debug, Clone)]
pub struct MapTypes {
    types: Types,
    key_type_id: u32,
    value_type_id: u32,
    limits: Limits,
}

impl MapTypes {
    /// Parse `btf_blob` (the raw BTF, as [`crate::MapBtf::data`] holds it; not
    /// split BTF) for a map whose key type is `key_type_id` (0: none, and
    /// bpftool leaves the key out) and whose value type is `value_type_id`.
    pub fn new(btf_blob: &[u8], key_type_id: u32, value_type_id: u32) -> Result<Self, FormatError> {
        Self::with_limits(btf_blob, key_type_id, value_type_id, Limits::default())
    }

    /// [`Self::new`] with other budgets.
    pub fn with_limits(
        btf_blob: &[u8],
        key_type_id: u32,
        value_type_id: u32,
        limits: Limits,
    ) -> Result<Self, FormatError> {
        let types = Types::parse(btf_blob)?;
        if value_type_id == 0 {
            return Err(FormatError::NoValueType);
        }
        types.get(value_type_id)?;
        types.get(key_type_id)?;
        Ok(MapTypes {
            types,
            key_type_id,
            value_type_id,
            limits,
        })
    }

    /// Whether bpftool prints a `"key"` (the map has a key type).
    pub fn has_key(&self) -> bool {
        self.key_type_id != 0
    }

    fn dump(&self, type_id: u32, bytes: &[u8]) -> Result<(Formatted, Flow), FormatError> {
        Dumper::new(&self.types, bytes, self.limits).dump(type_id)
    }

    /// The key, as `btf_dumper_type()` prints it. Without a key type, the
    /// bytes are formatted as void (bpftool never does that).
    pub fn key(&self, bytes: &[u8]) -> Result<Formatted, FormatError> {
        Ok(self.dump(self.key_type_id, bytes)?.0)
    }

    /// The value (one CPU's, for per-CPU maps).
    pub fn value(&self, bytes: &[u8]) -> Result<Formatted, FormatError> {
        Ok(self.dump(self.value_type_id, bytes)?.0)
    }

    /// The key as JSON ([`Formatted::to_json`]).
    pub fn format_key(&self, bytes: &[u8]) -> Result<serde_json::Value, FormatError> {
        self.key(bytes)?.to_json()
    }

    /// The value as JSON ([`Formatted::to_json`]).
    pub fn format_value(&self, bytes: &[u8]) -> Result<serde_json::Value, FormatError> {
        self.value(bytes)?.to_json()
    }

    /// `do_dump_btf()` (map.c, v6.1): `{"key": ..., "value": ...}`, or
    /// `{"key": ..., "values": [{"cpu": 0, "value": ...}, ...]}`; no `"key"`
    /// without a key type. Where bpftool stops at a marker, this stops too:
    /// a key that stops leaves the value out, a CPU that stops ends the list.
    /// In `-j` output this is the `"formatted"` object; in plain text it is
    /// what [`PlainDump`] prints.
    pub fn entry(&self, key: &[u8], values: EntryValues<'_>) -> Result<Formatted, FormatError> {
        let mut members = Vec::new();
        if self.key_type_id != 0 {
            let (k, flow) = self.dump(self.key_type_id, key)?;
            members.push(("key".to_string(), k));
            if flow == Flow::Stop {
                return Ok(Formatted::Object(members));
            }
        }
        match values {
            EntryValues::One(v) => members.push(("value".to_string(), self.value(v)?)),
            EntryValues::PerCpu(per_cpu) => {
                let mut list = Vec::new();
                for (cpu, v) in (0u64..).zip(per_cpu) {
                    let (value, flow) = self.dump(self.value_type_id, v)?;
                    list.push(Formatted::Object(vec![
                        ("cpu".to_string(), Formatted::Unsigned(cpu)),
                        ("value".to_string(), value),
                    ]));
                    if flow == Flow::Stop {
                        break;
                    }
                }
                members.push(("values".to_string(), Formatted::Array(list)));
            }
        }
        Ok(Formatted::Object(members))
    }

    /// [`Self::entry`] as JSON: the `"formatted"` object of `bpftool -j`.
    pub fn format_entry(
        &self,
        key: &[u8],
        values: EntryValues<'_>,
    ) -> Result<serde_json::Value, FormatError> {
        self.entry(key, values)?.to_json()
    }
}
