//! Walks over a real kernel's memory image: discovery, listing maps, and
//! dumping the test bed's 100k-entry hash (`hash_big`) through the accessor
//! and through the core walker alone.

use std::hint::black_box;

use bpfmem::{BpfMapAccessor, DiscoverOptions, Entry, Image, Kernel};
use bpfmem_core::htab::{Htab, HtabLimits};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn image_walks(c: &mut Criterion) {
    let Some(path) = bpfmem_benches::testbed_image() else {
        return;
    };
    let open = || {
        let image = Image::open(&path).expect("open image");
        Kernel::open(image, &DiscoverOptions::default()).expect("discover")
    };

    c.bench_function("discover (open + VMCOREINFO + kallsyms + BTF)", |b| {
        b.iter(|| black_box(open()))
    });

    let k = open();
    c.bench_function("list maps", |b| {
        b.iter(|| black_box(k.list_maps().expect("maps")))
    });

    let big = k
        .list_maps()
        .expect("maps")
        .into_iter()
        .find(|m| m.name() == "hash_big")
        .expect("the test bed's hash_big map");
    let n = k.entries(big.id).expect("entries").count() as u64;

    let mut g = c.benchmark_group("hash_big");
    g.throughput(Throughput::Elements(n));
    g.bench_function("entries: keys and values", |b| {
        let mut e = Entry::default();
        b.iter(|| {
            let mut it = k.entries(big.id).expect("entries");
            let mut count = 0u64;
            while it.next_into(&mut e).expect("entry") {
                count += 1;
            }
            assert_eq!(count, n);
        })
    });
    g.bench_function("core walk: element addresses only", |b| {
        let htab = Htab::new(k.mem(), &big, k.offsets()).expect("htab");
        b.iter(|| {
            let mut count = 0u64;
            for e in htab.iter(k.mem(), HtabLimits::default()) {
                black_box(e.expect("elem"));
                count += 1;
            }
            assert_eq!(count, n);
        })
    });
    g.finish();
}

criterion_group!(benches, image_walks);
criterion_main!(benches);
