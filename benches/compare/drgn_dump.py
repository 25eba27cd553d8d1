"""drgn's side of the memory-image comparison: what `bpfmem --core DUMP map
show` and `bpfmem --core DUMP -j map dump id N` do, done with drgn on the same
dump, as a drgn user would write it.

    drgn -c DUMP -s VMLINUX drgn_dump.py show
    drgn -c DUMP -s VMLINUX drgn_dump.py dump ID
    drgn -c DUMP -s VMLINUX drgn_dump.py dump-helpers ID

`show` lists every map in bpftool's plain layout (drgn's `bpf_map_for_each`).
`dump` walks a HASH map the way kernel/bpf/hashtab.c lays it out: every bucket
of `htab->buckets`, each `hlist_nulls` chain to its nulls marker, reading each
element's key and value in one read (value at `key + round_up(key_size, 8)`)
and printing bpftool's JSON (`[{"key":["0x..",...],"value":[...]},...]`).
Structure offsets come from the DWARF; the walk itself uses drgn's raw reads
(the bucket array in one `prog.read`, then `prog.read_u64` per link), the
fastest way we found to do it with drgn. `dump-helpers` is the same walk with
drgn's `hlist_nulls_for_each_entry` and typed objects, as its helpers invite
(about 2.5 times slower). Per-CPU hashes are not handled (not needed here). The walk's own time, without drgn's startup,
goes to stderr as `drgn-walk-seconds N entries M`, and is appended to the file
`$BPFMEM_DRGN_WALK_LOG` names, if any (hyperfine discards stderr).
"""

import os
import struct
import sys
import time

from drgn import cast, container_of, offsetof, sizeof
from drgn.helpers.linux.bpf import bpf_map_for_each
from drgn.helpers.linux.idr import idr_find
from drgn.helpers.linux.list_nulls import hlist_nulls_for_each_entry

HEX = ['"0x%02x"' % b for b in range(256)]


def hex_json(data):
    return "[" + ",".join([HEX[b] for b in data]) + "]"


def type_name(map_type):
    name = map_type.format_(type_name=False)
    return name.removeprefix("BPF_MAP_TYPE_").lower()


def show():
    out = []
    for m in bpf_map_for_each(prog):
        line = "%d: %s  " % (m.id.value_(), type_name(m.map_type))
        name = m.name.string_().decode()
        if name:
            line += "name %s  " % name
        line += "flags 0x%x" % m.map_flags.value_()
        out.append(line)
        out.append(
            "\tkey %dB  value %dB  max_entries %d"
            % (m.key_size.value_(), m.value_size.value_(), m.max_entries.value_())
        )
        if m.btf:
            out.append("\tbtf_id %d" % m.btf.id.value_())
    sys.stdout.write("\n".join(out) + "\n")


def find_htab(map_id):
    m = idr_find(prog["map_idr"].address_of_(), map_id)
    if not m:
        sys.exit("no map with id %d" % map_id)
    m = cast("struct bpf_map *", m)
    if type_name(m.map_type) not in ("hash", "lru_hash"):
        sys.exit("map %d is not a hash map" % map_id)
    return m, container_of(m, "struct bpf_htab", "map")


def elements_raw(m, htab):
    """(key, value) bytes of every element, with raw reads."""
    key_size = m.key_size.value_()
    value_off = (key_size + 7) & ~7
    span = value_off + m.value_size.value_()
    n = htab.n_buckets.value_()
    bucket_size = sizeof(prog.type("struct bucket"))
    head_off = offsetof(prog.type("struct bucket"), "head")
    elem_type = prog.type("struct htab_elem")
    node_off = offsetof(elem_type, "hash_node")
    key_off = offsetof(elem_type, "key")
    heads = prog.read(htab.buckets.value_(), n * bucket_size)
    read, read_u64 = prog.read, prog.read_u64
    for i in range(n):
        (node,) = struct.unpack_from("<Q", heads, i * bucket_size + head_off)
        while not node & 1:  # is_a_nulls()
            data = read(node - node_off + key_off, span)
            yield data[:key_size], data[value_off:]
            node = read_u64(node)  # hlist_nulls_node.next


def elements_helpers(m, htab):
    """(key, value) bytes of every element, with drgn's list helpers."""
    key_size = m.key_size.value_()
    value_off = (key_size + 7) & ~7
    span = value_off + m.value_size.value_()
    buckets = htab.buckets
    for i in range(htab.n_buckets.value_()):
        head = buckets[i].head.address_of_()
        for elem in hlist_nulls_for_each_entry("struct htab_elem", head, "hash_node"):
            data = prog.read(elem.key.address_, span)
            yield data[:key_size], data[value_off:]


def dump(map_id, elements):
    start = time.perf_counter()
    m, htab = find_htab(map_id)
    w = sys.stdout.write
    sep = "["
    count = 0
    for key, value in elements(m, htab):
        w('%s{"key":%s,"value":%s}' % (sep, hex_json(key), hex_json(value)))
        sep = ","
        count += 1
    w("[]\n" if count == 0 else "]\n")
    sys.stdout.flush()
    line = "drgn-walk-seconds %.6f entries %d" % (time.perf_counter() - start, count)
    print(line, file=sys.stderr)
    log = os.environ.get("BPFMEM_DRGN_WALK_LOG")
    if log:
        with open(log, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["show"]:
        show()
    elif sys.argv[1:2] == ["dump"] and len(sys.argv) == 3:
        dump(int(sys.argv[2]), elements_raw)
    elif sys.argv[1:2] == ["dump-helpers"] and len(sys.argv) == 3:
        dump(int(sys.argv[2]), elements_helpers)
    else:
        sys.exit(__doc__)
