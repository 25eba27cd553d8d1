//! `kernel show`: what discovery found in a memory image.

use serde_json::json;

use super::source::Source;
use super::{Failure, Out};

/// A CPU list as the kernel prints one (`0-3,6`).
pub fn cpu_list(cpus: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

pub fn show(src: &Source, out: &Out) -> Result<(), Failure> {
    let Source::Image(k) = src else {
        return Err(Failure::Usage(
            "kernel show reads a memory image: give --core, --ram, --kcore or --devmem".into(),
        ));
    };
    let info = k.vmcoreinfo();
    if out.json {
        return out.json_value(&json!({
            "release": info.osrelease(),
            "page_size": info.page_size(),
            "kaslr_offset": info.kernel_offset(),
            "phys_base": info.phys_base(),
            "paging_levels": k.paging_levels(),
            "page_offset_base": k.page_offset_base().get(),
            "nr_cpu_ids": k.nr_cpu_ids(),
            "possible_cpus": k.possible_cpus(),
            "kallsyms_symbols": k.kallsyms().num_syms(),
            "vmcoreinfo": k.vmcoreinfo_origin().to_string(),
            "btf": k.btf_origin().to_string(),
        }));
    }
    let mut t = String::new();
    t.push_str(&format!("release: {}\n", info.osrelease()));
    t.push_str(&format!("page size: {}\n", info.page_size()));
    match info.kernel_offset() {
        Some(o) => t.push_str(&format!("KASLR offset: {o:#x}\n")),
        None => t.push_str("KASLR offset: unknown\n"),
    }
    match info.phys_base() {
        Some(p) if p < 0 => t.push_str(&format!("phys_base: -{:#x}\n", p.unsigned_abs())),
        Some(p) => t.push_str(&format!("phys_base: {p:#x}\n")),
        None => t.push_str("phys_base: unknown\n"),
    }
    t.push_str(&format!("paging: {}-level\n", k.paging_levels()));
    t.push_str(&format!(
        "page_offset_base: {:#x}\n",
        k.page_offset_base().get()
    ));
    t.push_str(&format!(
        "possible CPUs: {} (nr_cpu_ids {})\n",
        cpu_list(k.possible_cpus()),
        k.nr_cpu_ids()
    ));
    t.push_str(&format!("kallsyms: {} symbols\n", k.kallsyms().num_syms()));
    t.push_str(&format!("VMCOREINFO: {}\n", k.vmcoreinfo_origin()));
    t.push_str(&format!("BTF: {}\n", k.btf_origin()));
    out.text(&t)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists() {
        assert_eq!(super::cpu_list(&[0, 1, 2, 3, 6]), "0-3,6");
        assert_eq!(super::cpu_list(&[1]), "1");
        assert_eq!(super::cpu_list(&[]), "");
    }
}
