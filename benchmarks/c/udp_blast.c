/* udp_blast HOST PORT COUNT SIZE RATE [TEMPLATE SEQ_OFFSET]: send COUNT datagrams of SIZE bytes
 * at RATE per second (0 = as fast as possible) with sendmmsg in batches of 32, paced on
 * CLOCK_MONOTONIC. Payloads are 0xAB bytes, or the first SIZE bytes of the TEMPLATE file; datagram
 * k carries k (u64, little-endian) at SEQ_OFFSET (default 0). Prints the count sent and seconds. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

int main(int argc, char **argv) {
    if (argc != 6 && argc != 8) { fprintf(stderr, "usage: udp_blast HOST PORT COUNT SIZE RATE [TEMPLATE SEQ_OFFSET]\n"); return 2; }
    long seq_off = argc == 8 ? atol(argv[7]) : 0;
    long count = atol(argv[3]), size = atol(argv[4]); double rate = atof(argv[5]);
    if (size < 1 || size > 2048 || seq_off < 0 || seq_off + 8 > size) { fprintf(stderr, "SIZE must be 1..2048 and hold the u64 at SEQ_OFFSET\n"); return 2; }
    struct sockaddr_in dst = {0}; dst.sin_family = AF_INET; dst.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &dst.sin_addr);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int sndbuf = 8 << 20; setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    enum { B = 32 };
    static unsigned char buf[B][2048]; struct iovec iov[B]; struct mmsghdr msg[B];
    static unsigned char tmpl[2048];
    memset(tmpl, 0xAB, sizeof tmpl);
    if (argc == 8) { FILE *fh = fopen(argv[6], "rb"); if (!fh) { perror("template"); return 1; } fread(tmpl, 1, sizeof tmpl, fh); fclose(fh); }
    for (int i = 0; i < B; i++) {
        memcpy(buf[i], tmpl, sizeof buf[i]);
        iov[i].iov_base = buf[i]; iov[i].iov_len = size;
        memset(&msg[i], 0, sizeof msg[i]);
        msg[i].msg_hdr.msg_iov = &iov[i]; msg[i].msg_hdr.msg_iovlen = 1;
        msg[i].msg_hdr.msg_name = &dst; msg[i].msg_hdr.msg_namelen = sizeof dst;
    }
    double t0 = now(); long sent = 0;
    while (sent < count) {
        int n = count - sent < B ? (int)(count - sent) : B;
        if (rate > 0) {
            /* Sleep, never spin: a spinning sender takes a whole core from the receiver it measures
             * (on a 2-core machine, half of it). The schedule is cumulative, so a late wake-up sends
             * the batches it missed at once and the average rate holds. */
            double due = t0 + (sent + n) / rate, wait = due - now();
            if (wait > 0) { struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)}; nanosleep(&ts, NULL); }
        }
        for (int i = 0; i < n; i++) { uint64_t k = sent + i; memcpy(buf[i] + seq_off, &k, 8); }
        int r = sendmmsg(fd, msg, n, 0);
        if (r > 0) sent += r;
    }
    printf("%ld %.6f\n", sent, now() - t0);
    return 0;
}
