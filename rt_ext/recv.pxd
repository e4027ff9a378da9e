from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t

cdef extern from "rt_recv.h" nogil:
    ctypedef struct rt_allow_t:
        int family
        uint8_t addr[16]
        uint16_t port
    int RT_RECV_MAX_BATCH
    int RT_HAVE_RECVMMSG
    int RT_SO_TIMESTAMPNS
    int RT_SO_RXQ_OVFL
    ctypedef struct rt_clock_t:
        int64_t epoch_offset
        int64_t shift
    void rt_clock_init(rt_clock_t *clk, int64_t epoch_offset)
    int64_t rt_clock_now(const rt_clock_t *clk)
    int64_t rt_mono_ns()
    int rt_recv_batch(int fd, uint8_t *data, int64_t slot_size, int64_t *ts, uint32_t *lens, int max,
                      const rt_allow_t *allow, int nallow, int64_t *accepted, int64_t *refused, rt_clock_t *clk,
                      int64_t *sock_shift, uint32_t *ovfl_seen, int64_t *kernel_dropped)
    int rt_forward_batch(int fd, const uint8_t *data, int64_t slot_size, const uint32_t *lens, int n,
                          int64_t *counts)
    int rt_wait_readable(const int *fds, int n, int timeout_ms)
    void rt_sleep_ns(int64_t ns)
    int rt_wait_fd_ns(int fd, int64_t ns)
    void rt_notify(int fd)
    void rt_close_fd(int fd)
    int rt_drain_fd(int fd)
