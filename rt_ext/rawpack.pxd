from libc.stdint cimport int64_t, uint8_t, uint32_t

cdef Py_ssize_t pack_records(const int64_t *t_ns, const uint32_t *lengths, const uint8_t *data,
                             Py_ssize_t n, Py_ssize_t slot_size, uint8_t *out) noexcept nogil
