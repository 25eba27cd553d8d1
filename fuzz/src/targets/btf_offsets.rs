//! Structure layouts from hostile BTF: `offsets_from_btf` on any blob (raw
//! BTF), and `load_btf_file` when the input is an ELF file (its `.BTF`
//! section).
//!
//! `offsets_from_btf` reads the blob in place (`bpfmem_core::btf_types`); a
//! panic there is a crash like any other. It used to parse with `btf-rs`
//! under `catch_unwind`, reporting a panic there as `BtfError::Panicked`;
//! should that come back, libfuzzer-sys's panic hook would abort before the
//! library could catch anything, so this target installs a hook that lets a
//! panic inside the call unwind (printing it), and counts a caught one as a
//! finding: with `BPFMEM_FUZZ_BTF_PANIC=abort` it aborts (libFuzzer saves the
//! input); with `BPFMEM_FUZZ_BTF_PANICS=DIR` it saves the input in DIR, one
//! per panic location; otherwise it goes on. A panic that is not caught still
//! aborts.
//!
//! Checks: an error's `Display` is one line starting `BTF: `; resolved
//! layouts have a power-of-two `xa_node.slots` of 2..=64.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::sync::Once;

use bpfmem::btf::{load_btf_file, offsets_from_btf, BtfError};

use crate::scratch;

thread_local! {
    static IN_LIBRARY: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Let panics inside `offsets_from_btf` unwind to its `catch_unwind`,
/// remembering where they happened; every other panic goes to the hook
/// installed before (libfuzzer-sys's, which aborts).
pub fn install_hook() {
    HOOK.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_LIBRARY.with(Cell::get) {
                eprintln!("{info}");
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(at));
            } else {
                before(info);
            }
        }));
    });
}

fn guarded<T>(f: impl FnOnce() -> T) -> T {
    IN_LIBRARY.with(|c| c.set(true));
    let r = f();
    IN_LIBRARY.with(|c| c.set(false));
    r
}

/// A caught panic: abort, save the input, or go on (see the module docs).
fn finding(data: &[u8], during: &str, message: &str) {
    let at = LAST_PANIC
        .with(|p| p.borrow_mut().take())
        .unwrap_or_default();
    if std::env::var_os("BPFMEM_FUZZ_BTF_PANIC").is_some_and(|v| v == "abort") {
        eprintln!("btf-rs panicked at {at} while {during}: {message}");
        std::process::abort();
    }
    if let Some(dir) = std::env::var_os("BPFMEM_FUZZ_BTF_PANICS") {
        let name: String = at
            .rsplit("/src/")
            .next()
            .unwrap_or(&at)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = std::path::Path::new(&dir).join(format!("btf-rs-panic-{name}"));
        if !path.exists() {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(&path, data);
            let _ = std::fs::File::create(path.with_extension("txt"))
                .and_then(|mut f| writeln!(f, "{at}\n{during}\n{message}"));
        }
    }
}

#[derive(Debug, Default)]
pub struct Seen {
    pub resolved: bool,
    pub panicked: bool,
}

fn check(data: &[u8], r: Result<bpfmem_core::Offsets, BtfError>, seen: &mut Seen) {
    match r {
        Ok(o) => {
            let n = o.xa_node.nr_slots;
            assert!(n.is_power_of_two() && (2..=64).contains(&n));
            seen.resolved = true;
        }
        Err(BtfError::Panicked { during, message }) => {
            seen.panicked = true;
            finding(data, during, &message);
        }
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.starts_with("BTF: ") && !text.contains('\n'),
                "{text:?}"
            );
        }
    }
}

pub fn run(data: &[u8]) -> Seen {
    install_hook();
    let mut seen = Seen::default();
    let r = guarded(|| offsets_from_btf(data));
    check(data, r, &mut seen);
    if data.starts_with(b"\x7fELF") {
        let path = scratch::write(data);
        if let Ok(blob) = load_btf_file(path) {
            let r = guarded(|| offsets_from_btf(&blob));
            check(&blob, r, &mut seen);
        }
    }
    seen
}
