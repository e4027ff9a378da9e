from libc.stdint cimport int8_t, int64_t

cdef Py_ssize_t _merge_pass(const int64_t[::1] kt, const int8_t[::1] kf, const int64_t[::1] ki,
                            const int64_t[::1] st, int8_t feed, int64_t tol,
                            int64_t[::1] ot, int8_t[::1] of, int64_t[::1] oi) noexcept nogil
