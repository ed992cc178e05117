/*
 * standalone.c - runs a libFuzzer target without libFuzzer, so every build
 * (gcc included) exercises the fuzz targets in CTest: each file named on the
 * command line is run once, then RPCTLS_FUZZ_RUNS (default 20000) inputs of
 * random length and content from a fixed seed (RPCTLS_SEED overrides).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long len;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        (buf = malloc((size_t)len + 1)) == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "cannot read %s\n", path);
        if (f != NULL)
            fclose(f);
        free(buf);
        return 1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)len);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned seed = getenv("RPCTLS_SEED") ? (unsigned)strtoul(getenv("RPCTLS_SEED"), NULL, 0) : 12345;
    long runs = getenv("RPCTLS_FUZZ_RUNS") ? strtol(getenv("RPCTLS_FUZZ_RUNS"), NULL, 0) : 20000;
    static uint8_t buf[70000];

    for (int i = 1; i < argc; i++)
        if (run_file(argv[i]) != 0)
            return 1;
    fprintf(stderr, "%s: %ld random inputs, seed %u\n", argv[0], runs, seed);
    for (long r = 0; r < runs; r++) {
        /* Mostly short inputs, sometimes long ones. */
        size_t len = (size_t)rand_r(&seed) % (r % 10 == 0 ? sizeof(buf) : 600);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand_r(&seed);
        LLVMFuzzerTestOneInput(buf, len);
    }
    return 0;
}
