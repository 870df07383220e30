/* spin: never terminates. The sandbox must stop it (out of fuel, or the
 * wall-clock backstop when fuel is unlimited). */
#include <stdint.h>

int main(void) {
    volatile uint64_t x = 0;
    for (;;) x++;
}
