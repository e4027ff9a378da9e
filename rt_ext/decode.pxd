from libc.stdint cimport int64_t, uint8_t

cdef class DecodePlan:
    cdef readonly Py_ssize_t packet_size
    cdef readonly Py_ssize_t row_bytes
    cdef readonly Py_ssize_t nfields
    cdef int64_t *src_offset
    cdef int64_t *element_bytes
    cdef int64_t *records
    cdef int64_t *src_stride
    cdef int64_t *col_offset
    # Row output as a few long copies: (source offset, row offset, bytes) per run of fields that
    # are contiguous in both the packet and the row (a packed little-endian layout is one run).
    cdef readonly Py_ssize_t nsegments
    cdef int64_t *seg_src
    cdef int64_t *seg_dst
    cdef int64_t *seg_bytes
    cdef object _keep
    cdef object _keep_segments

    cdef _plan_row_segments(self)
    cpdef Py_ssize_t output_bytes(self, Py_ssize_t n, bint rows)
    cdef int run(self, const uint8_t *buf, Py_ssize_t buflen, const int64_t *offsets, Py_ssize_t n,
                 uint8_t *out, bint rows) except -1 nogil
