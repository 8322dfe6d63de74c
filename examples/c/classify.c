/* Classify images with an exported amber model, without Python.
 *
 * Against the library `pip install` put into the amber package (see Makefile):
 *   cc -std=c11 -O2 $(amber config --cflags) examples/c/classify.c \
 *      $(amber config --libs) -o build/classify
 * or against a CMake build of runtime/:
 *   cmake -S runtime -B build/runtime && cmake --build build/runtime
 *   cc -std=c11 -O2 -I runtime/include examples/c/classify.c build/runtime/libamber.a \
 *      -lm -lpthread -o build/classify
 *
 *   build/classify build/digits.amber images.npy [labels.npy]
 *
 * images.npy holds float32 inputs shaped like the model's "forward" input with the batch
 * first (for the digits demo: N x 1 x 8 x 8). For every image the program prints the
 * index of the largest value of the first output (the predicted class); with labels.npy
 * (int64, one per image) it prints each label too and the accuracy at the end. */
#include <amber.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a little-endian C-order .npy file (format 1.0 or 2.0) of dtype descr ("<f4" or
 * "<i8"); returns malloc'ed data described by *t, or NULL. */
static void *read_npy(const char *path, const char *descr, amber_tensor *t) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char pre[12];
    char want[16];
    void *data = NULL;
    snprintf(want, sizeof want, "'%s'", descr);
    char header[4096];
    size_t hl = 0, got = fread(pre, 1, 10, f);
    if (got == 10 && !memcmp(pre, "\x93NUMPY", 6)) {
        if (pre[6] == 1) {
            hl = (size_t)pre[8] | (size_t)pre[9] << 8;
        } else if (fread(pre + 10, 1, 2, f) == 2) {
            hl = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        }
    }
    if (hl > 0 && hl < sizeof header && fread(header, 1, hl, f) == hl) {
        header[hl] = '\0';
        const char *shape = strstr(header, "'shape': (");
        if (strstr(header, want) && strstr(header, "'fortran_order': False") && shape) {
            t->dtype = strcmp(descr, "<i8") == 0 ? AMBER_INT64 : AMBER_FLOAT32;
            t->rank = 0;
            for (const char *p = shape + 10; *p && *p != ')' && t->rank < AMBER_MAX_RANK;) {
                char *end;
                long long v = strtoll(p, &end, 10);
                if (end == p) break;
                t->shape[t->rank++] = v;
                p = end;
                while (*p == ',' || *p == ' ') p++;
            }
            int64_t n;
            size_t nbytes;
            if (amber_tensor_size(t, &n, &nbytes) == AMBER_OK && (data = malloc(nbytes ? nbytes : 1)) &&
                fread(data, 1, nbytes, f) != nbytes) {
                free(data);
                data = NULL;
            }
        }
    }
    fclose(f);
    t->data = data;
    return data;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s MODEL.amber IMAGES.npy [LABELS.npy]\n", argv[0]);
        return 2;
    }
    amber_tensor images, labels;
    float *pixels = read_npy(argv[2], "<f4", &images);
    if (!pixels) {
        fprintf(stderr, "%s: not a float32 .npy file\n", argv[2]);
        return 1;
    }
    int64_t *truth = NULL;
    if (argc == 4) {
        truth = read_npy(argv[3], "<i8", &labels);
        if (!truth || labels.rank != 1 || images.rank < 1 || labels.shape[0] != images.shape[0]) {
            fprintf(stderr, "%s: not an int64 .npy file with one label per image\n", argv[3]);
            free(truth);
            free(pixels);
            return 1;
        }
    }
    amber_model *model = NULL;
    amber_session *session = NULL;
    amber_status st = amber_model_open_file(argv[1], NULL, &model);
    if (st != AMBER_OK) {
        fprintf(stderr, "%s: %s\n", amber_status_name(st), model ? amber_model_error(model) : "");
        amber_model_close(model);
        free(pixels);
        return 1;
    }
    size_t n_in = 0, n_out = 0;
    amber_tensor outputs[16];
    if (amber_model_entry_arity(model, "forward", &n_in, &n_out) != AMBER_OK || n_in != 1 ||
        n_out < 1 || n_out > 16) {
        fprintf(stderr, "the model needs an entry point forward with one input\n");
        st = AMBER_ERR_NOT_FOUND;
    } else if ((st = amber_session_create(model, &session)) != AMBER_OK ||
               (st = amber_session_run(session, "forward", &images, 1, outputs, n_out)) != AMBER_OK) {
        fprintf(stderr, "%s: %s\n", amber_status_name(st),
                session ? amber_session_error(session) : "cannot create a session");
    } else if (outputs[0].dtype != AMBER_FLOAT32 || outputs[0].rank != 2) {
        fprintf(stderr, "the first output is not a float32 matrix of scores\n");
        st = AMBER_ERR_DTYPE;
    } else {
        const float *scores = outputs[0].data;
        int64_t rows = outputs[0].shape[0], classes = outputs[0].shape[1], correct = 0;
        for (int64_t i = 0; i < rows; i++) {
            int64_t best = 0;
            for (int64_t c = 1; c < classes; c++)
                if (scores[i * classes + c] > scores[i * classes + best]) best = c;
            if (truth) {
                printf("image %lld: predicted %lld, label %lld\n", (long long)i, (long long)best,
                       (long long)truth[i]);
                correct += best == truth[i];
            } else {
                printf("%lld\n", (long long)best);
            }
        }
        if (truth && rows > 0)
            printf("accuracy: %lld/%lld = %.4f\n", (long long)correct, (long long)rows,
                   (double)correct / (double)rows);
    }
    amber_session_free(session);
    amber_model_close(model);
    free(truth);
    free(pixels);
    return st == AMBER_OK ? 0 : 1;
}
