
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * The key memo: per worker, the key and model that a request's raw bytes
 * gave last time, found by a SHA-256 of those bytes and of everything
 * else the key reads (ngx_llm_cache_raw_digest()).  A repeated request,
 * the cache's common case, is then keyed without parsing its JSON or
 * writing its canonical form.  The key is a pure function of that input
 * and of the location's configuration, which a worker never sees change,
 * so an entry is never stale; it is direct-mapped, and a newer request
 * simply takes its slot.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_module.h"


#define NGX_LLM_CACHE_MEMO_SLOTS  1024
#define NGX_LLM_CACHE_MEMO_DATA   214


typedef struct {
    u_char      digest[NGX_LLM_CACHE_RAW_DIGEST_LEN];
    uint16_t    key_len;
    uint16_t    model_len;
    u_char      data[NGX_LLM_CACHE_MEMO_DATA];   /* key, then model */
} ngx_llm_cache_memo_slot_t;


static void ngx_llm_cache_key_memo_free(void *data);


static ngx_llm_cache_memo_slot_t  *ngx_llm_cache_memo;


static ngx_llm_cache_memo_slot_t *
ngx_llm_cache_key_memo_slot(u_char *digest)
{
    ngx_uint_t  i;

    i = ((ngx_uint_t) digest[0] << 8 | digest[1]) % NGX_LLM_CACHE_MEMO_SLOTS;

    return &ngx_llm_cache_memo[i];
}


ngx_int_t
ngx_llm_cache_key_memo_find(ngx_http_request_t *r, u_char *digest,
    ngx_llm_cache_ctx_t *ctx)
{
    u_char                     *p;
    ngx_llm_cache_memo_slot_t  *s;

    if (ngx_llm_cache_memo == NULL) {
        return NGX_DECLINED;
    }

    s = ngx_llm_cache_key_memo_slot(digest);

    if (s->key_len == 0
        || ngx_memcmp(s->digest, digest, NGX_LLM_CACHE_RAW_DIGEST_LEN) != 0)
    {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, s->key_len + s->model_len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, s->data, s->key_len + s->model_len);

    ctx->key.data = p;
    ctx->key.len = s->key_len;
    ctx->model.data = p + s->key_len;
    ctx->model.len = s->model_len;

    return NGX_OK;
}


void
ngx_llm_cache_key_memo_save(ngx_http_request_t *r, u_char *digest,
    ngx_llm_cache_ctx_t *ctx)
{
    u_char                     *p;
    ngx_pool_cleanup_t         *cln;
    ngx_llm_cache_memo_slot_t  *s;

    if (ctx->key.len + ctx->model.len > NGX_LLM_CACHE_MEMO_DATA
        || ctx->key.len == 0)
    {
        return;
    }

    if (ngx_llm_cache_memo == NULL) {
        /*
         * the cycle's, made on first use (250K): gone with the cycle's
         * pool, so a reload without a master process starts afresh
         */

        cln = ngx_pool_cleanup_add(ngx_cycle->pool, 0);
        if (cln == NULL) {
            return;
        }

        ngx_llm_cache_memo = ngx_pcalloc(ngx_cycle->pool,
                                         NGX_LLM_CACHE_MEMO_SLOTS
                                         * sizeof(ngx_llm_cache_memo_slot_t));
        if (ngx_llm_cache_memo == NULL) {
            return;
        }

        cln->handler = ngx_llm_cache_key_memo_free;
    }

    s = ngx_llm_cache_key_memo_slot(digest);

    ngx_memcpy(s->digest, digest, NGX_LLM_CACHE_RAW_DIGEST_LEN);

    p = ngx_cpymem(s->data, ctx->key.data, ctx->key.len);

    if (ctx->model.len) {
        ngx_memcpy(p, ctx->model.data, ctx->model.len);
    }

    s->key_len = (uint16_t) ctx->key.len;
    s->model_len = (uint16_t) ctx->model.len;
}


static void
ngx_llm_cache_key_memo_free(void *data)
{
    ngx_llm_cache_memo = NULL;
}
