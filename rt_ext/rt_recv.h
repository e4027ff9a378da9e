/* Batched UDP receive for rt_ext.recv: recvmmsg(2) straight into ring slots (Linux).
 *
 * rt_recv_batch receives up to `max` waiting datagrams without blocking. Accepted datagrams are
 * written to consecutive slots from slot 0 of the given arrays (a datagram refused by the source
 * filter is not kept, and later ones move down over it), with the kernel's receive time
 * (SO_TIMESTAMPNS) or, without one, the time the batch was read, both on the recorder's clock
 * (see rt_clock_t).
 * lens[i] is the datagram's true length (MSG_TRUNC), which exceeds slot_size for a datagram that
 * did not fit. Returns the number of datagrams taken from the socket (accepted + refused), 0 when
 * none was waiting, or -errno.
 *
 * Kernel drops: with SO_RXQ_OVFL set on the socket, each datagram carries the socket's cumulative
 * drop count (u32) as of the moment it was queued. `*ovfl_seen` is the last such count seen on this
 * socket; the datagrams dropped since are added to `*kernel_dropped`. A drop is thus learnt from
 * the next datagram queued after it (refused ones included): losses at the very end of a burst show
 * once traffic resumes. Where SO_RXQ_OVFL does not exist, nothing is added.
 */
#ifndef RT_RECV_H
#define RT_RECV_H
#include <stdint.h>
#include <string.h>
#include <errno.h>

typedef struct {
    int family;          /* 4 or 6; 0 = unused */
    uint8_t addr[16];    /* network order */
    uint16_t port;       /* host order; 0 = any port */
} rt_allow_t;

#define RT_RECV_MAX_BATCH 64

#ifdef __linux__
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <time.h>
#define RT_HAVE_RECVMMSG 1
#define RT_SO_TIMESTAMPNS SO_TIMESTAMPNS
#ifdef SO_RXQ_OVFL
#define RT_SO_RXQ_OVFL SO_RXQ_OVFL
#else
#define RT_SO_RXQ_OVFL (-1)
#endif

static inline int rt_source_allowed(const struct sockaddr_storage *sa, const rt_allow_t *allow, int nallow)
{
    int k;
    if (nallow <= 0) return 1;
    for (k = 0; k < nallow; k++) {
        if (sa->ss_family == AF_INET && allow[k].family == 4) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
            if (memcmp(&s4->sin_addr, allow[k].addr, 4) == 0 &&
                (allow[k].port == 0 || ntohs(s4->sin_port) == allow[k].port)) return 1;
        } else if (sa->ss_family == AF_INET6 && allow[k].family == 6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
            if (memcmp(&s6->sin6_addr, allow[k].addr, 16) == 0 &&
                (allow[k].port == 0 || ntohs(s6->sin6_port) == allow[k].port)) return 1;
        }
    }
    return 0;
}

static inline int64_t rt_clock_read(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int64_t rt_mono_ns(void) { return rt_clock_read(CLOCK_MONOTONIC); }

/* The recorder's clock (rt/clock.py): CLOCK_MONOTONIC + epoch_offset, which never steps. The kernel
 * stamps datagrams with CLOCK_REALTIME, which does (NTP, a user setting the time), so each stamp is
 * moved onto the recorder's clock with the current CLOCK_REALTIME - CLOCK_MONOTONIC ("shift").
 * The shift only changes at a step (both clocks run at the same rate), so it is only replaced when it
 * moved by more than RT_STEP_NS: the stamps carry no sampling jitter.
 * A stamp taken before a step but read after it belongs to the old shift. Each socket remembers the
 * shift as of the last time it was found empty (`sock_shift`): every datagram still waiting in it
 * was stamped with that shift or a later one. Where the two differ, the right reading is the latest
 * that is not in the future (the wrong one is off by the step, either way), which holds for any step
 * longer than the datagram waited in the socket. */
typedef struct {
    int64_t epoch_offset;  /* CLOCK_REALTIME - CLOCK_MONOTONIC when the process started */
    int64_t shift;         /* CLOCK_REALTIME - CLOCK_MONOTONIC now (as of the last step seen) */
} rt_clock_t;

#define RT_STEP_NS 1000000LL  /* a change of shift above this is a step, not read jitter */

/* Sample the shift into *shift; returns 0 when every read pair was split by preemption (such a
 * sample could look like a step: it is not used). *mono_out is CLOCK_MONOTONIC now either way. */
static inline int rt_sample_shift(int64_t *shift, int64_t *mono_out)
{
    int64_t m0 = 0, r = 0, m1 = 0;
    int k;
    for (k = 0; k < 4; k++) {
        m0 = rt_mono_ns();
        r = rt_clock_read(CLOCK_REALTIME);
        m1 = rt_mono_ns();
        if (m1 - m0 < 50000) {
            *mono_out = m1;
            *shift = r - (m0 + (m1 - m0) / 2);
            return 1;
        }
    }
    *mono_out = m1;
    return 0;
}

static inline void rt_clock_init(rt_clock_t *clk, int64_t epoch_offset)
{
    int64_t mono;
    clk->epoch_offset = epoch_offset;
    clk->shift = 0;
    while (!rt_sample_shift(&clk->shift, &mono)) {}
}

/* Take a new sample; adopt it only if the shift stepped. */
static inline void rt_clock_update(rt_clock_t *clk, int64_t *mono_now)
{
    int64_t s;
    if (rt_sample_shift(&s, mono_now) && (s - clk->shift > RT_STEP_NS || clk->shift - s > RT_STEP_NS))
        clk->shift = s;
}

static inline int64_t rt_clock_now(const rt_clock_t *clk) { return rt_mono_ns() + clk->epoch_offset; }

/* A kernel CLOCK_REALTIME stamp on the recorder's clock; `shift_then`: its socket's `sock_shift`. */
static inline int64_t rt_clock_from_realtime(const rt_clock_t *clk, int64_t t_real, int64_t shift_then, int64_t mono_now)
{
    int64_t t = t_real - clk->shift, alt;
    if (shift_then - clk->shift > RT_STEP_NS || clk->shift - shift_then > RT_STEP_NS) {
        alt = t_real - shift_then;
        if (t > mono_now) t = alt;
        else if (alt <= mono_now && alt > t) t = alt;
    }
    return t + clk->epoch_offset;
}

static int rt_recv_batch(int fd, uint8_t *data, int64_t slot_size, int64_t *ts, uint32_t *lens, int max,
                         const rt_allow_t *allow, int nallow, int64_t *accepted, int64_t *refused, rt_clock_t *clk,
                         int64_t *sock_shift, uint32_t *ovfl_seen, int64_t *kernel_dropped)
{
    struct mmsghdr msgs[RT_RECV_MAX_BATCH];
    struct iovec iov[RT_RECV_MAX_BATCH];
    struct sockaddr_storage addrs[RT_RECV_MAX_BATCH];
    /* Room for both control messages (a timestamp and the drop count) with slack: a control
     * message that does not fit is cut (MSG_CTRUNC) and its information lost. */
    char cbuf[RT_RECV_MAX_BATCH][CMSG_SPACE(sizeof(struct timespec)) + CMSG_SPACE(sizeof(uint32_t)) + 16];
    int i, got, w = 0;
    int64_t mono_now;
    if (max > RT_RECV_MAX_BATCH) max = RT_RECV_MAX_BATCH;
    if (max <= 0) return 0;
    for (i = 0; i < max; i++) {
        iov[i].iov_base = data + (int64_t)i * slot_size;
        iov[i].iov_len = (size_t)slot_size;
        memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &addrs[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(addrs[i]);
        msgs[i].msg_hdr.msg_control = cbuf[i];
        msgs[i].msg_hdr.msg_controllen = sizeof(cbuf[i]);
    }
    got = recvmmsg(fd, msgs, (unsigned)max, MSG_DONTWAIT | MSG_TRUNC, NULL);
    if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
        return -errno;
    }
    rt_clock_update(clk, &mono_now);
    for (i = 0; i < got; i++) {
        struct cmsghdr *c;
        int64_t t = 0;
        /* Control messages first: a refused datagram still tells the drops before it. */
        for (c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != NULL; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
            if (c->cmsg_level != SOL_SOCKET) continue;
            if (c->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec tsv;
                memcpy(&tsv, CMSG_DATA(c), sizeof(tsv));
                t = (int64_t)tsv.tv_sec * 1000000000LL + tsv.tv_nsec;
            }
#ifdef SO_RXQ_OVFL
            else if (c->cmsg_type == SO_RXQ_OVFL) {
                /* Absent while the count is 0; cumulative and queued in order, so the difference
                 * to the last one seen is what was dropped in between (u32 arithmetic: it wraps). */
                uint32_t n;
                memcpy(&n, CMSG_DATA(c), sizeof(n));
                *kernel_dropped += (uint32_t)(n - *ovfl_seen);
                *ovfl_seen = n;
            }
#endif
        }
        if (!rt_source_allowed(&addrs[i], allow, nallow)) { (*refused)++; continue; }
        t = t ? rt_clock_from_realtime(clk, t, *sock_shift, mono_now) : mono_now + clk->epoch_offset;
        if (w != i) {
            int64_t keep = msgs[i].msg_len < (unsigned)slot_size ? msgs[i].msg_len : slot_size;
            memmove(data + (int64_t)w * slot_size, data + (int64_t)i * slot_size, (size_t)keep);
        }
        ts[w] = t;
        lens[w] = msgs[i].msg_len;
        w++;
    }
    *accepted += w;
    if (got < max) *sock_shift = clk->shift;  /* the socket is empty: older stamps are all read */
    return got;
}

/* Forward n datagrams (slots of slot_size bytes from data, true lengths lens) unchanged to `fd`, a
 * connected non-blocking UDP socket of one target, with sendmmsg: normally one call per batch.
 * counts: [0] sent (taken by the kernel; what the network or the target drops after that is not
 * known), [1] dropped (not sent), [2] errors (failed calls). Never blocks: a full send buffer
 * (EAGAIN, ENOBUFS) drops the rest of the batch at once. A dead target shows as a refusal (an ICMP
 * error, reported on the connected socket's next send, which then sends nothing): that datagram is
 * dropped and the next may pass; after two failed calls the rest of the batch is dropped, so a
 * target costs at most a few calls per batch whatever it does. A datagram longer than its slot
 * (IP fragments only) is sent as kept: its first slot_size bytes. */
/* Returns 1 when the target refused or could not be reached (nobody listens, no route): the caller
 * pauses it, since every further send would fail the same way at the same cost; 0 otherwise. */
static inline int rt_forward_batch(int fd, const uint8_t *data, int64_t slot_size, const uint32_t *lens, int n,
                                   int64_t *counts)
{
    struct mmsghdr msgs[RT_RECV_MAX_BATCH];
    struct iovec iov[RT_RECV_MAX_BATCH];
    int i, r, done = 0, failures = 0, unreachable = 0;
    if (n > RT_RECV_MAX_BATCH) n = RT_RECV_MAX_BATCH;
    for (i = 0; i < n; i++) {
        iov[i].iov_base = (void *)(data + (int64_t)i * slot_size);
        iov[i].iov_len = (size_t)((int64_t)lens[i] < slot_size ? (int64_t)lens[i] : slot_size);
        memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    while (done < n) {
        r = sendmmsg(fd, msgs + done, (unsigned)(n - done), MSG_DONTWAIT);
        if (r > 0) { done += r; counts[0] += r; continue; }
        counts[2]++;
        if (r == 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) break;
        unreachable = 1;
        if (++failures >= 2) break;
        done++;  /* refused/unreachable: this datagram is lost, the next may pass */
        counts[1]++;
    }
    counts[1] += n - done;
    return unreachable;
}

#include <poll.h>

/* Wait until one of fds is readable or timeout_ms passes: >0 some readable, 0 timeout, -errno. */
static inline int rt_wait_readable(const int *fds, int n, int timeout_ms)
{
    struct pollfd p[16];
    int i, r;
    if (n > 16) n = 16;
    for (i = 0; i < n; i++) { p[i].fd = fds[i]; p[i].events = POLLIN; p[i].revents = 0; }
    r = poll(p, (nfds_t)n, timeout_ms);
    if (r < 0) return errno == EINTR ? 0 : -errno;
    return r;
}

/* Wait up to ns for fd to become readable (a wake-up pipe), at nanosecond resolution: >0 readable,
 * 0 timeout or signal. One context switch per wait, where sleeping then polling takes two. */
static inline int rt_wait_fd_ns(int fd, int64_t ns)
{
    struct pollfd p;
    struct timespec t;
    int r;
    p.fd = fd; p.events = POLLIN; p.revents = 0;
    t.tv_sec = ns / 1000000000LL;
    t.tv_nsec = ns % 1000000000LL;
    r = ppoll(&p, 1, &t, NULL);
    return r < 0 ? 0 : r;
}

static inline void rt_sleep_ns(int64_t ns)
{
    struct timespec t;
    t.tv_sec = ns / 1000000000LL;
    t.tv_nsec = ns % 1000000000LL;
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
}

#include <unistd.h>
/* One byte into a non-blocking pipe; a full pipe already means "wake up". */
static inline void rt_notify(int fd) { char b = 1; ssize_t r = write(fd, &b, 1); (void)r; }
static inline void rt_close_fd(int fd) { if (fd >= 0) close(fd); }
/* Empty a non-blocking pipe; returns the bytes it held. */
static inline int rt_drain_fd(int fd) { char b[64]; ssize_t r; int total = 0; while ((r = read(fd, b, sizeof b)) > 0) total += (int)r; return total; }

#else  /* not Linux: the Python recv_into receiver is used instead */
#define RT_HAVE_RECVMMSG 0
#define RT_SO_TIMESTAMPNS (-1)
#define RT_SO_RXQ_OVFL (-1)
typedef struct { int64_t epoch_offset; int64_t shift; } rt_clock_t;
static inline void rt_clock_init(rt_clock_t *clk, int64_t epoch_offset) { clk->epoch_offset = epoch_offset; clk->shift = 0; }
static inline int64_t rt_mono_ns(void) { return 0; }
static inline int64_t rt_clock_now(const rt_clock_t *clk) { return clk->epoch_offset; }
static int rt_recv_batch(int fd, uint8_t *data, int64_t slot_size, int64_t *ts, uint32_t *lens, int max,
                         const rt_allow_t *allow, int nallow, int64_t *accepted, int64_t *refused, rt_clock_t *clk,
                         int64_t *sock_shift, uint32_t *ovfl_seen, int64_t *kernel_dropped)
{
    (void)fd; (void)clk; (void)sock_shift; (void)data; (void)slot_size; (void)ts; (void)lens; (void)max; (void)allow; (void)nallow;
    (void)accepted; (void)refused; (void)ovfl_seen; (void)kernel_dropped;
    return -38; /* ENOSYS */
}
static inline int rt_wait_readable(const int *fds, int n, int timeout_ms) { (void)fds; (void)n; (void)timeout_ms; return -38; }
static inline int rt_forward_batch(int fd, const uint8_t *data, int64_t slot_size, const uint32_t *lens, int n,
                                   int64_t *counts) { (void)fd; (void)data; (void)slot_size; (void)lens; (void)n; (void)counts; return 0; }
static inline void rt_sleep_ns(int64_t ns) { (void)ns; }
static inline int rt_wait_fd_ns(int fd, int64_t ns) { (void)fd; (void)ns; return 0; }
static inline void rt_notify(int fd) { (void)fd; }
static inline int rt_drain_fd(int fd) { (void)fd; return 0; }
#ifdef _WIN32
#include <io.h>
static inline void rt_close_fd(int fd) { if (fd >= 0) _close(fd); }
#else
#include <unistd.h>
static inline void rt_close_fd(int fd) { if (fd >= 0) close(fd); }
#endif
#endif

#endif
