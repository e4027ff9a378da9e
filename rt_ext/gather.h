/* Column gather kernels for rt_ext.decode.
 *
 * rt_gather copies one field of n packets: packet i's nb bytes at buf + offsets[i] + src_off go
 * to dst + i * dst_stride. Each common size gets its own loop with a constant-size memcpy, which
 * the compiler turns into one load and one store, so the loop body has no branch and no call.
 */
#ifndef RT_GATHER_H
#define RT_GATHER_H
#include <stdint.h>
#include <string.h>

#define RT_GATHER_LOOP(NB) \
    for (i = 0; i < n; i++) memcpy(dst + i * dst_stride, buf + offsets[i] + src_off, (NB))

static inline void rt_gather(uint8_t *dst, int64_t dst_stride, const uint8_t *buf,
                             const int64_t *offsets, int64_t n, int64_t src_off, int64_t nb)
{
    int64_t i;
    switch (nb) {
    case 1: RT_GATHER_LOOP(1); break;
    case 2: RT_GATHER_LOOP(2); break;
    case 4: RT_GATHER_LOOP(4); break;
    case 6: RT_GATHER_LOOP(6); break;
    case 8: RT_GATHER_LOOP(8); break;
    case 12: RT_GATHER_LOOP(12); break;
    case 16: RT_GATHER_LOOP(16); break;
    default: RT_GATHER_LOOP(nb); break;
    }
}

/* Same as rt_gather for packets evenly spaced src_stride bytes apart from src (ring slots, files). */
#define RT_STRIDED_LOOP(NB) \
    for (i = 0; i < n; i++) memcpy(dst + i * dst_stride, src + i * src_stride, (NB))

static inline void rt_gather_strided(uint8_t *dst, int64_t dst_stride, const uint8_t *src,
                                     int64_t src_stride, int64_t n, int64_t nb)
{
    int64_t i;
    switch (nb) {
    case 1: RT_STRIDED_LOOP(1); break;
    case 2: RT_STRIDED_LOOP(2); break;
    case 4: RT_STRIDED_LOOP(4); break;
    case 6: RT_STRIDED_LOOP(6); break;
    case 8: RT_STRIDED_LOOP(8); break;
    case 12: RT_STRIDED_LOOP(12); break;
    case 16: RT_STRIDED_LOOP(16); break;
    default: RT_STRIDED_LOOP(nb); break;
    }
}
#endif
