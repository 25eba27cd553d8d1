//! A map's entries read one step ahead of the caller, on a thread of its own.
//!
//! A live dump of a large hash spends most of its time in the kernel, in
//! `BPF_MAP_LOOKUP_BATCH`; the rest goes to formatting what came back. Walked
//! on one thread the two add up. [`ReadAhead`] runs the walk on a helper thread
//! and hands its entries over in chunks, so that the kernel fetches the next
//! batch while the caller formats this one. The entries, their order and the
//! error that ends a walk are the inner walk's, unchanged.
//!
//! The thread owns the inner walk (over a duplicate of the map's descriptor)
//! and stops when the walk ends or fails, or at its next hand-over once the
//! [`ReadAhead`] is dropped, which waits for it: once the walk has ended or
//! its [`ReadAhead`] is gone, so is the duplicate descriptor (a map its owner
//! closed is freed then, as without the thread).

use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};

use crate::access::{AccessError, Entries, Entry};
use crate::live::LiveError;

/// Entries handed over at a time.
const CHUNK: usize = 1024;
/// Chunks the thread may have ready before it waits for the caller.
const DEPTH: usize = 2;

enum Msg {
    /// The first `n` entries of the chunk.
    Chunk(Vec<Entry>, usize),
    End,
    Failed(AccessError),
}

/// [`Entries`] from a walk running on a helper thread.
pub(crate) struct ReadAhead {
    /// `None` once the thread is gone.
    rx: Option<Receiver<Msg>>,
    thread: Option<JoinHandle<()>>,
    /// Spent chunks go back to the thread to be filled again.
    back: Sender<Vec<Entry>>,
    chunk: Vec<Entry>,
    filled: usize,
    pos: usize,
    done: bool,
    /// The map, for the error if the thread dies.
    id: u32,
}

impl ReadAhead {
    /// Start walking `inner` (the entries of map `id`) on a new thread; the
    /// error if the system will not start one.
    pub fn spawn<E>(inner: E, id: u32) -> std::io::Result<Self>
    where
        E: Entries + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(DEPTH);
        let (back, spent) = mpsc::channel::<Vec<Entry>>();
        let thread = thread::Builder::new()
            .name(format!("bpfmem-map-{id}"))
            .spawn(move || {
                let mut inner = inner;
                loop {
                    let mut chunk = spent.try_recv().unwrap_or_default();
                    chunk.resize_with(CHUNK, Entry::default);
                    let mut n = 0;
                    let mut end = None;
                    for e in chunk.iter_mut() {
                        match inner.next_into(e) {
                            Ok(true) => n += 1,
                            Ok(false) => {
                                end = Some(Msg::End);
                                break;
                            }
                            Err(err) => {
                                end = Some(Msg::Failed(err));
                                break;
                            }
                        }
                    }
                    // A send fails only when the caller is gone: stop.
                    if n > 0 && tx.send(Msg::Chunk(chunk, n)).is_err() {
                        return;
                    }
                    if let Some(m) = end {
                        let _ = tx.send(m);
                        return;
                    }
                }
            })?;
        Ok(ReadAhead {
            rx: Some(rx),
            thread: Some(thread),
            back,
            chunk: Vec::new(),
            filled: 0,
            pos: 0,
            done: false,
            id,
        })
    }
}

impl ReadAhead {
    /// Let the thread go and wait for it: with the receiver gone, its next
    /// hand-over fails and it returns, closing its descriptor.
    fn stop(&mut self) {
        self.rx = None;
        if let Some(t) = self.thread.take() {
            // A panic on the thread was reported as an error already.
            let _ = t.join();
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Entries for ReadAhead {
    fn next_into(&mut self, entry: &mut Entry) -> Result<bool, AccessError> {
        loop {
            if self.pos < self.filled {
                if let Some(e) = self.chunk.get_mut(self.pos) {
                    // The caller's old buffers take the entry's place, to be
                    // filled again on the thread.
                    std::mem::swap(entry, e);
                    self.pos += 1;
                    return Ok(true);
                }
            }
            if self.done {
                return Ok(false);
            }
            if !self.chunk.is_empty() {
                // The thread may be gone already; the chunk is then dropped.
                let _ = self.back.send(std::mem::take(&mut self.chunk));
            }
            self.done = true;
            let msg = match &self.rx {
                Some(rx) => rx.recv(),
                None => return Ok(false),
            };
            match msg {
                Ok(Msg::Chunk(chunk, n)) => {
                    self.chunk = chunk;
                    self.filled = n;
                    self.pos = 0;
                    self.done = false;
                }
                Ok(Msg::End) => {
                    self.stop();
                    return Ok(false);
                }
                Ok(Msg::Failed(e)) => {
                    self.stop();
                    return Err(e);
                }
                // The thread ended without saying why: it panicked.
                Err(_) => {
                    self.stop();
                    return Err(AccessError::Live(LiveError::Malformed {
                        what: "the read-ahead thread stopped",
                        id: self.id,
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` entries (key i, value 2i), then `end`.
    struct Counted {
        i: u32,
        n: u32,
        end: Option<AccessError>,
        /// Calls after the end, which must answer the end again.
        after: u32,
    }

    impl Entries for Counted {
        fn next_into(&mut self, e: &mut Entry) -> Result<bool, AccessError> {
            if self.i < self.n {
                e.key.clear();
                e.key.extend_from_slice(&self.i.to_le_bytes());
                e.value.clear();
                e.value.extend_from_slice(&(2 * self.i).to_le_bytes());
                self.i += 1;
                return Ok(true);
            }
            self.after += 1;
            assert_eq!(self.after, 1, "called past its end");
            match self.end.take() {
                Some(err) => Err(err),
                None => Ok(false),
            }
        }
    }

    fn walk(
        n: u32,
        end: Option<AccessError>,
    ) -> (Vec<u32>, Option<AccessError>, Result<bool, AccessError>) {
        let inner = Counted {
            i: 0,
            n,
            end,
            after: 0,
        };
        let mut r = ReadAhead::spawn(inner, 9).unwrap();
        let mut e = Entry::default();
        let mut keys = Vec::new();
        let err = loop {
            match r.next_into(&mut e) {
                Ok(true) => {
                    let k = u32::from_le_bytes(e.key[..4].try_into().unwrap());
                    let v = u32::from_le_bytes(e.value[..4].try_into().unwrap());
                    assert_eq!(v, 2 * k);
                    keys.push(k);
                }
                Ok(false) => break None,
                Err(err) => break Some(err),
            }
        };
        (keys, err, r.next_into(&mut e))
    }

    #[test]
    fn hands_over_every_entry_in_order_then_the_end() {
        for n in [0, 1, CHUNK as u32 - 1, CHUNK as u32, 5 * CHUNK as u32 + 3] {
            let (keys, err, after) = walk(n, None);
            assert_eq!(keys, (0..n).collect::<Vec<_>>(), "{n}");
            assert!(err.is_none());
            assert!(matches!(after, Ok(false)));
        }
    }

    #[test]
    fn hands_over_the_entries_before_an_error_then_the_error_once() {
        let n = 3 * CHUNK as u32 + 7;
        let (keys, err, after) = walk(n, Some(AccessError::NoSuchMap { id: 4 }));
        assert_eq!(keys.len(), n as usize);
        assert!(matches!(err, Some(AccessError::NoSuchMap { id: 4 })));
        assert!(matches!(after, Ok(false)));
    }

    #[test]
    fn dropping_it_early_stops_the_thread() {
        let inner = Counted {
            i: 0,
            n: u32::MAX,
            end: None,
            after: 0,
        };
        let mut r = ReadAhead::spawn(inner, 1).unwrap();
        let mut e = Entry::default();
        assert!(matches!(r.next_into(&mut e), Ok(true)));
        drop(r);
        // Nothing to join: the thread stops at its next hand-over. What is
        // checked is that dropping neither blocks nor panics.
    }
}
