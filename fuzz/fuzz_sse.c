
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * libFuzzer harness for ngx_llm_cache_sse.c, the event-stream parser that
 * judges a provider's stream as it passes.  The whole input is the stream.
 * Invariants (a violation aborts):
 *
 *   - the verdict (complete or not, and why) is the same whether the
 *     stream comes in one piece, byte by byte, or in 1-16 byte pieces;
 *   - feeding more after the parser has said no changes nothing;
 *   - a stream without CR judges the same with its LFs made CRLF or CR;
 *   - a complete stream ends with a line end.
 *
 * Plus whatever ASan, UBSan and LeakSanitizer report (the yajl handle of
 * an unfinished event is freed by the pool cleanup).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_llm_cache_sse.h"


#define fuzz_assert(cond)                                                    \
    if (!(cond)) {                                                           \
        fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__,   \
                __LINE__);                                                   \
        abort();                                                             \
    }


typedef struct {
    ngx_int_t   rc;
    char       *reason;
} fuzz_verdict_t;


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_judge(u_char *data, size_t size, ngx_uint_t mode,
    fuzz_verdict_t *v);
static void fuzz_same(fuzz_verdict_t *a, fuzz_verdict_t *b);
static u_char *fuzz_newlines(u_char *data, size_t size, char *nl,
    size_t *len);


static ngx_log_t  fuzz_log;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_pagesize = getpagesize();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char          *p, *conv;
    size_t           len;
    ngx_uint_t       mode;
    fuzz_verdict_t   whole, other;

    p = (u_char *) data;

    fuzz_judge(p, size, 0, &whole);

    if (whole.rc == NGX_OK) {
        fuzz_assert(size > 0 && (p[size - 1] == LF || p[size - 1] == CR));
    }

    for (mode = 1; mode <= 2; mode++) {
        fuzz_judge(p, size, mode, &other);
        fuzz_same(&whole, &other);
    }

    if (memchr(data, CR, size) != NULL) {
        return 0;
    }

    conv = fuzz_newlines(p, size, "\r\n", &len);
    fuzz_judge(conv, len, 2, &other);
    fuzz_same(&whole, &other);
    free(conv);

    conv = fuzz_newlines(p, size, "\r", &len);
    fuzz_judge(conv, len, 1, &other);
    fuzz_same(&whole, &other);
    free(conv);

    return 0;
}


/* mode 0: one piece; 1: byte by byte; 2: 1-16 bytes, sizes from the data */

static void
fuzz_judge(u_char *data, size_t size, ngx_uint_t mode, fuzz_verdict_t *v)
{
    size_t                n, pos;
    ngx_int_t             rc, first;
    ngx_pool_t           *pool;
    ngx_llm_cache_sse_t  *sse;

    pool = ngx_create_pool(4096, &fuzz_log);
    fuzz_assert(pool != NULL);

    sse = ngx_llm_cache_sse_create(pool);
    fuzz_assert(sse != NULL);

    first = NGX_OK;

    for (pos = 0; pos < size; pos += n) {

        switch (mode) {
        case 0:
            n = size;
            break;
        case 1:
            n = 1;
            break;
        default:
            n = 1 + (data[pos] ^ (pos * 7)) % 16;
            n = ngx_min(n, size - pos);
        }

        rc = ngx_llm_cache_sse_parse(sse, data + pos, n);
        fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

        if (first != NGX_OK) {
            fuzz_assert(rc == first);
        }

        first = rc;
    }

    v->rc = ngx_llm_cache_sse_end(sse);
    v->reason = ngx_llm_cache_sse_reason(sse);

    fuzz_assert(v->rc == NGX_OK || v->rc == NGX_DECLINED);
    fuzz_assert(first == NGX_OK || v->rc == first);

    ngx_destroy_pool(pool);
}


static void
fuzz_same(fuzz_verdict_t *a, fuzz_verdict_t *b)
{
    if (a->rc != b->rc || strcmp(a->reason, b->reason) != 0) {
        fprintf(stderr, "verdicts differ: %d \"%s\" and %d \"%s\"\n",
                (int) a->rc, a->reason, (int) b->rc, b->reason);
        fuzz_assert(a->rc == b->rc && strcmp(a->reason, b->reason) == 0);
    }
}


static u_char *
fuzz_newlines(u_char *data, size_t size, char *nl, size_t *len)
{
    u_char  *out, *p;
    size_t   i, n;

    n = strlen(nl);

    out = malloc(size * n + 1);
    fuzz_assert(out != NULL);

    for (p = out, i = 0; i < size; i++) {
        if (data[i] == LF) {
            p = ngx_cpymem(p, nl, n);

        } else {
            *p++ = data[i];
        }
    }

    *len = p - out;

    return out;
}
