/* Load-time recognition of attention (attn.h) in a function's nodes. */
#ifndef AMBER_PLAN_ATTN_H
#define AMBER_PLAN_ATTN_H

#include "attn.h"
#include "prog.h"

/* Marks each attention found in f: its final matmul (or the transpose alone reading it)
 * gets node.attn (allocated in mem), the nodes it replaces become AM_FUSE_MEMBERs of it. Runs before elementwise fusion. */
amber_status am_plan_attention(am_func *f, const am_json_doc *doc, am_arena *mem,
                               am_error *err);

#endif
