//! What `btf_dumper` prints, as a tree that keeps bpftool's member order and
//! duplicate names, renders byte for byte through [`super::JsonWriter`], and
//! converts to the [`serde_json::Value`] a JSON parser reads from bpftool's
//! `-j` output.

use serde_json::{Map, Number, Value};

use super::json_writer::int128_text;
use super::types::kind_name;
use super::FormatError;

/// One formatted key, value or entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Formatted {
    /// An unsigned int of 8, 16, 32 or 64 bits (`%llu` and friends).
    Unsigned(u64),
    /// A signed int of 8 to 64 bits, or an enum value no enumerator names
    /// (`jsonw_int()`: an ENUM64 value too, so values from 2^63 up print
    /// negative).
    Signed(i64),
    /// `btf_int128_print()`: bitfields, 128-bit ints, and ints whose width is
    /// not 8, 16, 32 or 64 bits or that do not start on a byte. Hex, as a
    /// string in JSON and bare in plain text.
    Hex(u128),
    /// An int with `BTF_INT_CHAR` encoding: the character if printable, else
    /// `"\u00xx"` in JSON and `0xNN` in plain text.
    Char(u8),
    /// An int with `BTF_INT_BOOL` encoding.
    Bool(bool),
    /// A char array holding a C string (`is_str_array()`), or an
    /// enumerator's name.
    String(String),
    /// A pointer: a decimal number in JSON, `%p` in plain text.
    Ptr(u64),
    /// An array, or a DATASEC's variables.
    Array(Vec<Formatted>),
    /// A struct, union, VAR or DATASEC: names in BTF order, duplicates (several
    /// anonymous members are all named `""`) kept.
    Object(Vec<(String, Formatted)>),
    /// Where bpftool prints a non-JSON token instead of a value.
    Marker(Marker),
}

/// A type `btf_dumper` cannot print (`btf_dumper_do_type()`, v6.1): FLOAT,
/// TYPE_TAG reached directly, FUNC, FUNC_PROTO, DECL_TAG print
/// `(unsupported-kind` and FWD `(fwd-kind-invalid)`, and stop the dump of
/// everything around them; void prints `(unknown)` and the dump goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// The type id.
    pub type_id: u32,
    /// Its `BTF_KIND_*`.
    pub kind: u32,
}

impl Marker {
    /// The kind's name (`float`, `type_tag`, ...).
    pub fn kind_name(&self) -> &'static str {
        kind_name(self.kind)
    }
}

impl Formatted {
    /// The first marker in the tree, depth first.
    pub fn marker(&self) -> Option<Marker> {
        match self {
            Formatted::Marker(m) => Some(*m),
            Formatted::Array(items) => items.iter().find_map(Formatted::marker),
            Formatted::Object(members) => members.iter().find_map(|(_, v)| v.marker()),
            _ => None,
        }
    }

    /// What a JSON parser reads from `bpftool -j`'s text for this tree: key
    /// order and duplicates are lost as in any parse (the last duplicate
    /// wins). Fails where bpftool's text is not JSON at all (a [`Marker`]).
    ///
    /// Strings go through bpftool 7.1's escaping: a backslash is written as
    /// `\n`, so it reads back as a newline. A `Char` of `"` or `\` is the
    /// character, although bpftool writes it unescaped (invalid JSON).
    pub fn to_json(&self) -> Result<Value, FormatError> {
        Ok(match self {
            Formatted::Unsigned(v) => Value::Number(Number::from(*v)),
            Formatted::Signed(v) => Value::Number(Number::from(*v)),
            Formatted::Hex(v) => Value::String(int128_text(*v)),
            // Printable: the character; else "\u00xx", the same code point.
            Formatted::Char(c) => Value::String(char::from(*c).to_string()),
            Formatted::Bool(v) => Value::Bool(*v),
            Formatted::String(s) => Value::String(s.replace('\\', "\n")),
            Formatted::Ptr(p) => Value::Number(Number::from(*p)),
            Formatted::Array(items) => Value::Array(
                items
                    .iter()
                    .map(Formatted::to_json)
                    .collect::<Result<_, _>>()?,
            ),
            Formatted::Object(members) => {
                let mut map = Map::new();
                for (name, value) in members {
                    map.insert(name.replace('\\', "\n"), value.to_json()?);
                }
                Value::Object(map)
            }
            Formatted::Marker(m) => {
                return Err(FormatError::NotJson {
                    type_id: m.type_id,
                    kind: m.kind_name(),
                })
            }
        })
    }
}
