# cython: language_level=3
"""Merging the frames of several feeds onto one time line, with duplicates removed.

Feed 0 is the primary: every one of its frames is kept. Each further feed, in the order given,
adds only the frames whose time is more than ``tolerance_ns`` away from every frame already kept
(the primary's and those of the feeds before it), so the primary wins ties and an earlier feed
beats a later one. Each pass is one linear walk of two sorted arrays: the whole merge is
O(feeds × frames).
"""

from libc.stdint cimport int8_t, int64_t

import numpy as np


cdef Py_ssize_t _merge_pass(const int64_t[::1] kt, const int8_t[::1] kf, const int64_t[::1] ki,
                            const int64_t[::1] st, int8_t feed, int64_t tol,
                            int64_t[::1] ot, int8_t[::1] of, int64_t[::1] oi) noexcept nogil:
    cdef Py_ssize_t nk = kt.shape[0], ns = st.shape[0]
    cdef Py_ssize_t a = 0, b = 0, o = 0
    cdef int64_t t
    cdef bint dup
    while b < ns:
        t = st[b]
        # Emit kept frames strictly before t; a is then the first kept frame >= t.
        while a < nk and kt[a] < t:
            ot[o] = kt[a]; of[o] = kf[a]; oi[o] = ki[a]; o += 1; a += 1
        dup = (a < nk and kt[a] - t <= tol) or (a > 0 and t - kt[a - 1] <= tol)
        if not dup:
            ot[o] = t; of[o] = feed; oi[o] = b; o += 1
        b += 1
    while a < nk:
        ot[o] = kt[a]; of[o] = kf[a]; oi[o] = ki[a]; o += 1; a += 1
    return o


def merge_timelines(times, int64_t tolerance_ns):
    """Merge sorted frame times of several feeds; the first feed is the primary.

    ``times``: a sequence of 1-D int64 arrays (ns), each sorted ascending. Returns
    ``(t_ns, feed, index)``: the kept frames' times in ascending order, the position of their feed
    in ``times`` (int8), and their frame index within that feed (int64).
    """
    if tolerance_ns < 0:
        raise ValueError("tolerance_ns must be >= 0")
    if len(times) == 0:
        raise ValueError("at least one feed is needed")
    if len(times) > 127:
        raise ValueError("at most 127 feeds")
    arrays = [np.ascontiguousarray(t, dtype=np.int64) for t in times]
    for k, arr in enumerate(arrays):
        if arr.ndim != 1:
            raise ValueError(f"feed {k}: times must be one-dimensional")
        if arr.shape[0] > 1 and bool(np.any(arr[1:] < arr[:-1])):
            raise ValueError(f"feed {k}: times are not sorted")
    kt = arrays[0]
    kf = np.zeros(kt.shape[0], dtype=np.int8)
    ki = np.arange(kt.shape[0], dtype=np.int64)
    cdef Py_ssize_t n
    cdef int8_t feed
    for k in range(1, len(arrays)):
        st = arrays[k]
        cap = kt.shape[0] + st.shape[0]
        ot = np.empty(cap, dtype=np.int64)
        of = np.empty(cap, dtype=np.int8)
        oi = np.empty(cap, dtype=np.int64)
        feed = <int8_t> k
        n = _merge_pass(kt, kf, ki, st, feed, tolerance_ns, ot, of, oi)
        kt, kf, ki = ot[:n], of[:n], oi[:n]
    return kt, kf, ki
