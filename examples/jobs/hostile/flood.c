/* flood: writes 1 GiB of 'x' to stdout. The sandbox must stop it with
 * OutputTooLarge once the output cap is reached, without buffering 1 GiB. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    static char chunk[1 << 16];
    memset(chunk, 'x', sizeof chunk);
    for (uint32_t i = 0; i < (1u << 30) / sizeof chunk; i++) {
        if (fwrite(chunk, 1, sizeof chunk, stdout) != sizeof chunk) return 1;
    }
    return 0;
}
