#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

amber_status am_fail(am_error *err, amber_status status, const char *fmt, ...) {
    if (err) {
        /* Formatted apart first: callers may pass err->msg itself as an argument. */
        char buf[AM_ERR_MSG];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        memcpy(err->msg, buf, sizeof buf);
        err->status = status;
    }
    return status;
}

void am_error_clear(am_error *err) {
    if (err) {
        err->status = AMBER_OK;
        err->msg[0] = '\0';
    }
}

const char *amber_status_name(amber_status status) {
    switch (status) {
    case AMBER_OK: return "AMBER_OK";
    case AMBER_ERR_INVALID_ARGUMENT: return "AMBER_ERR_INVALID_ARGUMENT";
    case AMBER_ERR_NO_MEMORY: return "AMBER_ERR_NO_MEMORY";
    case AMBER_ERR_LIMIT: return "AMBER_ERR_LIMIT";
    case AMBER_ERR_IO: return "AMBER_ERR_IO";
    case AMBER_ERR_FORMAT: return "AMBER_ERR_FORMAT";
    case AMBER_ERR_VERSION: return "AMBER_ERR_VERSION";
    case AMBER_ERR_INTEGRITY: return "AMBER_ERR_INTEGRITY";
    case AMBER_ERR_NOT_FOUND: return "AMBER_ERR_NOT_FOUND";
    case AMBER_ERR_DTYPE: return "AMBER_ERR_DTYPE";
    case AMBER_ERR_SHAPE: return "AMBER_ERR_SHAPE";
    case AMBER_ERR_OUT_OF_RANGE: return "AMBER_ERR_OUT_OF_RANGE";
    case AMBER_ERR_INTERNAL: return "AMBER_ERR_INTERNAL";
    case AMBER_ERR_MISMATCH: return "AMBER_ERR_MISMATCH";
    }
    return "AMBER_ERR_UNKNOWN";
}

const char *amber_version(void) {
#define AM_STR2(x) #x
#define AM_STR(x) AM_STR2(x)
    return AM_STR(AMBER_VERSION_MAJOR) "." AM_STR(AMBER_VERSION_MINOR) "." AM_STR(
        AMBER_VERSION_PATCH);
}
