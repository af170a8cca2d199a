/* Reference reflector after Matthew Arcus' reflect.cpp: blocking read, swap source and
 * destination, write back. The baseline tunbox's reflector is measured against.
 * Build: gcc -O3 -o reflect_ref reflect_ref.c ; run: reflect_ref DEV */
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void swap(unsigned char *p, int a, int b, int n) {
    unsigned char t[16];
    memcpy(t, p + a, n);
    memcpy(p + a, p + b, n);
    memcpy(p + b, t, n);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DEV\n", argv[0]);
        return 2;
    }
    int fd = open("/dev/net/tun", O_RDWR);
    if (fd < 0) { perror("/dev/net/tun"); return 1; }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) { perror("TUNSETIFF"); return 1; }
    static unsigned char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) { perror("read"); return 1; }
        int v = buf[0] >> 4;
        if (v == 4 && n >= 20) swap(buf, 12, 16, 4);
        else if (v == 6 && n >= 40) swap(buf, 8, 24, 16);
        else continue;
        if (write(fd, buf, n) < 0) perror("write");
    }
}
