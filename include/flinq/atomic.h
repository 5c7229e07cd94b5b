/*
 * flinq/atomic.h: the few atomic operations flinq's structures need.
 *
 * Contract: every operation names its type and memory order in its name
 * (flq_load_u64_acquire, flq_cas_u64_acq_rel, ...), so a reader sees the
 * ordering argument at the call site. The operands are plain, naturally
 * aligned integers and pointers; they must be accessed only through these
 * functions while more than one thread can see them.
 *
 * The C11 backend casts plain integers to _Atomic types, as CPython's
 * pyatomic_std.h does: not promised by the standard, but what every
 * C11 compiler flinq is built with does.
 *
 * One backend is chosen per compiler:
 *   - GCC and Clang (including Apple clang): the __atomic builtins;
 *   - MSVC: Interlocked intrinsics and barriers. MSVC is detected by
 *     _MSC_VER, never by __STDC_NO_ATOMICS__, which MSVC keeps defined even
 *     when /experimental:c11atomics makes <stdatomic.h> usable;
 *   - any other C11 compiler: <stdatomic.h>. Defining FLQ_ATOMICS_C11
 *     selects this backend on any compiler (the C tests build it so).
 * Pure C, no Python.h.
 */
#ifndef FLINQ_ATOMIC_H
#define FLINQ_ATOMIC_H

#include <stddef.h>
#include <stdint.h>

#if defined(_MSC_VER) && !defined(__clang__)
#  define FLQ_INLINE static __forceinline
#  define FLQ_CACHELINE_ALIGNED __declspec(align(64))
#elif defined(__GNUC__) || defined(__clang__)
#  define FLQ_INLINE static inline __attribute__((always_inline))
#  define FLQ_CACHELINE_ALIGNED __attribute__((aligned(64)))
#else
#  define FLQ_INLINE static inline
#  define FLQ_CACHELINE_ALIGNED _Alignas(64)
#endif

#define FLQ_CACHELINE 64

#if (defined(__GNUC__) || defined(__clang__)) && !defined(FLQ_ATOMICS_C11)
/* ---------------------------------------------------------------- GCC/Clang */

FLQ_INLINE uint64_t flq_load_u64_relaxed(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
FLQ_INLINE uint64_t flq_load_u64_acquire(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
FLQ_INLINE uint64_t flq_load_u64_seq_cst(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
FLQ_INLINE void flq_store_u64_relaxed(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
FLQ_INLINE void flq_store_u64_release(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
FLQ_INLINE uint64_t flq_fetch_add_u64_seq_cst(uint64_t *p, uint64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
FLQ_INLINE uint64_t flq_fetch_sub_u64_release(uint64_t *p, uint64_t v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELEASE); }
/* On failure *expected receives the current value. */
FLQ_INLINE int flq_cas_u64_acq_rel(uint64_t *p, uint64_t *expected, uint64_t desired)
{
    return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

FLQ_INLINE uint32_t flq_load_u32_relaxed(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
FLQ_INLINE uint32_t flq_load_u32_acquire(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
FLQ_INLINE void flq_store_u32_release(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
FLQ_INLINE uint32_t flq_fetch_add_u32_relaxed(uint32_t *p, uint32_t v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
FLQ_INLINE uint32_t flq_fetch_sub_u32_relaxed(uint32_t *p, uint32_t v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }

FLQ_INLINE void *flq_load_ptr_relaxed(void *const *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
FLQ_INLINE void *flq_load_ptr_acquire(void *const *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
FLQ_INLINE void *flq_load_ptr_seq_cst(void *const *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
FLQ_INLINE void flq_store_ptr_relaxed(void **p, void *v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
FLQ_INLINE void flq_store_ptr_release(void **p, void *v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
FLQ_INLINE int flq_cas_ptr_seq_cst(void **p, void **expected, void *desired)
{
    return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

FLQ_INLINE void flq_fence_seq_cst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

#elif defined(_MSC_VER) && !defined(FLQ_ATOMICS_C11)
/* --------------------------------------------------------------------- MSVC */
/* Pointers are handled as 64-bit integers below. */
#if !defined(_WIN64)
#  error "flinq/atomic.h supports 64-bit Windows targets only"
#endif
#ifndef WIN32_LEAN_AND_MEAN
#  define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#  define NOMINMAX
#endif
#include <intrin.h>
#include <windows.h> /* MemoryBarrier */

/* x86/x64 are TSO: a compiler barrier orders acquire loads and release
 * stores. ARM64 needs a real barrier (dmb ish) on those paths. */
#if defined(_M_ARM64) || defined(_M_ARM64EC)
#  define FLQ_MSVC_ACQ_REL_BARRIER() __dmb(_ARM64_BARRIER_ISH)
#else
#  define FLQ_MSVC_ACQ_REL_BARRIER() _ReadWriteBarrier()
#endif

FLQ_INLINE uint64_t flq_load_u64_relaxed(const uint64_t *p) { return (uint64_t)__iso_volatile_load64((const volatile __int64 *)p); }
FLQ_INLINE uint64_t flq_load_u64_acquire(const uint64_t *p)
{
    uint64_t v = (uint64_t)__iso_volatile_load64((const volatile __int64 *)p);
    FLQ_MSVC_ACQ_REL_BARRIER(); /* later accesses stay after this load */
    return v;
}
FLQ_INLINE uint64_t flq_load_u64_seq_cst(const uint64_t *p)
{
    return (uint64_t)_InterlockedCompareExchange64((volatile __int64 *)p, 0, 0);
}
FLQ_INLINE void flq_store_u64_relaxed(uint64_t *p, uint64_t v) { __iso_volatile_store64((volatile __int64 *)p, (__int64)v); }
FLQ_INLINE void flq_store_u64_release(uint64_t *p, uint64_t v)
{
    FLQ_MSVC_ACQ_REL_BARRIER(); /* earlier accesses stay before this store */
    __iso_volatile_store64((volatile __int64 *)p, (__int64)v);
}
FLQ_INLINE uint64_t flq_fetch_add_u64_seq_cst(uint64_t *p, uint64_t v) { return (uint64_t)_InterlockedExchangeAdd64((volatile __int64 *)p, (__int64)v); }
FLQ_INLINE uint64_t flq_fetch_sub_u64_release(uint64_t *p, uint64_t v) { return (uint64_t)_InterlockedExchangeAdd64((volatile __int64 *)p, -(__int64)v); }
FLQ_INLINE int flq_cas_u64_acq_rel(uint64_t *p, uint64_t *expected, uint64_t desired)
{
    __int64 seen = _InterlockedCompareExchange64((volatile __int64 *)p, (__int64)desired, (__int64)*expected);
    if ((uint64_t)seen == *expected) return 1;
    *expected = (uint64_t)seen;
    return 0;
}

FLQ_INLINE uint32_t flq_load_u32_relaxed(const uint32_t *p) { return (uint32_t)__iso_volatile_load32((const volatile __int32 *)p); }
FLQ_INLINE uint32_t flq_load_u32_acquire(const uint32_t *p)
{
    uint32_t v = (uint32_t)__iso_volatile_load32((const volatile __int32 *)p);
    FLQ_MSVC_ACQ_REL_BARRIER(); /* later accesses stay after this load */
    return v;
}
FLQ_INLINE void flq_store_u32_release(uint32_t *p, uint32_t v)
{
    FLQ_MSVC_ACQ_REL_BARRIER(); /* earlier accesses stay before this store */
    __iso_volatile_store32((volatile __int32 *)p, (__int32)v);
}
FLQ_INLINE uint32_t flq_fetch_add_u32_relaxed(uint32_t *p, uint32_t v) { return (uint32_t)_InterlockedExchangeAdd((volatile long *)p, (long)v); }
FLQ_INLINE uint32_t flq_fetch_sub_u32_relaxed(uint32_t *p, uint32_t v) { return (uint32_t)_InterlockedExchangeAdd((volatile long *)p, -(long)v); }

FLQ_INLINE void *flq_load_ptr_relaxed(void *const *p) { return (void *)__iso_volatile_load64((const volatile __int64 *)p); }
FLQ_INLINE void *flq_load_ptr_acquire(void *const *p)
{
    void *v = (void *)__iso_volatile_load64((const volatile __int64 *)p);
    FLQ_MSVC_ACQ_REL_BARRIER(); /* later accesses stay after this load */
    return v;
}
FLQ_INLINE void *flq_load_ptr_seq_cst(void *const *p) { return _InterlockedCompareExchangePointer((void *volatile *)p, NULL, NULL); }
FLQ_INLINE void flq_store_ptr_relaxed(void **p, void *v) { __iso_volatile_store64((volatile __int64 *)p, (__int64)v); }
FLQ_INLINE void flq_store_ptr_release(void **p, void *v)
{
    FLQ_MSVC_ACQ_REL_BARRIER(); /* earlier accesses stay before this store */
    __iso_volatile_store64((volatile __int64 *)p, (__int64)v);
}
FLQ_INLINE int flq_cas_ptr_seq_cst(void **p, void **expected, void *desired)
{
    void *seen = _InterlockedCompareExchangePointer((void *volatile *)p, desired, *expected);
    if (seen == *expected) return 1;
    *expected = seen;
    return 0;
}

FLQ_INLINE void flq_fence_seq_cst(void) { MemoryBarrier(); }

#else
/* ---------------------------------------------------------------------- C11 */
#include <stdatomic.h>

#define FLQ_A64(p) ((_Atomic(uint64_t) *)(p))
#define FLQ_A32(p) ((_Atomic(uint32_t) *)(p))
#define FLQ_APTR(p) ((_Atomic(void *) *)(p))

FLQ_INLINE uint64_t flq_load_u64_relaxed(const uint64_t *p) { return atomic_load_explicit(FLQ_A64(p), memory_order_relaxed); }
FLQ_INLINE uint64_t flq_load_u64_acquire(const uint64_t *p) { return atomic_load_explicit(FLQ_A64(p), memory_order_acquire); }
FLQ_INLINE uint64_t flq_load_u64_seq_cst(const uint64_t *p) { return atomic_load_explicit(FLQ_A64(p), memory_order_seq_cst); }
FLQ_INLINE void flq_store_u64_relaxed(uint64_t *p, uint64_t v) { atomic_store_explicit(FLQ_A64(p), v, memory_order_relaxed); }
FLQ_INLINE void flq_store_u64_release(uint64_t *p, uint64_t v) { atomic_store_explicit(FLQ_A64(p), v, memory_order_release); }
FLQ_INLINE uint64_t flq_fetch_add_u64_seq_cst(uint64_t *p, uint64_t v) { return atomic_fetch_add_explicit(FLQ_A64(p), v, memory_order_seq_cst); }
FLQ_INLINE uint64_t flq_fetch_sub_u64_release(uint64_t *p, uint64_t v) { return atomic_fetch_sub_explicit(FLQ_A64(p), v, memory_order_release); }
FLQ_INLINE int flq_cas_u64_acq_rel(uint64_t *p, uint64_t *expected, uint64_t desired)
{
    return atomic_compare_exchange_strong_explicit(FLQ_A64(p), expected, desired, memory_order_acq_rel, memory_order_acquire);
}
FLQ_INLINE uint32_t flq_load_u32_relaxed(const uint32_t *p) { return atomic_load_explicit(FLQ_A32(p), memory_order_relaxed); }
FLQ_INLINE uint32_t flq_load_u32_acquire(const uint32_t *p) { return atomic_load_explicit(FLQ_A32(p), memory_order_acquire); }
FLQ_INLINE void flq_store_u32_release(uint32_t *p, uint32_t v) { atomic_store_explicit(FLQ_A32(p), v, memory_order_release); }
FLQ_INLINE uint32_t flq_fetch_add_u32_relaxed(uint32_t *p, uint32_t v) { return atomic_fetch_add_explicit(FLQ_A32(p), v, memory_order_relaxed); }
FLQ_INLINE uint32_t flq_fetch_sub_u32_relaxed(uint32_t *p, uint32_t v) { return atomic_fetch_sub_explicit(FLQ_A32(p), v, memory_order_relaxed); }
FLQ_INLINE void *flq_load_ptr_relaxed(void *const *p) { return atomic_load_explicit(FLQ_APTR(p), memory_order_relaxed); }
FLQ_INLINE void *flq_load_ptr_acquire(void *const *p) { return atomic_load_explicit(FLQ_APTR(p), memory_order_acquire); }
FLQ_INLINE void *flq_load_ptr_seq_cst(void *const *p) { return atomic_load_explicit(FLQ_APTR(p), memory_order_seq_cst); }
FLQ_INLINE void flq_store_ptr_relaxed(void **p, void *v) { atomic_store_explicit(FLQ_APTR(p), v, memory_order_relaxed); }
FLQ_INLINE void flq_store_ptr_release(void **p, void *v) { atomic_store_explicit(FLQ_APTR(p), v, memory_order_release); }
FLQ_INLINE int flq_cas_ptr_seq_cst(void **p, void **expected, void *desired)
{
    return atomic_compare_exchange_strong_explicit(FLQ_APTR(p), expected, desired, memory_order_seq_cst, memory_order_seq_cst);
}
FLQ_INLINE void flq_fence_seq_cst(void) { atomic_thread_fence(memory_order_seq_cst); }

#endif

#endif /* FLINQ_ATOMIC_H */
