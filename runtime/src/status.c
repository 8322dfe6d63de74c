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
        am_escape(buf, strlen(buf), err->msg, sizeof err->msg);
        err->status = status;
    }
    return status;
}

/* Length of the UTF-8 sequence at s (at most n bytes) and its code point, or 0. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    size_t k = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    if (c >= 0xf5 || !k || k > n) return 0;
    uint32_t v = c & (0x7f >> k);
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if ((k == 3 && (v < 0x800 || (v >= 0xd800 && v < 0xe000))) || (k == 4 && (v < 0x10000 || v > 0x10ffff)))
        return 0;
    *cp = v;
    return k;
}

static bool unsafe_code_point(uint32_t v) {
    return v < 0x20 || (v >= 0x7f && v < 0xa0) || v == 0x61c || (v >= 0x200b && v <= 0x200f) ||
           (v >= 0x2028 && v <= 0x202e) || (v >= 0x2060 && v <= 0x206f) || v == 0xfeff;
}

size_t am_escape(const char *s, size_t len, char *out, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        char piece[8];
        size_t pn = 0, step = 1;
        uint32_t cp = u[i];
        if (u[i] >= 0x80 && !(step = utf8_decode(u + i, len - i, &cp))) {
            step = 1;
            cp = 0x100; /* an invalid byte: escaped as a byte */
        }
        if (u[i] == '\\') {
            piece[pn++] = '\\';
            piece[pn++] = '\\';
        } else if (cp == 0x100 || (cp < 0x100 && unsafe_code_point(cp))) {
            unsigned b = cp == 0x100 ? u[i] : cp;
            memcpy(piece, "\\x", 2);
            piece[2] = hex[b >> 4];
            piece[3] = hex[b & 15];
            pn = 4;
        } else if (unsafe_code_point(cp)) {
            memcpy(piece, "\\u", 2);
            for (int d = 0; d < 4; d++) piece[2 + d] = hex[(cp >> (12 - 4 * d)) & 15];
            pn = 6;
        } else {
            memcpy(piece, s + i, step);
            pn = step;
        }
        if (o + pn + 1 > cap || (i + step < len && o + pn + 4 > cap)) {
            if (o + 4 > cap) o = cap >= 4 ? cap - 4 : 0;
            memcpy(out + o, "...", cap >= 4 ? 3 : 0);
            o += cap >= 4 ? 3 : 0;
            break;
        }
        memcpy(out + o, piece, pn);
        o += pn;
        i += step;
    }
    if (cap) out[o < cap ? o : cap - 1] = '\0';
    return o;
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
