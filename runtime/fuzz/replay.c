/* Runs the fuzz harness once on each file named on the command line, without libFuzzer:
 * regression replay with any compiler (built with the sanitizers by the tests). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            fprintf(stderr, "replay: cannot open %s\n", argv[i]);
            return 2;
        }
        size_t cap = 1 << 16, n = 0, got;
        uint8_t *buf = malloc(cap);
        while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
            n += got;
            if (n < cap) continue;
            uint8_t *grown = realloc(buf, cap *= 2);
            if (!grown) free(buf);
            buf = grown;
        }
        fclose(f);
        if (!buf) return 2;
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
        printf("ok %s\n", argv[i]);
    }
    return 0;
}
