//! Walks over a real kernel's memory image (`BPFMEM_BENCH_IMAGE`, else the
//! test bed's 6.12 PVH guest): discovery, listing maps, the test bed's
//! 100k-entry hash (`hash_big`) and its `BPF_F_NO_PREALLOC` hash through the
//! accessor and through the core walker alone, translation cold and cached,
//! array reads next to a memcpy of the same size, per-CPU reads, kallsyms
//! lookups and BTF-to-offsets. Without an image it says so and measures
//! nothing.

use std::hint::black_box;
use std::time::Duration;

use bpfmem::kernel::WANTED;
use bpfmem::{btf, BpfMapAccessor, DiscoverOptions, Entry, Image, Kernel};
use bpfmem_benches::map_named;
use bpfmem_core::array::Array;
use bpfmem_core::bpf_map::MapInfo;
use bpfmem_core::htab::{Htab, HtabLimits};
use bpfmem_core::{KernelRead, Kva};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn count_entries(k: &Kernel<Image>, id: u32, e: &mut Entry) -> u64 {
    let mut it = k.entries(id).expect("entries");
    let mut n = 0u64;
    while it.next_into(e).expect("entry") {
        n += 1;
    }
    n
}

/// `hash_big` and `hash_nopre`: the accessor, the core walk, the core walk
/// reading keys and values.
fn hashes(c: &mut Criterion, k: &Kernel<Image>) {
    for (name, group) in [("hash_big", "hash_big"), ("hash_nopre", "hash_nopre")] {
        let m = map_named(k, name);
        let mut e = Entry::default();
        let n = count_entries(k, m.id, &mut e);
        let htab = Htab::new(k.mem(), &m, k.offsets()).expect("htab");
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(n));
        g.bench_function("entries", |b| {
            b.iter(|| assert_eq!(count_entries(k, m.id, &mut e), n))
        });
        g.bench_function("core iter", |b| {
            b.iter(|| {
                let mut count = 0u64;
                let mut it = htab.iter(k.mem(), HtabLimits::default());
                while let Some(e) = it.next().expect("elem") {
                    black_box(e);
                    count += 1;
                }
                assert_eq!(count, n);
            })
        });
        g.bench_function("core iter read_key_value", |b| {
            let mut key = vec![0u8; m.key_size as usize];
            let mut value = vec![0u8; m.value_size as usize];
            b.iter(|| {
                let mut count = 0u64;
                let mut it = htab.iter(k.mem(), HtabLimits::default());
                while let Some(e) = it.next().expect("elem") {
                    htab.read_key_value(k.mem(), &e, &mut key, &mut value)
                        .expect("read");
                    black_box((&key, &value));
                    count += 1;
                }
                assert_eq!(count, n);
            })
        });
        g.finish();
    }
}

/// Translation of the pages `hash_big`'s elements live in (vmalloc, 4 KiB
/// pages): the cold page walk, and the cached answer.
fn translation(c: &mut Criterion, k: &Kernel<Image>) {
    let m = map_named(k, "hash_big");
    let htab = Htab::new(k.mem(), &m, k.offsets()).expect("htab");
    let elems = htab.elems().expect("hash_big is preallocated");
    let span = u64::from(htab.elem_size()) * u64::from(htab.max_entries());
    let pages: Vec<Kva> = (0..span / 4096)
        .map(|i| Kva(elems.get() + i * 4096))
        .collect();
    let n = pages.len() as u64;
    let tr = *k.mem().translator();
    let phys = k.mem().mem();
    let mut g = c.benchmark_group("translate real");
    g.throughput(Throughput::Elements(n));
    g.bench_function("cold walk", |b| {
        b.iter(|| {
            for &kva in &pages {
                black_box(tr.walk(phys, kva).expect("mapped"));
            }
        })
    });
    g.bench_function("KernelMem new page PTE table cached", |b| {
        b.iter(|| {
            for &kva in &pages {
                black_box(k.mem().translate(kva).expect("mapped"));
            }
        })
    });
    let hot: Vec<Kva> = pages
        .iter()
        .take(64)
        .copied()
        .cycle()
        .take(pages.len())
        .collect();
    g.bench_function("KernelMem cached page", |b| {
        b.iter(|| {
            for &kva in &hot {
                black_box(k.mem().translate(kva).expect("mapped"));
            }
        })
    });
    g.finish();
}

/// Every value of an ARRAY map, through the core and through the accessor,
/// next to a memcpy of the same bytes.
fn arrays(c: &mut Criterion, k: &Kernel<Image>) {
    let mut g = c.benchmark_group("array real");
    for name in ["arr", "arr_v1000"] {
        let m: MapInfo = map_named(k, name);
        let a = Array::new(k.mem(), &m, k.offsets()).expect("array");
        let size = m.value_size as usize;
        let n = m.max_entries;
        let mut buf = vec![0u8; size];
        let src = vec![0x5au8; size * n as usize];
        g.throughput(Throughput::Bytes(src.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("Array::read_value", size),
            &size,
            |b, _| {
                b.iter(|| {
                    for key in 0..n {
                        a.read_value(k.mem(), key, 0, &mut buf).expect("read");
                        black_box(&buf);
                    }
                })
            },
        );
        let mut all = vec![0u8; src.len()];
        g.bench_with_input(
            BenchmarkId::new("Array::read_values", size),
            &size,
            |b, _| {
                b.iter(|| {
                    let got = a.read_values(k.mem(), 0, &mut all).expect("read");
                    assert_eq!(got, n);
                    black_box(&all);
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("read_array_value (accessor)", size),
            &size,
            |b, _| {
                b.iter(|| {
                    for key in 0..n {
                        k.read_array_value(m.id, key, 0, &mut buf).expect("read");
                        black_box(&buf);
                    }
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("memcpy", size), &size, |b, _| {
            b.iter(|| {
                for chunk in src.chunks_exact(size) {
                    buf.copy_from_slice(black_box(chunk));
                    black_box(&buf);
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("memcpy whole", size), &size, |b, _| {
            b.iter(|| {
                all.copy_from_slice(black_box(&src));
                black_box(&all);
            })
        });
    }
    g.finish();
}

/// Per-CPU values: every key of `pcpu_arr`, and the per-CPU hashes' entries.
fn percpu(c: &mut Criterion, k: &Kernel<Image>) {
    let mut g = c.benchmark_group("percpu real");
    let m = map_named(k, "pcpu_arr");
    g.throughput(Throughput::Elements(m.max_entries.into()));
    g.bench_function("read_percpu_array_value", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            for key in 0..m.max_entries {
                k.read_percpu_array_value(m.id, key, &mut out)
                    .expect("read");
                black_box(&out);
            }
        })
    });
    for name in ["pcpu_hash", "lru_pcpu_hash"] {
        let m = map_named(k, name);
        let mut e = Entry::default();
        let n = count_entries(k, m.id, &mut e);
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("{name} entries"), |b| {
            b.iter(|| assert_eq!(count_entries(k, m.id, &mut e), n))
        });
    }
    g.finish();
}

fn kallsyms(c: &mut Criterion, k: &Kernel<Image>) {
    let ks = k.kallsyms();
    let mut g = c.benchmark_group("kallsyms real");
    g.throughput(Throughput::Elements(ks.num_syms().into()));
    g.bench_function("lookup_many WANTED", |b| {
        let mut out = [None; WANTED.len()];
        b.iter(|| {
            ks.lookup_many(k.mem(), &WANTED, &mut out).expect("lookup");
            black_box(&out);
        })
    });
    g.bench_function("lookup bpf_map_free", |b| {
        b.iter(|| black_box(ks.lookup(k.mem(), "bpf_map_free").expect("lookup")))
    });
    g.finish();
}

fn btf_offsets(c: &mut Criterion, k: &Kernel<Image>) {
    let s = k.symbols();
    let (start, stop) = (
        s.start_btf.expect("__start_BTF"),
        s.stop_btf.expect("__stop_BTF"),
    );
    let blob = btf::read_kernel_btf(k.mem(), start, stop).expect("BTF");
    let mut g = c.benchmark_group("btf real");
    g.throughput(Throughput::Bytes(blob.len() as u64));
    g.bench_function("read_kernel_btf", |b| {
        b.iter(|| black_box(btf::read_kernel_btf(k.mem(), start, stop).expect("BTF")))
    });
    g.bench_function("offsets_from_btf", |b| {
        b.iter(|| black_box(btf::offsets_from_btf(&blob).expect("offsets")))
    });
    g.finish();
    // The blob really is the kernel's: its first byte reads back.
    black_box(k.mem().read_kva_u8(start).ok());
}

fn image_walks(c: &mut Criterion) {
    let Some(path) = bpfmem_benches::testbed_image() else {
        return;
    };
    let open = || {
        let image = Image::open(&path).expect("open image");
        Kernel::open(image, &DiscoverOptions::default()).expect("discover")
    };
    c.bench_function("discover", |b| b.iter(|| black_box(open())));
    let k = open();
    c.bench_function("list maps", |b| {
        b.iter(|| black_box(k.list_maps().expect("maps")))
    });
    hashes(c, &k);
    translation(c, &k);
    arrays(c, &k);
    percpu(c, &k);
    kallsyms(c, &k);
    btf_offsets(c, &k);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = image_walks
}
criterion_main!(benches);
