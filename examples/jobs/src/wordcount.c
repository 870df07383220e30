/* wordcount: like `wc` plus word frequencies. A word is a maximal run of
 * ASCII letters and digits, compared case-insensitively. Prints lines,
 * words, bytes, distinct words and the ten most frequent words (ties broken
 * by byte order of the word). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *word; /* NULL = empty slot */
    uint32_t len;
    uint64_t count;
} entry;

static entry *table;
static uint64_t cap = 1024, used = 0;

static uint64_t fnv1a(const char *s, uint32_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (uint32_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void die(const char *msg) {
    fputs(msg, stderr);
    exit(3);
}

static void grow(void) {
    uint64_t ncap = cap * 2;
    entry *nt = calloc((size_t)ncap, sizeof(entry));
    if (!nt) die("wordcount: out of memory\n");
    for (uint64_t i = 0; i < cap; i++) {
        if (!table[i].word) continue;
        uint64_t j = fnv1a(table[i].word, table[i].len) & (ncap - 1);
        while (nt[j].word) j = (j + 1) & (ncap - 1);
        nt[j] = table[i];
    }
    free(table);
    table = nt;
    cap = ncap;
}

static void add(const char *w, uint32_t n) {
    if ((used + 1) * 4 > cap * 3) grow();
    uint64_t j = fnv1a(w, n) & (cap - 1);
    while (table[j].word) {
        if (table[j].len == n && memcmp(table[j].word, w, n) == 0) {
            table[j].count++;
            return;
        }
        j = (j + 1) & (cap - 1);
    }
    char *copy = malloc(n);
    if (!copy) die("wordcount: out of memory\n");
    memcpy(copy, w, n);
    table[j].word = copy;
    table[j].len = n;
    table[j].count = 1;
    used++;
}

static int by_count_then_word(const void *pa, const void *pb) {
    const entry *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    uint32_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->word, b->word, n);
    if (c) return c;
    return (a->len > b->len) - (a->len < b->len);
}

int main(void) {
    table = calloc((size_t)cap, sizeof(entry));
    if (!table) die("wordcount: out of memory\n");
    static char buf[1 << 16];
    char word[256];
    uint32_t wlen = 0;
    int in_word = 0;
    uint64_t lines = 0, words = 0, bytes = 0;
    size_t n;
    for (;;) {
        n = fread(buf, 1, sizeof buf, stdin);
        int at_eof = n == 0;
        for (size_t i = 0; i <= n; i++) {
            int c = i < n ? (uint8_t)buf[i] : -1;
            if (i == n && !at_eof) break;
            int is_word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
            if (is_word) {
                if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
                /* Words longer than the buffer are counted by their first 255 bytes. */
                if (wlen < sizeof word) word[wlen++] = (char)c;
                in_word = 1;
            } else if (in_word) {
                add(word, wlen);
                words++;
                wlen = 0;
                in_word = 0;
            }
            if (c == '\n') lines++;
        }
        bytes += n;
        if (at_eof) break;
    }
    entry *all = malloc((size_t)(used ? used : 1) * sizeof(entry));
    if (!all) die("wordcount: out of memory\n");
    uint64_t k = 0;
    for (uint64_t i = 0; i < cap; i++)
        if (table[i].word) all[k++] = table[i];
    qsort(all, (size_t)used, sizeof(entry), by_count_then_word);
    printf("lines=%llu words=%llu bytes=%llu distinct=%llu\n", (unsigned long long)lines,
           (unsigned long long)words, (unsigned long long)bytes, (unsigned long long)used);
    for (uint64_t i = 0; i < used && i < 10; i++)
        printf("%llu %.*s\n", (unsigned long long)all[i].count, (int)all[i].len, all[i].word);
    return 0;
}
