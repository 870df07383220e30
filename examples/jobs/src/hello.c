/* hello: the smallest useful work unit. Greets its first argument (or
 * "world") and exits 0; used to measure per-unit sandbox overhead. */
#include <stdio.h>

int main(int argc, char **argv) {
    fputs("hello, ", stdout);
    fputs(argc > 1 ? argv[1] : "world", stdout);
    fputs("\n", stdout);
    return 0;
}
