//! Output: the manifest to QEMU's `isa-debugcon` port, status lines to the
//! console.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;

/// The I/O port of QEMU's `-device isa-debugcon` (its default `iobase`).
pub const DEBUGCON_PORT: u16 = 0xe9;

/// Bytes per `rep outsb`, so a huge write is not one uninterruptible instruction.
const CHUNK: usize = 4096;

/// Writes go byte by byte to [`DEBUGCON_PORT`].
pub struct DebugCon(());

impl DebugCon {
    /// Get access to the port (`ioperm(2)`, needs CAP_SYS_RAWIO).
    #[cfg(target_arch = "x86_64")]
    pub fn open() -> io::Result<Self> {
        // SAFETY: ioperm only changes this process's I/O permission bitmap.
        let r = unsafe { libc::ioperm(libc::c_ulong::from(DEBUGCON_PORT), 1, 1) };
        if r == 0 {
            Ok(Self(()))
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The port exists on x86 only.
    #[cfg(not(target_arch = "x86_64"))]
    pub fn open() -> io::Result<Self> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

impl Write for DebugCon {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(target_arch = "x86_64")]
        for chunk in buf.chunks(CHUNK) {
            // SAFETY: `open()` got us the port. `rsi`/`rcx` describe `chunk`,
            // which is live and readable for its length; `rep outsb` only reads
            // that memory (DF is clear, as the asm ABI guarantees) and writes the
            // port. It changes rsi and rcx, which are declared clobbered, and no
            // flags.
            unsafe {
                core::arch::asm!(
                    "rep outsb",
                    in("dx") DEBUGCON_PORT,
                    inout("rsi") chunk.as_ptr() => _,
                    inout("rcx") chunk.len() => _,
                    options(nostack, preserves_flags, readonly),
                );
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Status lines for the runner: `/dev/console` if it opens, else stdout (which
/// is the console for init).
pub struct Console(Option<File>);

impl Console {
    /// Open the console.
    pub fn open() -> Self {
        Self(
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open("/dev/console")
                .ok(),
        )
    }

    /// Write `line` and a newline in one write, so kernel messages do not split it.
    pub fn line(&mut self, line: &str) {
        let text = format!("{line}\n");
        // Nothing to do if the console itself fails.
        let _ = match &mut self.0 {
            Some(f) => f.write_all(text.as_bytes()),
            None => io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .and_then(|()| io::stdout().flush()),
        };
    }

    /// The underlying writer, for the manifest fallback.
    pub fn writer(&mut self) -> Box<dyn Write + '_> {
        match &mut self.0 {
            Some(f) => Box::new(f),
            None => Box::new(io::stdout().lock()),
        }
    }
}
