//! Linux BPF uapi layouts (`include/uapi/linux/bpf.h`).
