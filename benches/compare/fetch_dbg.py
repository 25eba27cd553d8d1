#!/usr/bin/env python3
"""Fetch the DWARF vmlinux of a Debian kernel: `linux-image-<release>-dbg`.

drgn needs type information to read a memory image; Debian ships it in the
kernel's -dbg package. Like the test bed (tests/src/apt.rs), this uses a
private apt state whose archive address is read from the machine's own apt
configuration (no registry address is written here), `apt-get download`s the
package, and unpacks only `usr/lib/debug/boot/vmlinux-<release>` from it.

    fetch_dbg.py RELEASE STATE_DIR OUT_VMLINUX

Prints the path of the vmlinux. Does nothing when OUT_VMLINUX exists.
"""

import glob
import os
import subprocess
import sys

DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def archive_from_sources(text):
    """The main Debian archive in apt sources text (deb822 or one-line), as
    (uri, signed_by, suite); security and backports-only entries are passed
    over. The same rules as tests/src/apt.rs `archive_from_sources`."""
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
        uris, suites = fields.get("uris"), fields.get("suites")
        if uris and suites:
            mains = [s for s in suites.split() if "-" not in s and s != "sid"]
            uri = uris.split()[0]
            if mains and "security" not in uri:
                return uri, fields.get("signed-by", DEFAULT_KEYRING), mains[0]
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        signed_by = DEFAULT_KEYRING
        if rest.startswith("["):
            opts, _, rest = rest[1:].partition("]")
            for o in opts.split():
                if o.startswith("signed-by="):
                    signed_by = o[len("signed-by="):]
        words = rest.split()
        if len(words) >= 2 and "-" not in words[1] and "security" not in words[0]:
            return words[0], signed_by, words[1]
    return None


def machine_archive():
    files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*"))
    for f in files:
        if not (f.endswith(".list") or f.endswith(".sources")):
            continue
        try:
            text = open(f).read()
        except OSError:
            continue
        found = archive_from_sources(text)
        if found:
            return found
    sys.exit("fetch_dbg: no Debian archive in /etc/apt/sources.list{,.d}")


def apt_options(state):
    return [
        f"-oDir::Etc::SourceList={state}/etc/sources.list",
        "-oDir::Etc::SourceParts=/nonexistent",
        f"-oDir::State::Lists={state}/lists",
        f"-oDir::Cache={state}/cache",
        "-oDir::State::status=/dev/null",
        "-oDebug::NoLocking=1",
        "-oAPT::Sandbox::User=root",
        "-qq",
    ]


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    release, state, out = sys.argv[1:]
    if os.path.exists(out):
        print(out)
        return
    uri, signed_by, suite = machine_archive()
    for sub in ["lists/partial", "cache/archives/partial", "etc", "debs"]:
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    # The machine's suite and its backports (Debian's newer kernels live there).
    with open(os.path.join(state, "etc/sources.list"), "w") as f:
        for s in [suite, f"{suite}-backports"]:
            f.write(f"deb [signed-by={signed_by}] {uri} {s} main\n")
    opts = apt_options(state)
    subprocess.run(["apt-get", *opts, "update"], check=True)
    pkg = f"linux-image-{release}-dbg"
    debs = os.path.join(state, "debs")
    subprocess.run(["apt-get", *opts, "download", pkg], cwd=debs, check=True)
    deb = [p for p in glob.glob(os.path.join(debs, f"{pkg}_*.deb"))]
    if not deb:
        sys.exit(f"fetch_dbg: apt-get download {pkg} left no .deb")
    member = f"./usr/lib/debug/boot/vmlinux-{release}"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".part"
    with open(tmp, "wb") as f:
        fsys = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb[0]], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-xO", member], stdin=fsys.stdout, stdout=f, check=True)
        if fsys.wait() != 0:
            sys.exit(f"fetch_dbg: dpkg-deb failed on {deb[0]}")
    os.rename(tmp, out)
    # The package is 300 MB; only the vmlinux is kept.
    for d in deb:
        os.remove(d)
    print(out)


if __name__ == "__main__":
    main()
