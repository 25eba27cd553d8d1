//! Address newtypes. Physical and kernel-virtual addresses never mix: there is no
//! `Add`/`Sub` between them, and translation is the only way from one to the other.

use core::fmt;

macro_rules! address {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw address.
            #[inline]
            pub const fn get(self) -> u64 {
                self.0
            }

            /// `self + off`, or `None` on overflow.
            #[inline]
            pub const fn checked_add(self, off: u64) -> Option<Self> {
                match self.0.checked_add(off) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// `self - off`, or `None` on underflow.
            #[inline]
            pub const fn checked_sub(self, off: u64) -> Option<Self> {
                match self.0.checked_sub(off) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// `self + off` modulo 2^64 (kernel arithmetic such as `phys_base` wraps).
            #[inline]
            pub const fn wrapping_add(self, off: u64) -> Self {
                Self(self.0.wrapping_add(off))
            }

            /// `self - base`, or `None` when `self` lies below `base`.
            #[inline]
            pub const fn offset_from(self, base: Self) -> Option<u64> {
                self.0.checked_sub(base.0)
            }

            /// The offset of this address inside a page of `page_size` bytes
            /// (a power of two).
            #[inline]
            pub const fn page_offset(self, page_size: u64) -> u64 {
                self.0 & page_size.wrapping_sub(1)
            }

            /// Round down to a multiple of `align` (a power of two).
            #[inline]
            pub const fn align_down(self, align: u64) -> Self {
                Self(self.0 & !align.wrapping_sub(1))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, " {:#x}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, " {:#x}"), self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address!(
    /// A guest physical address.
    Pa,
    "pa"
);
address!(
    /// A kernel virtual address.
    Kva,
    "kva"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_arithmetic() {
        assert_eq!(Pa(u64::MAX).checked_add(1), None);
        assert_eq!(Pa(0).checked_sub(1), None);
        assert_eq!(Kva(0x1000).checked_add(0x10), Some(Kva(0x1010)));
        assert_eq!(Pa(0x1234).offset_from(Pa(0x1000)), Some(0x234));
        assert_eq!(Pa(0x1000).offset_from(Pa(0x1234)), None);
        assert_eq!(Kva(0x1fff).page_offset(0x1000), 0xfff);
        assert_eq!(Kva(0x1fff).align_down(0x1000), Kva(0x1000));
        assert_eq!(Pa(5).wrapping_add(u64::MAX), Pa(4));
    }

    #[test]
    fn display_names_the_space() {
        use std::format;
        assert_eq!(format!("{}", Pa(0x10)), "pa 0x10");
        assert_eq!(format!("{}", Kva(0xffff)), "kva 0xffff");
    }
}
