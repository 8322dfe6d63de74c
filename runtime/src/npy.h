/* NumPy .npy files (format versions 1.0-3.0), for amber-run and tests. Little-endian,
 * C-order arrays of amber's five dtypes only. */
#ifndef AMBER_NPY_H
#define AMBER_NPY_H

#include "internal.h"

/* Parses an .npy image; on success t->data points into buf (not copied). */
amber_status am_npy_parse(const void *buf, size_t n, amber_tensor *t, am_error *err);
/* Reads a file; *owned receives malloc'd memory holding the data (free it). */
amber_status am_npy_read_file(const char *path, amber_tensor *t, void **owned, am_error *err);
amber_status am_npy_write_file(const char *path, const amber_tensor *t, am_error *err);

#endif
