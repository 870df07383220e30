/* primes: sieve of Eratosthenes up to N (read from stdin as a decimal
 * number). Prints the count of primes <= N, their sum and the largest one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    uint64_t n = 0;
    int c;
    int digits = 0;
    while ((c = getchar()) != EOF) {
        if (c >= '0' && c <= '9') {
            n = n * 10 + (uint64_t)(c - '0');
            digits++;
            if (n > 1000000000ULL) {
                fputs("primes: N must be <= 1000000000\n", stderr);
                return 2;
            }
        } else if (digits) {
            break;
        }
    }
    if (!digits) {
        fputs("primes: expected a decimal N on stdin\n", stderr);
        return 2;
    }
    uint8_t *composite = calloc((size_t)n + 1, 1);
    if (!composite) {
        fputs("primes: out of memory\n", stderr);
        return 3;
    }
    uint64_t count = 0, sum = 0, largest = 0;
    for (uint64_t i = 2; i <= n; i++) {
        if (composite[i]) continue;
        count++;
        sum += i;
        largest = i;
        for (uint64_t j = i * i; j <= n; j += i) composite[j] = 1;
    }
    free(composite);
    printf("n=%llu primes=%llu sum=%llu largest=%llu\n", (unsigned long long)n,
           (unsigned long long)count, (unsigned long long)sum, (unsigned long long)largest);
    return 0;
}
