/* recvmmsg_sink PORT RCVBUF IDLE_MS [OUTFILE]: the machine's limit for receiving UDP on loopback.
 * With OUTFILE every batch is also written to it (length-prefixed records, one write per batch).
 * Binds 127.0.0.1:PORT, receives with blocking recvmmsg in batches of 64 until IDLE_MS pass with
 * nothing, prints the count received and its own CPU seconds, and "ready" on stderr once bound. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) { fprintf(stderr, "usage: recvmmsg_sink PORT RCVBUF IDLE_MS [OUTFILE]\n"); return 2; }
    FILE *out = argc == 5 ? fopen(argv[4], "wb") : NULL;
    static unsigned char wbuf[64 * (2048 + 12)];
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int rcvbuf = atoi(argv[2]);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {0}; a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[1]));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("bind"); return 1; }
    int idle = atoi(argv[3]);
    struct timeval tv = { idle / 1000, (idle % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    enum { B = 64 };
    static unsigned char buf[B][2048]; struct iovec iov[B]; struct mmsghdr msg[B];
    for (int i = 0; i < B; i++) {
        iov[i].iov_base = buf[i]; iov[i].iov_len = sizeof buf[i];
        memset(&msg[i], 0, sizeof msg[i]); msg[i].msg_hdr.msg_iov = &iov[i]; msg[i].msg_hdr.msg_iovlen = 1;
    }
    fprintf(stderr, "ready\n"); fflush(stderr);
    long got = 0, started = 0, waits = 0;
    for (;;) {
        int r = recvmmsg(fd, msg, B, MSG_WAITFORONE, NULL);
        if (r < 0) { if (started || ++waits > 100) break; else continue; }
        got += r; started = 1;
        if (out) {
            size_t pos = 0;
            for (int i = 0; i < r; i++) {
                unsigned int len = msg[i].msg_len;
                memcpy(wbuf + pos, &len, 4); memcpy(wbuf + pos + 4, buf[i], len); pos += 4 + len;
            }
            fwrite(wbuf, 1, pos, out);
        }
    }
    if (out) { fflush(out); fsync(fileno(out)); fclose(out); }
    struct rusage ru; getrusage(RUSAGE_SELF, &ru);
    printf("%ld %.6f\n", got, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6);
    return 0;
}
