/* probe: reports what a work unit can observe about its host: arguments,
 * environment, clocks, randomness, files, sleeping and stdin. Inside the
 * Lode sandbox every line is the same on every run and every machine. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    int envc = 0;
    for (char **e = environ; e && *e; e++) envc++;
    printf("environ=%d\n", envc);

    struct timespec rt, m1, m2;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &m1);
    printf("realtime=%lld.%09ld\n", (long long)rt.tv_sec, (long)rt.tv_nsec);

    uint8_t rnd[16];
    int r = getentropy(rnd, sizeof rnd);
    printf("getentropy=%d ", r);
    for (size_t i = 0; i < sizeof rnd; i++) printf("%02x", rnd[i]);
    printf("\n");

    FILE *f = fopen("/etc/passwd", "r");
    printf("fopen(/etc/passwd)=%s errno=%d\n", f ? "opened" : "failed", f ? 0 : errno);
    if (f) fclose(f);
    errno = 0;
    DIR *d = opendir(".");
    printf("opendir(.)=%s errno=%d\n", d ? "opened" : "failed", d ? 0 : errno);
    if (d) closedir(d);

    struct timespec nap = {3600, 0};
    int s = nanosleep(&nap, NULL);
    clock_gettime(CLOCK_MONOTONIC, &m2);
    printf("nanosleep(1h)=%d monotonic_advanced=%s\n", s, (m2.tv_sec > m1.tv_sec || m2.tv_nsec > m1.tv_nsec) ? "yes" : "no");

    /* 0/0 is a NaN whose sign and payload depend on the CPU (x86 makes a
     * negative one, so natively this prints "-nan"); the sandbox makes every
     * observed NaN the canonical positive quiet NaN. */
    volatile double zero = 0.0;
    double nan = zero / zero;
    union {
        double d;
        uint64_t u;
    } nan_bits = {nan};
    printf("0/0=%f bits=%016llx\n", nan, (unsigned long long)nan_bits.u);

    uint64_t in = 0;
    int c;
    while ((c = getchar()) != EOF) in++;
    printf("stdin_bytes=%llu\n", (unsigned long long)in);
    return 0;
}
