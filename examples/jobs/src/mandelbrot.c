/* mandelbrot: render the Mandelbrot set as a binary PBM (P4) image of
 * N x N pixels (N read from stdin), 50 iterations, escape radius 2.
 * Only +, -, * and comparisons on doubles: bit-identical everywhere. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    uint32_t n = 0;
    if (scanf("%u", &n) != 1 || n == 0 || n > 16000) {
        fputs("mandelbrot: expected a size 1..16000 on stdin\n", stderr);
        return 2;
    }
    printf("P4\n%u %u\n", n, n);
    uint32_t row_bytes = (n + 7) / 8;
    uint8_t *row = malloc(row_bytes);
    if (!row) return 3;
    for (uint32_t y = 0; y < n; y++) {
        double ci = 2.0 * y / n - 1.0;
        for (uint32_t xb = 0; xb < row_bytes; xb++) {
            uint8_t bits = 0;
            for (uint32_t bit = 0; bit < 8; bit++) {
                uint32_t x = xb * 8 + bit;
                double cr = 2.0 * x / n - 1.5;
                double zr = 0, zi = 0, tr = 0, ti = 0;
                int inside = 1;
                for (int i = 0; i < 50; i++) {
                    zi = 2.0 * zr * zi + ci;
                    zr = tr - ti + cr;
                    tr = zr * zr;
                    ti = zi * zi;
                    if (tr + ti > 4.0) {
                        inside = 0;
                        break;
                    }
                }
                bits = (uint8_t)(bits << 1);
                if (inside && x < n) bits |= 1;
            }
            row[xb] = bits;
        }
        fwrite(row, 1, row_bytes, stdout);
    }
    free(row);
    return 0;
}
