//! Dumping a 1M-entry u64 -> u64 HASH from the host kernel through
//! [`LiveBpf`]: `BPF_MAP_LOOKUP_BATCH` against the forced key-by-key walk
//! (`BPF_MAP_GET_NEXT_KEY` + `BPF_MAP_LOOKUP_ELEM`). Needs root; without it
//! the bench says why and measures nothing.

use std::hint::black_box;

use bpfmem::{BpfMapAccessor, Entry, LiveBpf};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const ENTRIES: u32 = 1 << 20;

fn count_entries(live: &LiveBpf, id: u32, e: &mut Entry) -> u64 {
    let mut it = live.entries(id).expect("entries");
    let mut n = 0u64;
    while it.next_into(e).expect("entry") {
        black_box(&e.value);
        n += 1;
    }
    n
}

fn live_hash(c: &mut Criterion) {
    let (_fd, id) = match bpfmem_benches::live::u64_hash("live_1m_h", ENTRIES) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("live_hash: cannot create the 1M-entry hash ({e}); needs root");
            return;
        }
    };
    let mut live = match LiveBpf::open() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("live_hash: {e}");
            return;
        }
    };
    let mut e = Entry::default();
    assert_eq!(count_entries(&live, id, &mut e), u64::from(ENTRIES));

    let mut g = c.benchmark_group("live hash 1M u64->u64");
    g.throughput(Throughput::Elements(ENTRIES.into()));
    g.sample_size(10);
    g.bench_function("entries: BPF_MAP_LOOKUP_BATCH", |b| {
        b.iter(|| assert_eq!(count_entries(&live, id, &mut e), u64::from(ENTRIES)))
    });
    live.set_batch(false);
    // About 2 s per walk.
    g.measurement_time(std::time::Duration::from_secs(25));
    g.bench_function("entries: GET_NEXT_KEY + LOOKUP_ELEM", |b| {
        b.iter(|| assert_eq!(count_entries(&live, id, &mut e), u64::from(ENTRIES)))
    });
    g.finish();
}

criterion_group!(benches, live_hash);
criterion_main!(benches);
