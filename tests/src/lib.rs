//! The real-kernel test bed: Debian kernels booted under QEMU with the project's own
//! guest agent as init, leaving memory images (ELF dump and raw RAM file) plus the
//! ground truth the guest reported through bpf(2).
//!
//! Everything downloaded or generated goes to a cache outside the repository
//! ([`cache::root`]).

pub mod apt;
pub mod cache;
pub mod hostile;
pub mod initramfs;
pub mod kernels;
pub mod poke;
pub mod qemu;
pub mod testbed;

use std::process::Command;

/// Errors of the test bed are reported, not handled: a boxed error is enough.
pub type Fallible<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Run a command to completion; its stdout, or an error with its stderr.
pub fn run(cmd: &mut Command) -> Fallible<String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
