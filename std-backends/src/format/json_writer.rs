//! bpftool's streaming JSON writer (tools/bpf/bpftool/json_writer.c, as
//! bpftool 7.1 / Linux v6.1 ships it), byte for byte: commas written before
//! the next element, a line break and four spaces per level only before
//! property names and closing brackets, never before array elements. That is
//! why bpftool's pretty arrays look like `[1,2,3\n    ]`.

use super::{Formatted, Marker};

/// `json_writer_t`, writing into a `String` the caller drains.
#[derive(Debug, Clone, Default)]
pub struct JsonWriter {
    out: String,
    depth: usize,
    pretty: bool,
    /// `sep`: `','` once the current collection has an element, else `'\0'`.
    sep: bool,
}

impl JsonWriter {
    /// `jsonw_new()`, then `jsonw_pretty(pretty)`.
    pub fn new(pretty: bool) -> Self {
        JsonWriter {
            pretty,
            ..JsonWriter::default()
        }
    }

    /// Everything written since the last call: a dump of a million entries
    /// can be written out as it goes.
    pub fn take(&mut self) -> String {
        std::mem::take(&mut self.out)
    }

    /// `jsonw_destroy()`: the final newline. Returns what is left to write.
    pub fn finish(mut self) -> String {
        self.out.push('\n');
        self.out
    }

    /// `jsonw_indent()`.
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("    ");
        }
    }

    /// `jsonw_eol()`.
    fn eol(&mut self) {
        if self.pretty {
            self.out.push('\n');
            self.indent();
        }
    }

    /// `jsonw_eor()`.
    fn eor(&mut self) {
        if self.sep {
            self.out.push(',');
        }
        self.sep = true;
    }

    /// `jsonw_puts()` as bpftool 7.1 runs it: a backslash comes out as `\n`
    /// (a typo in its json_writer.c: JSON readers see a newline), a quote as
    /// `\"`, five control characters as their C escapes, everything else (an
    /// apostrophe too) as it is.
    fn puts(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '\t' => self.out.push_str("\\t"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\u{c}' => self.out.push_str("\\f"),
                '\u{8}' => self.out.push_str("\\b"),
                '\\' => self.out.push_str("\\n"),
                '"' => self.out.push_str("\\\""),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    fn begin(&mut self, c: char) {
        self.eor();
        self.out.push(c);
        self.depth = self.depth.saturating_add(1);
        self.sep = false;
    }

    fn end(&mut self, c: char) {
        self.depth = self.depth.saturating_sub(1);
        if self.sep {
            self.eol();
        }
        self.out.push(c);
        self.sep = true;
    }

    /// `jsonw_start_object()`.
    pub fn start_object(&mut self) {
        self.begin('{');
    }

    /// `jsonw_end_object()`.
    pub fn end_object(&mut self) {
        self.end('}');
    }

    /// `jsonw_start_array()`.
    pub fn start_array(&mut self) {
        self.begin('[');
    }

    /// `jsonw_end_array()`.
    pub fn end_array(&mut self) {
        self.end(']');
    }

    /// `jsonw_name()`.
    pub fn name(&mut self, name: &str) {
        self.eor();
        self.eol();
        self.sep = false;
        self.puts(name);
        self.out.push(':');
        if self.pretty {
            self.out.push(' ');
        }
    }

    /// `jsonw_string()`.
    pub fn string(&mut self, s: &str) {
        self.eor();
        self.puts(s);
    }

    /// `jsonw_printf()`: `text` as it is, JSON or not.
    pub fn printf(&mut self, text: &str) {
        self.eor();
        self.out.push_str(text);
    }

    /// `jsonw_uint()`.
    pub fn uint(&mut self, v: u64) {
        self.printf(&v.to_string());
    }

    /// `jsonw_int()`.
    pub fn int(&mut self, v: i64) {
        self.printf(&v.to_string());
    }

    /// `jsonw_bool()`.
    pub fn bool(&mut self, v: bool) {
        self.printf(if v { "true" } else { "false" });
    }

    /// `print_hex_data_json()` (bpftool common.c): every byte as `"0x%02hhx"`.
    pub fn hex_data(&mut self, bytes: &[u8]) {
        self.start_array();
        for b in bytes {
            self.printf(&format!("\"0x{b:02x}\""));
        }
        self.end_array();
    }

    /// `f` as bpftool's `btf_dumper` writes it, with `is_plain_text` (plain
    /// `map dump`/`lookup` of a map with BTF) or without (`-j`).
    pub fn formatted(&mut self, f: &Formatted, plain_text: bool) {
        match f {
            Formatted::Unsigned(v) => self.uint(*v),
            Formatted::Signed(v) => self.int(*v),
            Formatted::Hex(v) => {
                let text = int128_text(*v);
                if plain_text {
                    self.printf(&text);
                } else {
                    self.printf(&format!("\"{text}\""));
                }
            }
            // btf_dumper_int(), BTF_INT_CHAR: isprint() in the C locale picks
            // `"%c"`, unescaped, so `"` and `\` come out as invalid JSON, as
            // bpftool's own output does.
            Formatted::Char(c) if (0x20..0x7f).contains(c) => {
                self.printf(&format!("\"{}\"", char::from(*c)));
            }
            Formatted::Char(c) if plain_text => self.printf(&format!("0x{c:x}")),
            Formatted::Char(c) => self.printf(&format!("\"\\u00{c:02x}\"")),
            Formatted::Bool(v) => self.bool(*v),
            Formatted::String(s) => self.string(s),
            // btf_dumper_ptr(): `%p` in plain text (glibc prints NULL as
            // "(nil)"), `%lu` in JSON.
            Formatted::Ptr(0) if plain_text => self.printf("(nil)"),
            Formatted::Ptr(p) if plain_text => self.printf(&format!("{p:#x}")),
            Formatted::Ptr(p) => self.uint(*p),
            Formatted::Array(items) => {
                self.start_array();
                for item in items {
                    self.formatted(item, plain_text);
                }
                self.end_array();
            }
            Formatted::Object(members) => {
                self.start_object();
                for (name, value) in members {
                    self.name(name);
                    self.formatted(value, plain_text);
                }
                self.end_object();
            }
            Formatted::Marker(m) => self.printf(m.text()),
        }
    }
}

/// `btf_int128_print()`: `0x%llx` of the low half when the high half is 0,
/// else `0x%llx%016llx`.
pub(super) fn int128_text(v: u128) -> String {
    let (upper, lower) = ((v >> 64) as u64, v as u64);
    if upper == 0 {
        format!("{lower:#x}")
    } else {
        format!("{upper:#x}{lower:016x}")
    }
}

impl Marker {
    /// What bpftool prints in place of the value.
    pub fn text(&self) -> &'static str {
        match self.kind {
            super::types::BTF_KIND_UNKN => "(unknown)",
            super::types::BTF_KIND_FWD => "(fwd-kind-invalid)",
            // The parenthesis is not closed in bpftool 7.1 either.
            _ => "(unsupported-kind",
        }
    }
}

/// bpftool's plain-text `map dump` of a map with BTF (`do_dump()` and
/// `map_dump()`, map.c, v6.1): one pretty JSON writer prints `[`, each
/// entry's formatted object, and `]` and a newline at the end. There is no
/// `Found N elements` line. An empty map prints `[]`.
#[derive(Debug, Clone)]
pub struct PlainDump {
    w: JsonWriter,
}

impl Default for PlainDump {
    fn default() -> Self {
        Self::new()
    }
}

impl PlainDump {
    pub fn new() -> Self {
        let mut w = JsonWriter::new(true);
        w.start_array();
        PlainDump { w }
    }

    /// One entry, as [`super::MapTypes::entry`] formats it.
    pub fn push(&mut self, entry: &Formatted) {
        self.w.formatted(entry, true);
    }

    /// The text so far; call as often as wanted.
    pub fn take(&mut self) -> String {
        self.w.take()
    }

    /// The rest of the text, ending the document.
    pub fn finish(mut self) -> String {
        self.w.end_array();
        self.w.finish()
    }
}

/// bpftool's plain-text `map lookup` of a map with BTF (`print_key_value()`,
/// map.c, v6.1): the entry's object alone, pretty, and a newline.
pub fn plain_lookup(entry: &Formatted) -> String {
    let mut w = JsonWriter::new(true);
    w.formatted(entry, true);
    w.finish()
}
