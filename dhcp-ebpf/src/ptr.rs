//! Bounds-checked packet access, the aya idiom: every access proves `start + off + size <= end`
//! right before it, on the very pointer it dereferences.
use aya_ebpf::programs::XdpContext;
use dhcp_common::Stat;

#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
pub fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Result<*const T, Stat> {
    let start = ctx.data();
    let end = ctx.data_end();
    // Opaque so LLVM cannot re-derive the pointer after the check (the verifier would then see
    // a pointer with no proven range).
    let p = opaque(start + off);
    if p + size_of::<T>() > end {
        return Err(Stat::PassTruncated);
    }
    Ok(p as *const T)
}

#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
pub fn ptr_at_mut<T>(ctx: &XdpContext, off: usize) -> Result<*mut T, Stat> {
    ptr_at::<T>(ctx, off).map(<*const T>::cast_mut)
}

#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
pub fn read<T: Copy>(ctx: &XdpContext, off: usize) -> Result<T, Stat> {
    // SAFETY: ptr_at proved `off + size_of::<T>()` within the frame; the read is unaligned.
    Ok(unsafe { ptr_at::<T>(ctx, off)?.read_unaligned() })
}

/// For offsets the compiler knows: nothing to hide from LLVM, and the barrier's register
/// pressure is saved on the path every packet takes.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
pub fn read_fixed<T: Copy>(ctx: &XdpContext, off: usize) -> Result<T, Stat> {
    let p = ctx.data() + off;
    if p + size_of::<T>() > ctx.data_end() {
        return Err(Stat::PassTruncated);
    }
    // SAFETY: checked just above that the `T` ends within the frame; the read is unaligned.
    Ok(unsafe { (p as *const T).read_unaligned() })
}

/// The value, with everything LLVM knew about it forgotten: libbpf's `barrier_var`, an empty
/// asm statement that claims to rewrite the register. `core::hint::black_box` does the same by
/// a store and a reload through the stack, which put a store-to-load forward (~5 cycles) on
/// every use; in the option scan that was three per option, on the loop's critical path.
#[inline(always)]
#[expect(clippy::inline_always, reason = "eBPF: a call costs verifier budget and a spill")]
pub fn opaque(mut v: usize) -> usize {
    // A move onto itself rather than an empty template: an asm statement of no instructions
    // gets a BTF line record at the same offset as the one before it, which the kernel refuses.
    // SAFETY: the register keeps its value.
    unsafe {
        core::arch::asm!("{0} = {0}", inout(reg) v, options(nomem, nostack, preserves_flags));
    }
    v
}
