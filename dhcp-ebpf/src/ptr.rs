//! Bounds-checked packet access, the aya idiom: every access proves `start + off + size <= end`
//! right before it, on the very pointer it dereferences.
use aya_ebpf::programs::XdpContext;
use dhcp_common::Stat;

#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Result<*const T, Stat> {
    let start = ctx.data();
    let end = ctx.data_end();
    // black_box keeps LLVM from re-deriving the pointer after the check (the verifier would then
    // see a pointer with no proven range).
    let p = core::hint::black_box(start + off);
    if p + size_of::<T>() > end {
        return Err(Stat::PassTruncated);
    }
    Ok(p as *const T)
}

#[inline(always)]
pub fn ptr_at_mut<T>(ctx: &XdpContext, off: usize) -> Result<*mut T, Stat> {
    ptr_at::<T>(ctx, off).map(|p| p as *mut T)
}

#[inline(always)]
pub fn read<T: Copy>(ctx: &XdpContext, off: usize) -> Result<T, Stat> {
    Ok(unsafe { ptr_at::<T>(ctx, off)?.read_unaligned() })
}

/// For offsets the compiler knows: nothing to hide from LLVM, and the spill `black_box` costs
/// is saved on the path every packet takes.
#[inline(always)]
pub fn read_fixed<T: Copy>(ctx: &XdpContext, off: usize) -> Result<T, Stat> {
    let p = ctx.data() + off;
    if p + size_of::<T>() > ctx.data_end() {
        return Err(Stat::PassTruncated);
    }
    Ok(unsafe { (p as *const T).read_unaligned() })
}
