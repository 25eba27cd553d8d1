//! The `bpfmem` command's pieces: where it reads from, what it prints, and how.

pub mod kernel;
pub mod map;
pub mod objects;
pub mod output;
pub mod source;

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;

use serde_json::ser::PrettyFormatter;
use serde_json::Value;

/// How a command failed: usage errors exit 2, everything else 1.
pub enum Failure {
    Usage(String),
    Error(String),
    /// Our reader went away (`| head`): stop quietly.
    Closed,
}

/// Standard output, buffered, in text, JSON or pretty JSON (bpftool's `-j`,
/// `-p`: four-space indents, as its json_writer.c).
pub struct Out {
    pub json: bool,
    pub pretty: bool,
    w: RefCell<BufWriter<Sink>>,
}

/// Standard output. Written through a duplicate of its descriptor where we can
/// get one: `Stdout` is line-buffered and scans every 64 KiB block for its
/// last newline, which a million-line dump pays for.
enum Sink {
    File(File),
    Stdout(io::Stdout),
}

impl Sink {
    fn stdout() -> Self {
        match io::stdout().as_fd().try_clone_to_owned() {
            Ok(fd) => Sink::File(File::from(fd)),
            Err(_) => Sink::Stdout(io::stdout()),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(f) => f.write(buf),
            Sink::Stdout(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            Sink::Stdout(s) => s.flush(),
        }
    }
}

fn io_fail(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::Closed
    } else {
        Failure::Error(format!("writing output: {e}"))
    }
}

impl Out {
    pub fn new(json: bool, pretty: bool) -> Self {
        Out {
            json: json || pretty,
            pretty,
            w: RefCell::new(BufWriter::with_capacity(1 << 16, Sink::stdout())),
        }
    }

    /// Text as it is.
    pub fn text(&self, s: &str) -> Result<(), Failure> {
        self.w.borrow_mut().write_all(s.as_bytes()).map_err(io_fail)
    }

    /// `v` as JSON, without a newline.
    fn raw_json(&self, v: &Value, indent: usize) -> Result<(), Failure> {
        let mut w = self.w.borrow_mut();
        if self.pretty {
            let mut buf = Vec::new();
            let mut ser = serde_json::Serializer::with_formatter(
                &mut buf,
                PrettyFormatter::with_indent(b"    "),
            );
            serde::Serialize::serialize(v, &mut ser)
                .map_err(|e| Failure::Error(format!("JSON: {e}")))?;
            let pad = " ".repeat(indent);
            let text = String::from_utf8_lossy(&buf).replace('\n', &format!("\n{pad}"));
            w.write_all(text.as_bytes()).map_err(io_fail)
        } else {
            serde_json::to_writer(&mut *w, v).map_err(|e| Failure::Error(format!("JSON: {e}")))
        }
    }

    /// One whole JSON document and a newline.
    pub fn json_value(&self, v: &Value) -> Result<(), Failure> {
        self.raw_json(v, 0)?;
        self.text("\n")
    }

    /// A JSON array written element by element, so a million-entry dump never
    /// sits in memory as one value.
    pub fn array(&self) -> JsonArray<'_> {
        JsonArray {
            out: self,
            first: true,
        }
    }

    pub fn flush(&self) -> Result<(), Failure> {
        self.w.borrow_mut().flush().map_err(io_fail)
    }
}

/// See [`Out::array`]. Call [`JsonArray::item`] per element, then
/// [`JsonArray::end`].
pub struct JsonArray<'a> {
    out: &'a Out,
    first: bool,
}

impl JsonArray<'_> {
    pub fn item(&mut self, v: &Value) -> Result<(), Failure> {
        let sep = match (self.first, self.out.pretty) {
            (true, true) => "[\n    ",
            (true, false) => "[",
            (false, true) => ",\n    ",
            (false, false) => ",",
        };
        self.first = false;
        self.out.text(sep)?;
        self.out.raw_json(v, 4)
    }

    /// One element given as compact JSON text (pretty output re-indents it
    /// through a parse, which only typed dumps for people need).
    pub fn item_raw(&mut self, json: &[u8]) -> Result<(), Failure> {
        if self.out.pretty {
            let v: Value =
                serde_json::from_slice(json).map_err(|e| Failure::Error(format!("JSON: {e}")))?;
            return self.item(&v);
        }
        let mut w = self.out.w.borrow_mut();
        w.write_all(if self.first { b"[" } else { b"," })
            .and_then(|()| w.write_all(json))
            .map_err(io_fail)?;
        self.first = false;
        Ok(())
    }

    /// Close the array (an empty one is `[]`), with a newline if `newline`.
    pub fn end(self, newline: bool) -> Result<(), Failure> {
        let close = match (self.first, self.out.pretty) {
            (true, _) => "[]",
            (false, true) => "\n]",
            (false, false) => "]",
        };
        self.out.text(close)?;
        if newline {
            self.out.text("\n")?;
        }
        Ok(())
    }
}
