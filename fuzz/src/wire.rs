//! Fuzz inputs on the wire: a fixed header of little-endian integers, decoded
//! by `arbitrary` (whose integers are little-endian and whose arrays and
//! tuples are their elements in order), then the rest of the input as bytes.
//! [`Encode`] writes a header the same way, so the seed generator can build
//! inputs that decode exactly.

/// Writes a value as `arbitrary` reads it.
pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
}

macro_rules! encode_int {
    ($($t:ty),*) => {
        $(impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        })*
    };
}
encode_int!(u8, u16, u32, u64, i8, i16, i32, i64);

impl<T: Encode, const N: usize> Encode for [T; N] {
    fn encode(&self, out: &mut Vec<u8>) {
        for t in self {
            t.encode(out);
        }
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
}

impl<A: Encode, B: Encode, C: Encode> Encode for (A, B, C) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
        self.2.encode(out);
    }
}

/// A header struct: `arbitrary` decodes it, [`Encode`] encodes it.
#[macro_export]
macro_rules! wire_struct {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, arbitrary::Arbitrary)]
        pub struct $name { $($(#[$fm])* pub $field: $ty,)* }

        impl $crate::wire::Encode for $name {
            fn encode(&self, out: &mut Vec<u8>) {
                $($crate::wire::Encode::encode(&self.$field, out);)*
            }
        }
    };
}

/// A whole input: the header, then the payload.
pub fn input<H: Encode>(header: &H, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    header.encode(&mut out);
    out.extend_from_slice(payload);
    out
}

/// Decode an input as a fuzz target does.
pub fn decode<'a, H: arbitrary::Arbitrary<'a>>(data: &'a [u8]) -> (H, &'a [u8]) {
    let u = arbitrary::Unstructured::new(data);
    <(H, &[u8]) as arbitrary::Arbitrary>::arbitrary_take_rest(u).expect("integers always decode")
}
