//! The core walkers on synthetic kernel memory (`bpfmem_benches::synth`):
//! address translation cold and cached, xarray enumeration and lookup, hash
//! table walks (preallocated and not), array reads next to a plain memcpy of
//! the same size, per-CPU reads and kallsyms lookups. No files needed.
//!
//! Everything reads through `KernelMem` over a `Flat` physical memory: the
//! same code path as a memory image, minus the file mapping.

use std::hint::black_box;
use std::time::Duration;

use bpfmem_benches::synth::{self, HtabSpec, Synth, PAGE_OFFSET};
use bpfmem_core::array::Array;
use bpfmem_core::htab::{Htab, HtabLimits};
use bpfmem_core::xarray::{idr_find, idr_for_each, XaLimits};
use bpfmem_core::{KernelRead, Kva};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Pages of a vmalloc area the translation benches visit.
const PAGES: u64 = 4096;

fn translation(c: &mut Criterion) {
    let mut s = Synth::new(64 << 20);
    let area = s.vmalloc(PAGES * 4096);
    let tr = s.translator();
    let phys = s.phys();
    let k = s.kernel();
    let pages: Vec<Kva> = (0..PAGES)
        .map(|i| Kva(area.get() + i * 4096 + 8 * (i % 512)))
        .collect();
    let direct: Vec<Kva> = (0..PAGES)
        .map(|i| Kva(PAGE_OFFSET + (i * 7919 * 4096) % s.phys_len()))
        .collect();

    let mut g = c.benchmark_group("translate");
    g.throughput(Throughput::Elements(PAGES));
    // Cold: the page walk alone, as a fresh process does it (4 reads of
    // page-table entries for a 4 KiB page, 3 for a 2 MiB one).
    g.bench_function("cold walk 4KiB page", |b| {
        b.iter(|| {
            for &kva in &pages {
                black_box(tr.walk(&phys, kva).expect("mapped"));
            }
        })
    });
    g.bench_function("cold walk 2MiB page", |b| {
        b.iter(|| {
            for &kva in &direct {
                black_box(tr.walk(&phys, kva).expect("mapped"));
            }
        })
    });
    // KernelMem: every page new to the page cache (4096 pages > 256 slots),
    // but its PTE table known from a neighbour: one read each.
    g.bench_function("KernelMem new page PTE table cached", |b| {
        b.iter(|| {
            for &kva in &pages {
                black_box(k.translate(kva).expect("mapped"));
            }
        })
    });
    // KernelMem: the same 64 pages over and over (all in the page cache).
    let hot: Vec<Kva> = pages
        .iter()
        .take(64)
        .copied()
        .cycle()
        .take(PAGES as usize)
        .collect();
    g.bench_function("KernelMem cached page", |b| {
        b.iter(|| {
            for &kva in &hot {
                black_box(k.translate(kva).expect("mapped"));
            }
        })
    });
    g.bench_function("KernelMem direct map fast path", |b| {
        b.iter(|| {
            for &kva in &direct {
                black_box(k.translate(kva).expect("mapped"));
            }
        })
    });
    g.finish();
}

fn xarray(c: &mut Criterion) {
    const N: u64 = 10_000;
    let mut s = Synth::new(64 << 20);
    let idr = synth::build_idr(&mut s, N);
    let off = synth::offsets();
    let k = s.kernel();
    let mut g = c.benchmark_group("xarray");
    g.throughput(Throughput::Elements(N));
    g.bench_function("idr_for_each 10k", |b| {
        b.iter(|| {
            let mut n = 0u64;
            let mut it = idr_for_each(&k, idr, &off, XaLimits::default());
            while let Some(e) = it.next().expect("entry") {
                black_box(e);
                n += 1;
            }
            assert_eq!(n, N);
        })
    });
    g.bench_function("idr_find 10k", |b| {
        b.iter(|| {
            for id in 1..=N {
                black_box(idr_find(&k, idr, id, &off).expect("found"));
            }
        })
    });
    g.finish();
}

fn htab(c: &mut Criterion) {
    const N: u32 = 100_000;
    for prealloc in [true, false] {
        let mut s = Synth::new(256 << 20);
        let spec = HtabSpec {
            key_size: 4,
            value_size: 8,
            max_entries: 131_072,
            prealloc,
            entries: N,
        };
        let map = synth::build_htab(&mut s, spec);
        let off = synth::offsets();
        let k = s.kernel();
        let htab = Htab::new(&k, &map, &off).expect("htab");
        let name = if prealloc {
            "htab prealloc"
        } else {
            "htab no_prealloc"
        };
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(N.into()));
        g.bench_function("iter", |b| {
            b.iter(|| {
                let mut n = 0u32;
                let mut it = htab.iter(&k, HtabLimits::default());
                while let Some(e) = it.next().expect("elem") {
                    black_box(e);
                    n += 1;
                }
                assert_eq!(n, N);
            })
        });
        g.bench_function("iter read_key_value", |b| {
            let (mut key, mut value) = ([0u8; 4], [0u8; 8]);
            b.iter(|| {
                let mut n = 0u32;
                let mut it = htab.iter(&k, HtabLimits::default());
                while let Some(e) = it.next().expect("elem") {
                    htab.read_key_value(&k, &e, &mut key, &mut value)
                        .expect("read");
                    black_box((&key, &value));
                    n += 1;
                }
                assert_eq!(n, N);
            })
        });
        g.finish();
    }
}

/// Value sizes of the array benches, and how many values each array has
/// (about 4 MiB of values, more than the L2 cache, for every size).
const ARRAY_SIZES: [(u32, u32); 5] = [
    (8, 1 << 19),
    (1000, 4096),
    (4096, 1024),
    (65536, 64),
    (1 << 20, 4),
];

fn array(c: &mut Criterion) {
    let mut g = c.benchmark_group("array read vs memcpy");
    for (size, n) in ARRAY_SIZES {
        let mut s = Synth::new(64 << 20);
        let map = synth::build_array(&mut s, size, n);
        let off = synth::offsets();
        let k = s.kernel();
        let a = Array::new(&k, &map, &off).expect("array");
        let src: Vec<u8> = (0..u64::from(size) * u64::from(n))
            .map(|i| i as u8)
            .collect();
        let mut buf = vec![0u8; size as usize];
        g.throughput(Throughput::Bytes(u64::from(size) * u64::from(n)));
        g.bench_with_input(
            BenchmarkId::new("Array::read_value", size),
            &size,
            |b, _| {
                b.iter(|| {
                    for key in 0..n {
                        a.read_value(&k, key, 0, &mut buf).expect("read");
                        black_box(&buf);
                    }
                })
            },
        );
        let mut all = vec![0u8; size as usize * n as usize];
        g.bench_with_input(
            BenchmarkId::new("Array::read_values", size),
            &size,
            |b, _| {
                b.iter(|| {
                    let got = a.read_values(&k, 0, &mut all).expect("read");
                    assert_eq!(got, n);
                    black_box(&all);
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("memcpy", size), &size, |b, _| {
            b.iter(|| {
                for chunk in src.chunks_exact(size as usize) {
                    buf.copy_from_slice(black_box(chunk));
                    black_box(&buf);
                }
            })
        });
        // The same bytes into one buffer of the same size, as read_values
        // writes them.
        g.bench_with_input(BenchmarkId::new("memcpy whole", size), &size, |b, _| {
            b.iter(|| {
                all.copy_from_slice(black_box(&src));
                black_box(&all);
            })
        });
    }
    g.finish();
}

fn percpu(c: &mut Criterion) {
    const KEYS: u32 = 1024;
    let mut s = Synth::new(64 << 20);
    let (map, pcpu) = synth::build_percpu_array(&mut s, 12, KEYS);
    let off = synth::offsets();
    let k = s.kernel();
    let a = Array::new(&k, &map, &off).expect("percpu array");
    let mut g = c.benchmark_group("percpu array");
    g.throughput(Throughput::Elements(
        u64::from(KEYS) * u64::from(synth::NR_CPUS),
    ));
    g.bench_function("read_percpu_value 4 CPUs", |b| {
        let mut v = [0u8; 12];
        b.iter(|| {
            for key in 0..KEYS {
                for cpu in 0..synth::NR_CPUS {
                    a.read_percpu_value(&k, key, &pcpu, cpu, 0, &mut v)
                        .expect("read");
                    black_box(&v);
                }
            }
        })
    });
    g.finish();
}

fn kallsyms(c: &mut Criterion) {
    const N: u32 = 150_000;
    let mut s = Synth::new(64 << 20);
    let (syms, names) = synth::build_kallsyms(&mut s, N);
    let k = s.kernel();
    let ks = synth::kallsyms(&k, &syms);
    let last = names.last().expect("names").clone();
    // Nine names spread over the table, as discovery looks up nine.
    let spread: Vec<&str> = (1..=9)
        .map(|i| names[(N as usize - 1) * i / 9].as_str())
        .collect();
    let mut g = c.benchmark_group("kallsyms 150k");
    g.throughput(Throughput::Elements(N.into()));
    g.bench_function("lookup last symbol", |b| {
        b.iter(|| {
            let a = ks.lookup(&k, &last).expect("lookup");
            assert_eq!(a, Some(synth::kallsyms_addr(N - 1)));
        })
    });
    g.bench_function("lookup_many 9 names", |b| {
        let mut out = [None; 9];
        b.iter(|| {
            ks.lookup_many(&k, &spread, &mut out).expect("lookup");
            assert!(out.iter().all(Option::is_some));
        })
    });
    g.bench_function("iter all symbols", |b| {
        b.iter(|| {
            let mut it = ks.iter(&k);
            let mut n = 0u32;
            while let Some(sym) = it.next().expect("symbol") {
                black_box(sym.addr());
                n += 1;
            }
            assert_eq!(n, N);
        })
    });
    g.finish();
    // The synthetic table is readable where discovery reads kallsyms.
    black_box(k.read_kva_u8(Kva(syms.names.unwrap_or(0))).ok());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = translation, xarray, htab, array, percpu, kallsyms
}
criterion_main!(benches);
