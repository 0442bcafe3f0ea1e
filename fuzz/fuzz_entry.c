
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * libFuzzer harness for the stored entry format (ngx_llm_cache_entry.c).
 * The whole input is a value read from Redis: anyone who can write to
 * Redis chooses it, and what the decoder accepts goes out as a status
 * line, a Content-Type header and a body.
 *
 * Decoder: it reads only the input (an exact-size copy, so ASan sees one
 * byte past it); what it accepts is what the store path writes: status
 * 200, a content type of visible ASCII, spaces and tabs (no CR, LF, NUL),
 * no NUL in the body, a creation time in (0, now + a day], the parts
 * laid end to end over the whole input; and the encoder, given those
 * parts, writes the input back byte for byte (one spelling per entry;
 * an LLMC1 or LLMC2 entry, which has no ttl, comes back as the same
 * parts in an LLMC3 one with a zero ttl, the LLMC1 with a zero usage).
 *
 * Encoder: the input split in two at the place its first byte says, as a
 * content type and a body (in two buffers), with a usage and a ttl taken
 * from its bytes: whatever the encoder accepts, the decoder gives back
 * unchanged.  (The other way round is the decoder's check above: what
 * it accepts, the encoder writes.)
 *
 * A broken invariant aborts; ASan, UBSan and LSan catch the rest.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_module.h"


#define fuzz_assert(expr)                                                     \
    if (!(expr)) {                                                            \
        fprintf(stderr, "fuzz_entry.c:%d: invariant failed: %s\n",            \
                __LINE__, #expr);                                             \
        abort();                                                              \
    }


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_decode(ngx_pool_t *pool, u_char *data, size_t size);
static void fuzz_encode(ngx_pool_t *pool, u_char *data, size_t size);
static ngx_uint_t fuzz_same(u_char *a, size_t alen, u_char *b, size_t blen);


static ngx_log_t  fuzz_log;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_pagesize = getpagesize();

    /* ngx_time(): the decoder refuses entries from the future */
    ngx_time_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char      *copy;
    ngx_pool_t  *pool;

    /* no room for small allocations: each is its own malloc() for ASan */

    pool = ngx_create_pool(sizeof(ngx_pool_t), &fuzz_log);
    fuzz_assert(pool != NULL);

    copy = malloc(size ? size : 1);
    fuzz_assert(copy != NULL);

    if (size) {
        ngx_memcpy(copy, data, size);
    }

    fuzz_decode(pool, copy, size);
    fuzz_encode(pool, copy, size);

    free(copy);
    ngx_destroy_pool(pool);

    return 0;
}


static void
fuzz_decode(ngx_pool_t *pool, u_char *data, size_t size)
{
    u_char                 *p;
    time_t                  created, created2, ttl, ttl2;
    ngx_int_t               rc;
    ngx_str_t               content_type, body, entry, content_type2, body2;
    ngx_buf_t              *b;
    ngx_uint_t              status, status2;
    ngx_chain_t             cl;
    ngx_llm_cache_usage_t   usage, usage2;
    ngx_llm_cache_entry_t   e;

    /* a compressed entry (LLMC4): its parts in the input, as checked */

    rc = ngx_llm_cache_entry_parse(data, size, &e);

    fuzz_assert(rc == NGX_OK || rc == NGX_ERROR);

    if (rc == NGX_OK && e.encoding == NGX_LLM_CACHE_ENCODING_GZIP) {
        fuzz_assert(ngx_strncmp(data, "LLMC4 ", 6) == 0);
        fuzz_assert(e.status == NGX_HTTP_OK && e.body.len >= 18);
        fuzz_assert(e.body.data > data && e.body.data + e.body.len
                                          == data + size);
        fuzz_assert(e.body.data[0] == 0x1f && e.body.data[1] == 0x8b);
        fuzz_assert(e.length <= NGX_MAX_UINT32_VALUE);
    }

    rc = ngx_llm_cache_entry_decode(data, size, &status, &content_type,
                                    &created, &ttl, &usage, &body);

    fuzz_assert(rc == NGX_OK || rc == NGX_ERROR);

    if (rc != NGX_OK) {
        return;
    }

    fuzz_assert(status == NGX_HTTP_OK);
    fuzz_assert(created > 0 && created <= ngx_time() + 86400);
    fuzz_assert(ttl >= 0 && ttl <= (time_t) NGX_MAX_UINT32_VALUE);

    /* the parts lie end to end over the whole input */

    fuzz_assert(content_type.data >= data
                && content_type.data + content_type.len == body.data
                && body.data + body.len == data + size);

    for (p = content_type.data; p < content_type.data + content_type.len;
         p++)
    {
        fuzz_assert((*p >= 0x20 && *p < 0x7f) || *p == '\t');
    }

    fuzz_assert(content_type.len > 0);
    fuzz_assert(ngx_strlchr(body.data, body.data + body.len, '\0') == NULL);

    /* one spelling per entry: written again, the same bytes */

    b = ngx_calloc_buf(pool);
    fuzz_assert(b != NULL);

    b->pos = body.data;
    b->last = body.data + body.len;
    b->memory = 1;

    cl.buf = b;
    cl.next = NULL;

    rc = ngx_llm_cache_entry_encode(pool, status, &content_type, created,
                                    ttl, &usage, &cl, body.len, &entry);
    fuzz_assert(rc == NGX_OK);

    if (ngx_strncmp(data, "LLMC3 ", 6) == 0) {
        fuzz_assert(fuzz_same(entry.data, entry.len, data, size));
        return;
    }

    /* the earlier formats: no ttl, and in the first no usage */

    fuzz_assert(ttl == 0);

    if (ngx_strncmp(data, "LLMC1 ", 6) == 0) {
        fuzz_assert(usage.prompt == 0 && usage.completion == 0
                    && usage.duration == 0);
    }

    rc = ngx_llm_cache_entry_decode(entry.data, entry.len, &status2,
                                    &content_type2, &created2, &ttl2, &usage2,
                                    &body2);
    fuzz_assert(rc == NGX_OK);
    fuzz_assert(status2 == status && created2 == created && ttl2 == 0);
    fuzz_assert(usage2.prompt == usage.prompt
                && usage2.completion == usage.completion
                && usage2.duration == usage.duration);
    fuzz_assert(fuzz_same(content_type2.data, content_type2.len,
                          content_type.data, content_type.len));
    fuzz_assert(fuzz_same(body2.data, body2.len, body.data, body.len));
}


static void
fuzz_encode(ngx_pool_t *pool, u_char *data, size_t size)
{
    size_t                  split, half;
    time_t                  created, created2, ttl, ttl2;
    ngx_int_t               rc;
    ngx_str_t               content_type, content_type2, body, entry;
    ngx_buf_t              *b[2];
    ngx_uint_t              status2;
    ngx_chain_t             cl[2];
    ngx_llm_cache_usage_t   usage, usage2;

    if (size == 0) {
        return;
    }

    split = ngx_min((size_t) data[0], size - 1);

    content_type.data = data + 1;
    content_type.len = split;

    body.data = data + 1 + split;
    body.len = size - 1 - split;

    /* the body in two buffers, as the capture filter may hold it */

    half = body.len / 2;

    b[0] = ngx_calloc_buf(pool);
    b[1] = ngx_calloc_buf(pool);
    fuzz_assert(b[0] != NULL && b[1] != NULL);

    b[0]->pos = body.data;
    b[0]->last = body.data + half;
    b[1]->pos = body.data + half;
    b[1]->last = body.data + body.len;

    cl[0].buf = b[0];
    cl[0].next = &cl[1];
    cl[1].buf = b[1];
    cl[1].next = NULL;

    created = ngx_time() - (data[0] & 0x0f);

    /* from 0 to past 2^32 - 1, where the encoder clamps */

    usage.prompt = (ngx_uint_t) size * 40009;
    usage.completion = (data[0] & 0x20) ? NGX_MAX_UINT32_VALUE : split;
    usage.duration = (data[0] & 0x40) ? (ngx_msec_t) -1 : half;

    /* up to past 2^32 - 1 too */

    ttl = (data[0] & 0x80) ? (time_t) size << 24 : (time_t) split;

    rc = ngx_llm_cache_entry_encode(pool, (data[0] & 0x10) ? 204 : 200,
                                    &content_type, created, ttl, &usage, cl,
                                    body.len, &entry);

    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    if (rc != NGX_OK) {
        return;
    }

    fuzz_assert(!(data[0] & 0x10));

    rc = ngx_llm_cache_entry_decode(entry.data, entry.len, &status2,
                                    &content_type2, &created2, &ttl2, &usage2,
                                    &body);
    fuzz_assert(rc == NGX_OK);
    fuzz_assert(status2 == NGX_HTTP_OK && created2 == created);
    fuzz_assert(ttl2 == ngx_min(ttl, (time_t) NGX_MAX_UINT32_VALUE));
    fuzz_assert(usage2.prompt == ngx_min(usage.prompt, NGX_MAX_UINT32_VALUE)
                && usage2.completion
                   == ngx_min(usage.completion, NGX_MAX_UINT32_VALUE)
                && usage2.duration
                   == ngx_min(usage.duration, NGX_MAX_UINT32_VALUE));
    fuzz_assert(fuzz_same(content_type2.data, content_type2.len,
                          content_type.data, content_type.len));
    fuzz_assert(fuzz_same(body.data, body.len,
                          data + 1 + split, size - 1 - split));
}


static ngx_uint_t
fuzz_same(u_char *a, size_t alen, u_char *b, size_t blen)
{
    return alen == blen && (alen == 0 || ngx_memcmp(a, b, alen) == 0);
}
