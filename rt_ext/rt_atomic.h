/* Acquire/release loads and stores of 64-bit counters for the SPSC ring.
 *
 * GCC and Clang builtins give the C11 memory-order semantics without <stdatomic.h>, which
 * Cython cannot declare portably. MSVC on x86/x64 keeps aligned 64-bit accesses atomic and
 * orders stores as release / loads as acquire; the compiler barrier stops reordering.
 */
#ifndef RT_ATOMIC_H
#define RT_ATOMIC_H
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
static inline uint64_t rt_load_acquire(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline uint64_t rt_load_relaxed(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void rt_store_release(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void rt_store_relaxed(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
#elif defined(_MSC_VER)
#include <intrin.h>
static inline uint64_t rt_load_acquire(const uint64_t *p) { uint64_t v = *(volatile const uint64_t *)p; _ReadWriteBarrier(); return v; }
static inline uint64_t rt_load_relaxed(const uint64_t *p) { return *(volatile const uint64_t *)p; }
static inline void rt_store_release(uint64_t *p, uint64_t v) { _ReadWriteBarrier(); *(volatile uint64_t *)p = v; }
static inline void rt_store_relaxed(uint64_t *p, uint64_t v) { *(volatile uint64_t *)p = v; }
#else
#error "rt_ext needs GCC, Clang or MSVC atomics"
#endif

#endif
