//! Memory-image builders, as the core crate's unit tests build theirs.

/// Kernel memory as one run of bytes at `base`, allocated upward.
pub struct Img {
    pub base: u64,
    pub bytes: Vec<u8>,
}

impl Img {
    pub fn new(base: u64) -> Self {
        Img {
            base,
            bytes: Vec::new(),
        }
    }

    pub fn alloc(&mut self, size: usize, align: usize) -> u64 {
        let at = self.bytes.len().next_multiple_of(align);
        self.bytes.resize(at + size, 0);
        self.base + at as u64
    }

    /// Pad to `len` bytes.
    pub fn pad(&mut self, len: usize) {
        if self.bytes.len() < len {
            self.bytes.resize(len, 0);
        }
    }

    fn pos(&self, at: u64) -> usize {
        (at - self.base) as usize
    }

    pub fn put(&mut self, at: u64, v: &[u8]) {
        let p = self.pos(at);
        if self.bytes.len() < p + v.len() {
            self.bytes.resize(p + v.len(), 0);
        }
        self.bytes[p..p + v.len()].copy_from_slice(v);
    }

    pub fn put_u8(&mut self, at: u64, v: u8) {
        self.put(at, &[v]);
    }

    pub fn put_u32(&mut self, at: u64, v: u32) {
        self.put(at, &v.to_le_bytes());
    }

    pub fn put_u64(&mut self, at: u64, v: u64) {
        self.put(at, &v.to_le_bytes());
    }

    pub fn get_u64(&self, at: u64) -> u64 {
        let p = self.pos(at);
        u64::from_le_bytes(self.bytes[p..p + 8].try_into().unwrap())
    }

    pub fn get_u8(&self, at: u64) -> u8 {
        self.bytes[self.pos(at)]
    }
}

// xa_node as v6.x lays it out (shift 0, offset 1, parent 8, slots 40).
pub const XA_NODE_SIZE: usize = 576;
const XA_HEAD: u64 = 8;

fn xa_mk_node(node: u64) -> u64 {
    node | 2
}

fn xa_is_node(e: u64) -> bool {
    e & 3 == 2 && e > 4096
}

pub fn xa_mk_value(v: u64) -> u64 {
    (v << 1) | 1
}

pub fn xa_mk_sibling(s: u8) -> u64 {
    (u64::from(s) << 2) | 2
}

pub fn slot(node: u64, offset: u8) -> u64 {
    node + 40 + 8 * u64::from(offset)
}

/// `xas_alloc()`: a node at `shift`, child of slot `offset` of `parent`.
pub fn xa_node(img: &mut Img, shift: u8, parent: Option<(u64, u8)>) -> u64 {
    let node = img.alloc(XA_NODE_SIZE, 64);
    img.put_u8(node, shift);
    if let Some((parent, offset)) = parent {
        img.put_u8(node + 1, offset);
        img.put_u64(node + 8, parent);
    }
    node
}

/// `xa_store()` of a non-NULL entry into the `struct xarray` at `xa`: grow
/// the root like `xas_expand()`, then create the path like `xas_create()`.
pub fn xa_store(img: &mut Img, xa: u64, index: u64, entry: u64) {
    let head_at = xa + XA_HEAD;
    let mut need = 0u8;
    while need < 60 && index >> need > 63 {
        need += 6;
    }
    let head = img.get_u64(head_at);
    if head == 0 && index == 0 {
        return img.put_u64(head_at, entry);
    }
    if head == 0 {
        let root = xa_node(img, need, None);
        img.put_u64(head_at, xa_mk_node(root));
    } else if !xa_is_node(head) {
        let root = xa_node(img, 0, None);
        img.put_u64(slot(root, 0), head);
        img.put_u64(head_at, xa_mk_node(root));
    }
    loop {
        let root = img.get_u64(head_at) - 2;
        let shift = img.get_u8(root);
        if shift >= need {
            break;
        }
        let up = xa_node(img, shift + 6, None);
        img.put_u64(slot(up, 0), xa_mk_node(root));
        img.put_u8(root + 1, 0);
        img.put_u64(root + 8, up);
        img.put_u64(head_at, xa_mk_node(up));
    }
    let mut node = img.get_u64(head_at) - 2;
    loop {
        let shift = img.get_u8(node);
        let offset = ((index >> shift) & 63) as u8;
        if shift == 0 {
            return img.put_u64(slot(node, offset), entry);
        }
        let child = img.get_u64(slot(node, offset));
        node = if child == 0 {
            let c = xa_node(img, shift - 6, Some((node, offset)));
            img.put_u64(slot(node, offset), xa_mk_node(c));
            c
        } else {
            child - 2
        };
    }
}
