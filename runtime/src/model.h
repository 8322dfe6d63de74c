/* The internals of amber_model, shared by the loader (model.c) and sessions. */
#ifndef AMBER_MODEL_H
#define AMBER_MODEL_H

#include "prog.h"

typedef struct model_tensor {
    const char *name;
    amber_tensor view;
} model_tensor;

struct amber_model {
    am_error err;
    bool failed;
    amber_options opts;
    const uint8_t *base;
    size_t size;
    void *map; /* non-NULL when we mapped the file */
    size_t map_size;
    uint32_t format_version;
    const char *header;
    size_t header_len;
    am_json_doc doc;
    size_t n_tensors;
    model_tensor *tensors;
    size_t *by_name; /* indices of tensors sorted by name */
    am_program prog;
};

/* The entry point called name, or NULL. */
const am_entry *am_model_entry(const amber_model *m, const char *name);

#endif
