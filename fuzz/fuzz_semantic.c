
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * libFuzzer harness for the semantic layer's pure core
 * (ngx_llm_cache_semantic_index.c).  The whole input is, at once:
 *
 *   an embedding reply (the embedder's answer, JSON): parsed with any
 *   dimension and with 16; what is accepted is a unit vector of finite
 *   values, of the dimension asked for, whose signature can be computed,
 *   and whose vector entry decodes back to the same bits;
 *
 *   a vector entry (a value read from Redis): the decoder reads only the
 *   input (an exact-size copy), accepts a key and finite values laid end
 *   to end over the whole input, and what it accepts the encoder writes
 *   back byte for byte (one spelling per entry);
 *
 *   a text for the guards: the digest is the same twice, and the
 *   numbers, negation and strict digests do not change when the ASCII
 *   letters of the text are lowercased (only entities look at case);
 *
 *   ZSET members (64-byte slices, the last one short): the candidates are
 *   members of the right length, within max_hamming, nearest first.
 *
 * A broken invariant aborts; ASan, UBSan and LSan catch the rest.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <math.h>

#include "ngx_llm_cache_semantic.h"


#define fuzz_assert(expr)                                                     \
    if (!(expr)) {                                                            \
        fprintf(stderr, "fuzz_semantic.c:%d: invariant failed: %s\n",         \
                __LINE__, #expr);                                             \
        abort();                                                              \
    }


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_embedding(ngx_pool_t *pool, u_char *data, size_t size,
    ngx_uint_t dims);
static void fuzz_entry(ngx_pool_t *pool, u_char *data, size_t size);
static void fuzz_guards(u_char *data, size_t size);
static void fuzz_candidates(u_char *data, size_t size);


static ngx_log_t    fuzz_log;
static ngx_cycle_t  fuzz_cycle;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ngx_pagesize = getpagesize();

    /* the signature planes are kept with the cycle: one for the run */

    fuzz_cycle.log = &fuzz_log;
    fuzz_cycle.pool = ngx_create_pool(1024, &fuzz_log);
    fuzz_assert(fuzz_cycle.pool != NULL);

    ngx_cycle = &fuzz_cycle;

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

    fuzz_embedding(pool, copy, size, 0);
    fuzz_embedding(pool, copy, size, 16);
    fuzz_entry(pool, copy, size);
    fuzz_guards(copy, size);
    fuzz_candidates(copy, size);

    free(copy);
    ngx_destroy_pool(pool);

    return 0;
}


static void
fuzz_embedding(ngx_pool_t *pool, u_char *data, size_t size, ngx_uint_t dims)
{
    u_char                      sig[NGX_LLM_CACHE_SEM_SIG_BYTES];
    float                       weights[NGX_LLM_CACHE_SEM_SIG_BITS];
    double                      norm;
    ngx_int_t                   rc;
    ngx_str_t                   error, key, entry, key2;
    ngx_uint_t                  i;
    ngx_llm_cache_sem_vector_t  vec, vec2;

    ngx_str_null(&error);

    rc = ngx_llm_cache_sem_parse_embedding(pool, data, size, dims, &vec,
                                           &error);

    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    if (rc == NGX_DECLINED) {
        fuzz_assert(error.len > 0 && error.data != NULL);
        return;
    }

    fuzz_assert(vec.dims > 0 && vec.dims <= NGX_LLM_CACHE_SEM_MAX_DIMS);
    fuzz_assert(dims == 0 || vec.dims == dims);

    norm = 0;

    for (i = 0; i < vec.dims; i++) {
        fuzz_assert(isfinite(vec.v[i]));
        norm += (double) vec.v[i] * vec.v[i];
    }

    fuzz_assert(fabs(norm - 1) < 1e-3);

    fuzz_assert(ngx_llm_cache_sem_signature_weights(&vec, sig, weights)
                == NGX_OK);

    for (i = 0; i < NGX_LLM_CACHE_SEM_SIG_BITS; i++) {
        fuzz_assert(isfinite(weights[i]) && weights[i] >= 0);
    }

    fuzz_assert(fabs(ngx_llm_cache_sem_cosine(vec.v, vec.v, vec.dims) - 1)
                < 1e-6);

    /* what is stored comes back */

    ngx_str_set(&key, "llm:v2:k");

    fuzz_assert(ngx_llm_cache_sem_entry_encode(pool, &vec, &key, &entry)
                == NGX_OK);
    fuzz_assert(ngx_llm_cache_sem_entry_decode(pool, entry.data, entry.len,
                                               vec.dims, &key2, &vec2)
                == NGX_OK);
    fuzz_assert(key2.len == key.len
                && ngx_memcmp(key2.data, key.data, key.len) == 0);
    fuzz_assert(vec2.dims == vec.dims
                && ngx_memcmp(vec2.v, vec.v, vec.dims * sizeof(float)) == 0);
}


static void
fuzz_entry(ngx_pool_t *pool, u_char *data, size_t size)
{
    ngx_int_t                   rc;
    ngx_str_t                   key, out;
    ngx_uint_t                  i;
    ngx_llm_cache_sem_vector_t  vec;

    rc = ngx_llm_cache_sem_entry_decode(pool, data, size, 0, &key, &vec);

    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    if (rc != NGX_OK) {
        return;
    }

    fuzz_assert(vec.dims > 0 && vec.dims <= NGX_LLM_CACHE_SEM_MAX_DIMS);
    fuzz_assert(key.len > 0 && key.data > data
                && key.data + key.len <= data + size);
    fuzz_assert(key.data + key.len + 4 * vec.dims == data + size);

    for (i = 0; i < vec.dims; i++) {
        fuzz_assert(isfinite(vec.v[i]));
    }

    /* the dimension asked for, and another */

    fuzz_assert(ngx_llm_cache_sem_entry_decode(pool, data, size, vec.dims,
                                               &key, &vec)
                == NGX_OK);
    fuzz_assert(ngx_llm_cache_sem_entry_decode(pool, data, size,
                                               vec.dims + 1, &key, &vec)
                == NGX_DECLINED);

    /* one spelling: the encoder writes the input back */

    fuzz_assert(ngx_llm_cache_sem_entry_encode(pool, &vec, &key, &out)
                == NGX_OK);
    fuzz_assert(out.len == size && ngx_memcmp(out.data, data, size) == 0);
}


static void
fuzz_guards(u_char *data, size_t size)
{
    u_char   a[NGX_LLM_CACHE_SEM_GUARD_BYTES], b[NGX_LLM_CACHE_SEM_GUARD_BYTES],
            *lower;
    size_t   i;

    ngx_llm_cache_sem_guard_digest(data, size, a);
    ngx_llm_cache_sem_guard_digest(data, size, b);

    fuzz_assert(ngx_memcmp(a, b, sizeof(a)) == 0);
    fuzz_assert(ngx_llm_cache_sem_guard_differ(a, b, 0x1f) == 0);

    lower = malloc(size ? size : 1);
    fuzz_assert(lower != NULL);

    for (i = 0; i < size; i++) {
        lower[i] = ngx_tolower(data[i]);
    }

    ngx_llm_cache_sem_guard_digest(lower, size, b);
    free(lower);

    fuzz_assert(ngx_llm_cache_sem_guard_differ(a, b,
                                           NGX_LLM_CACHE_SEM_GUARD_NUMBERS
                                           | NGX_LLM_CACHE_SEM_GUARD_NEGATION
                                           | NGX_LLM_CACHE_SEM_GUARD_STRICT)
                == 0);
}


static void
fuzz_candidates(u_char *data, size_t size)
{
    u_char                      sig[NGX_LLM_CACHE_SEM_SIG_BYTES];
    float                       weights[NGX_LLM_CACHE_SEM_SIG_BITS];
    size_t                      off;
    ngx_str_t                   members[64];
    ngx_uint_t                  n, i, k, h, prev, maxh, out[16];
    ngx_llm_cache_sem_member_t  m;

    if (size < NGX_LLM_CACHE_SEM_SIG_BYTES + 1) {
        return;
    }

    ngx_memcpy(sig, data, NGX_LLM_CACHE_SEM_SIG_BYTES);
    maxh = data[NGX_LLM_CACHE_SEM_SIG_BYTES];

    for (i = 0; i < NGX_LLM_CACHE_SEM_SIG_BITS; i++) {
        weights[i] = (float) data[i % size] / 7;
    }

    n = 0;

    for (off = NGX_LLM_CACHE_SEM_SIG_BYTES + 1; off < size && n < 64;
         off += NGX_LLM_CACHE_SEM_MEMBER_LEN)
    {
        members[n].data = data + off;
        members[n].len = ngx_min(NGX_LLM_CACHE_SEM_MEMBER_LEN, size - off);
        n++;
    }

    k = ngx_llm_cache_sem_candidates(sig, members, n, maxh, out, 16);

    fuzz_assert(k <= 16 && k <= n);

    prev = 0;

    for (i = 0; i < k; i++) {
        fuzz_assert(out[i] < n);
        fuzz_assert(ngx_llm_cache_sem_member_decode(members[out[i]].data,
                                                    members[out[i]].len, &m)
                    == NGX_OK);

        h = ngx_llm_cache_sem_hamming(sig, m.sig);
        fuzz_assert(h <= maxh && h >= prev);
        prev = h;
    }

    k = ngx_llm_cache_sem_candidates_weighted(sig, weights, members, n, maxh,
                                              out, 8);

    fuzz_assert(k <= 8 && k <= n);

    for (i = 0; i < k; i++) {
        fuzz_assert(out[i] < n
                    && members[out[i]].len == NGX_LLM_CACHE_SEM_MEMBER_LEN);
        fuzz_assert(ngx_llm_cache_sem_hamming(sig, members[out[i]].data
                                              + NGX_LLM_CACHE_SEM_ID_BYTES)
                    <= maxh);
    }
}
