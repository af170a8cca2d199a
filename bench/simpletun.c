/* A simpletun-style reference tunnel for the benchmark, written from the classic
 * tutorial's description: a tun device and one socket, plaintext, one packet per read
 * and per write, poll() over the two descriptors.
 *   TCP: each packet goes as a 2-byte big-endian length followed by the packet.
 *   UDP: each packet is one datagram.
 * Build: gcc -O3 -o simpletun simpletun.c
 * Run:   simpletun DEV tcp|udp -s PORT            (server: listen / bind PORT)
 *        simpletun DEV tcp|udp -c ADDR PORT [LPORT] (client: connect to ADDR:PORT)
 * The device must be configured (address, MTU, up) by the caller. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int read_full(int fd, unsigned char *p, int n) {
    int got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            return -1;
        }
        got += r;
    }
    return got;
}

static int write_full(int fd, const unsigned char *p, int n) {
    int put = 0;
    while (put < n) {
        ssize_t r = write(fd, p + put, n - put);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            return -1;
        }
        put += r;
    }
    return put;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s DEV tcp|udp -s PORT | -c ADDR PORT [LPORT]\n", argv[0]);
        return 2;
    }
    int tcp = strcmp(argv[2], "tcp") == 0;
    int server = strcmp(argv[3], "-s") == 0;
    int tun = open("/dev/net/tun", O_RDWR);
    if (tun < 0) { perror("/dev/net/tun"); return 1; }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
    if (ioctl(tun, TUNSETIFF, &ifr) < 0) { perror("TUNSETIFF"); return 1; }

    struct sockaddr_in local = {0}, remote = {0};
    local.sin_family = AF_INET;
    remote.sin_family = AF_INET;
    int s = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int have_remote = 0;
    if (server) {
        local.sin_port = htons(atoi(argv[4]));
        if (bind(s, (struct sockaddr *)&local, sizeof local) < 0) { perror("bind"); return 1; }
        if (tcp) {
            listen(s, 1);
            int c = accept(s, NULL, NULL);
            if (c < 0) { perror("accept"); return 1; }
            close(s);
            s = c;
        }
    } else {
        if (argc < 6) { fprintf(stderr, "-c needs ADDR PORT\n"); return 2; }
        remote.sin_port = htons(atoi(argv[5]));
        inet_pton(AF_INET, argv[4], &remote.sin_addr);
        if (!tcp) {
            local.sin_port = htons(argc > 6 ? atoi(argv[6]) : 0);
            bind(s, (struct sockaddr *)&local, sizeof local);
        }
        if (connect(s, (struct sockaddr *)&remote, sizeof remote) < 0) { perror("connect"); return 1; }
        have_remote = 1;
    }
    if (tcp) setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    static unsigned char buf[2 + 65536];
    struct pollfd fds[2] = {{tun, POLLIN, 0}, {s, POLLIN, 0}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            perror("poll");
            return 1;
        }
        if (fds[0].revents & POLLIN) {
            ssize_t n = read(tun, buf + 2, 65536);
            if (n < 0) { perror("read tun"); return 1; }
            if (tcp) {
                buf[0] = n >> 8;
                buf[1] = n & 0xff;
                if (write_full(s, buf, n + 2) < 0) { perror("write socket"); return 1; }
            } else if (have_remote) {
                if (sendto(s, buf + 2, n, 0, (struct sockaddr *)&remote, sizeof remote) < 0 &&
                    errno != ECONNREFUSED)
                    perror("sendto");
            }
        }
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (tcp) {
                if (read_full(s, buf, 2) < 0) { fprintf(stderr, "peer closed\n"); return 1; }
                int n = (buf[0] << 8) | buf[1];
                if (read_full(s, buf + 2, n) < 0) { fprintf(stderr, "peer closed\n"); return 1; }
                if (write(tun, buf + 2, n) < 0) perror("write tun");
            } else {
                socklen_t sl = sizeof remote;
                ssize_t n = recvfrom(s, buf + 2, 65536, 0, (struct sockaddr *)&remote, &sl);
                if (n < 0) {
                    if (errno == ECONNREFUSED || errno == EINTR) continue;
                    perror("recvfrom");
                    return 1;
                }
                have_remote = 1;
                if (write(tun, buf + 2, n) < 0) perror("write tun");
            }
        }
    }
}
