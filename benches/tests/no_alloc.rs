//! Walks allocate nothing once set up: a counting global allocator watches the
//! core walkers (xarray, hash tables with buffers reused through
//! `Htab::read_key_value`, arrays, per-CPU values, kallsyms lookups, address
//! translation) on synthetic memory and, when the test bed has made one, on a
//! real kernel's image; and the image accessor's `Entries::next_into` once its
//! buffers have grown to size.

use bpfmem::kernel::WANTED;
use bpfmem::{BpfMapAccessor, Entry};
use bpfmem_benches::alloc_count::{count, Counting};
use bpfmem_benches::synth::{self, HtabSpec, Synth};
use bpfmem_core::array::Array;
use bpfmem_core::htab::{Htab, HtabLimits};
use bpfmem_core::xarray::{idr_find, idr_for_each, XaLimits};
use bpfmem_core::Kva;

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn the_counter_counts() {
    let (n, v) = count(|| vec![1u8; 100]);
    assert_eq!((n, v.len()), (1, 100));
}

#[test]
fn synthetic_xarray_walk_and_lookup() {
    let mut s = Synth::new(16 << 20);
    let idr = synth::build_idr(&mut s, 5000);
    let off = synth::offsets();
    let k = s.kernel();
    let (allocs, seen) = count(|| {
        let mut it = idr_for_each(&k, idr, &off, XaLimits::default());
        let mut seen = 0u32;
        while let Some((id, _)) = it.next().unwrap() {
            assert!(idr_find(&k, idr, id.into(), &off).unwrap().is_some());
            seen += 1;
        }
        seen
    });
    assert_eq!((allocs, seen), (0, 5000));
}

#[test]
fn synthetic_htab_walks_with_reused_buffers() {
    for prealloc in [true, false] {
        let mut s = Synth::new(64 << 20);
        let spec = HtabSpec {
            key_size: 12,
            value_size: 20,
            max_entries: 16384,
            prealloc,
            entries: 10_000,
        };
        let map = synth::build_htab(&mut s, spec);
        let off = synth::offsets();
        let k = s.kernel();
        let htab = Htab::new(&k, &map, &off).unwrap();
        let (mut key, mut value) = ([0u8; 12], [0u8; 20]);
        let (allocs, sum) = count(|| {
            let mut sum = 0u64;
            for e in htab.iter(&k, HtabLimits::default()) {
                htab.read_key_value(&k, &e.unwrap(), &mut key, &mut value)
                    .unwrap();
                let i = u32::from_le_bytes(key[..4].try_into().unwrap());
                assert_eq!(value[3], synth::value_byte(i.into(), 3));
                sum += u64::from(i);
            }
            sum
        });
        assert_eq!(
            (allocs, sum),
            (0, (0..10_000u64).sum()),
            "prealloc {prealloc}"
        );
    }
}

#[test]
fn synthetic_array_and_percpu_reads() {
    let mut s = Synth::new(16 << 20);
    let map = synth::build_array(&mut s, 1000, 64);
    let (pmap, pcpu) = synth::build_percpu_array(&mut s, 12, 64);
    let off = synth::offsets();
    let k = s.kernel();
    let a = Array::new(&k, &map, &off).unwrap();
    let p = Array::new(&k, &pmap, &off).unwrap();
    let mut buf = [0u8; 1000];
    let mut v = [0u8; 12];
    let (allocs, ()) = count(|| {
        for key in 0..64 {
            a.read_value(&k, key, 0, &mut buf).unwrap();
            assert_eq!(buf[999], synth::value_byte(key.into(), 999));
            for cpu in 0..synth::NR_CPUS {
                p.read_percpu_value(&k, key, &pcpu, cpu, 0, &mut v).unwrap();
            }
        }
        for (key, elem) in a.iter(&k).map(Result::unwrap) {
            assert!(matches!(elem, bpfmem_core::array::ArrayElem::Value(_)) && key < 64);
        }
    });
    assert_eq!(allocs, 0);
}

#[test]
fn synthetic_kallsyms_lookups() {
    let mut s = Synth::new(16 << 20);
    let (syms, names) = synth::build_kallsyms(&mut s, 20_000);
    let k = s.kernel();
    let ks = synth::kallsyms(&k, &syms);
    let want = [names[100].as_str(), names[19_999].as_str()];
    let mut out = [None; 2];
    let (allocs, ()) = count(|| {
        assert_eq!(
            ks.lookup(&k, &names[12_345]).unwrap(),
            Some(synth::kallsyms_addr(12_345))
        );
        ks.lookup_many(&k, &want, &mut out).unwrap();
        let mut it = ks.iter(&k);
        while let Some(sym) = it.next().unwrap() {
            assert_eq!(sym.addr(), synth::kallsyms_addr(sym.index()));
        }
    });
    assert_eq!(allocs, 0);
    assert_eq!(
        out,
        [
            Some(synth::kallsyms_addr(100)),
            Some(synth::kallsyms_addr(19_999))
        ]
    );
}

#[test]
fn synthetic_translation() {
    let mut s = Synth::new(16 << 20);
    let area = s.vmalloc(1 << 20);
    let k = s.kernel();
    let tr = s.translator();
    let phys = s.phys();
    let (allocs, ()) = count(|| {
        for i in 0..256u64 {
            let kva = Kva(area.get() + i * 4096);
            assert_eq!(k.translate(kva).unwrap(), tr.walk(&phys, kva).unwrap());
        }
    });
    assert_eq!(allocs, 0);
}

/// The same walks on the test bed's image, when there is one.
#[test]
fn real_image_walks() {
    let Some(k) = bpfmem_benches::testbed_kernel() else {
        eprintln!("SKIPPED: no test-bed image");
        return;
    };
    let big = bpfmem_benches::map_named(&k, "hash_big");
    let nopre = bpfmem_benches::map_named(&k, "hash_nopre");
    let arr = bpfmem_benches::map_named(&k, "arr_v1000");
    let map_idr = k.symbols().map_idr.unwrap();
    let mut out = [None; WANTED.len()];
    let htabs = [big, nopre].map(|m| Htab::new(k.mem(), &m, k.offsets()).unwrap());
    let a = Array::new(k.mem(), &arr, k.offsets()).unwrap();
    let mut key = [0u8; 8];
    let mut value = [0u8; 16];
    let mut buf = [0u8; 1000];
    let (allocs, n) = count(|| {
        let mut n = 0u64;
        for (h, m) in htabs.iter().zip([big, nopre]) {
            let (key, value) = (
                &mut key[..m.key_size as usize],
                &mut value[..m.value_size as usize],
            );
            for e in h.iter(k.mem(), HtabLimits::default()) {
                h.read_key_value(k.mem(), &e.unwrap(), key, value).unwrap();
                n += 1;
            }
        }
        for key in 0..arr.max_entries {
            a.read_value(k.mem(), key, 0, &mut buf).unwrap();
        }
        let mut ids = idr_for_each(k.mem(), map_idr, k.offsets(), XaLimits::default());
        while let Some((id, _)) = ids.next().unwrap() {
            assert!(idr_find(k.mem(), map_idr, id.into(), k.offsets())
                .unwrap()
                .is_some());
        }
        k.kallsyms()
            .lookup_many(k.mem(), &WANTED, &mut out)
            .unwrap();
        n
    });
    assert_eq!(allocs, 0);
    assert!(n > 100_000, "{n} elements");
}

/// `Entries::next_into` of the image accessor: the boxed stream is set-up,
/// the first entry sizes the buffers, and from then on nothing is allocated.
#[test]
fn real_image_accessor_steady_state() {
    let Some(k) = bpfmem_benches::testbed_kernel() else {
        eprintln!("SKIPPED: no test-bed image");
        return;
    };
    for name in [
        "hash_big",
        "hash_nopre",
        "pcpu_hash",
        "arr_v1000",
        "pcpu_arr",
    ] {
        let m = bpfmem_benches::map_named(&k, name);
        let mut it = k.entries(m.id).unwrap();
        let mut e = Entry::default();
        assert!(it.next_into(&mut e).unwrap());
        let (allocs, n) = count(|| {
            let mut n = 1u64;
            while it.next_into(&mut e).unwrap() {
                n += 1;
            }
            n
        });
        assert_eq!(allocs, 0, "{name}: {allocs} allocations over {n} entries");
    }
}
