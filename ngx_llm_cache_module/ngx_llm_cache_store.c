
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * The store policy for the provider's answer, called from the filters:
 * whether its header allows storing it, a copy of its body as it passes
 * (an event stream judged event by event on the way, see
 * ngx_llm_cache_sse.c), and the store once it ended, if it is whole.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_module.h"


static void ngx_llm_cache_store_invalid(ngx_http_request_t *sr,
    ngx_llm_cache_ctx_t *ctx, char *reason);


/* at the provider's header: 1 if the answer may be stored */

ngx_uint_t
ngx_llm_cache_storable(ngx_http_request_t *sr, ngx_llm_cache_ctx_t *ctx)
{
    ngx_str_t                 *type, media;
    ngx_uint_t                 i;
    ngx_list_part_t           *part;
    ngx_table_elt_t           *h;
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(ctx->request, ngx_llm_cache_module);

    ctx->sse = NULL;

    if (sr->headers_out.status != NGX_HTTP_OK) {
        ctx->store_result = NGX_LLM_CACHE_NOT_STORED_STATUS;
        return 0;
    }

    type = &sr->headers_out.content_type;

    ngx_llm_cache_media_type(type, &media);

    ctx->provider_sse = ngx_llm_cache_header_is(&media, "text/event-stream");

    if (!ctx->provider_sse
        && !ngx_llm_cache_header_is(&media, "application/json"))
    {
        ctx->store_result = NGX_LLM_CACHE_NOT_STORED_TYPE;
        return 0;
    }

    if (sr->headers_out.content_length_n > (off_t) lcf->max_size) {
        ctx->store_result = NGX_LLM_CACHE_NOT_STORED_TOO_BIG;
        return 0;
    }

    part = &sr->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0) {
            continue;
        }

        /* an encoded body would be replayed without its encoding */

        if (ngx_llm_cache_header_is(&h[i].key, "Content-Encoding")
            && !ngx_llm_cache_header_is(&h[i].value, "identity"))
        {
            ctx->store_result = NGX_LLM_CACHE_NOT_STORED_TYPE;
            return 0;
        }

        if (ngx_llm_cache_header_is(&h[i].key, "Cache-Control")
            && (ngx_llm_cache_header_has(&h[i].value, "no-store")
                || ngx_llm_cache_header_has(&h[i].value, "private")))
        {
            ctx->store_result = NGX_LLM_CACHE_NOT_STORED_NO_STORE;
            return 0;
        }
    }

    if (ctx->provider_sse) {
        ctx->sse = ngx_llm_cache_sse_create(ctx->request->pool);
        if (ctx->sse == NULL) {
            return 0;
        }
    }

    ctx->provider_status = sr->headers_out.status;
    ctx->provider_content_type = *type;

    return 1;
}


/*
 * A copy of one buffer of the body; an event stream is judged as it
 * passes, so that one with an error event stops being copied at once.
 * NGX_DECLINED: the answer is not stored.
 */

ngx_int_t
ngx_llm_cache_capture(ngx_http_request_t *sr, ngx_llm_cache_ctx_t *ctx,
    ngx_buf_t *buf)
{
    size_t                     size;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
    ngx_llm_cache_loc_conf_t  *lcf;

    if (!ngx_buf_in_memory(buf)) {
        return ngx_buf_special(buf) ? NGX_OK : NGX_DECLINED;
    }

    size = buf->last - buf->pos;

    if (size == 0) {
        return NGX_OK;
    }

    lcf = ngx_http_get_module_loc_conf(ctx->request, ngx_llm_cache_module);

    if (ctx->captured_size + size > lcf->max_size) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                       "llm_cache: response is over %uz, not stored",
                       lcf->max_size);
        ctx->store_result = NGX_LLM_CACHE_NOT_STORED_TOO_BIG;
        return NGX_DECLINED;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "llm_cache: capture %uz bytes", size);

    if (ctx->sse
        && ngx_llm_cache_sse_parse(ctx->sse, buf->pos, size) != NGX_OK)
    {
        ngx_llm_cache_store_invalid(sr, ctx,
                                    ngx_llm_cache_sse_reason(ctx->sse));
        return NGX_DECLINED;
    }

    b = ngx_create_temp_buf(sr->pool, size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->pos, buf->pos, size);

    cl = ngx_alloc_chain_link(sr->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    *ctx->captured_last = cl;
    ctx->captured_last = &cl->next;
    ctx->captured_size += size;

    return NGX_OK;
}


/* once the subrequest's last buffer has passed */

void
ngx_llm_cache_store(ngx_http_request_t *sr, ngx_llm_cache_ctx_t *ctx)
{
    time_t                     ttl, keep;
    ngx_int_t                  rc;
    ngx_str_t                  value, entry;
    ngx_llm_cache_loc_conf_t  *lcf;

    ctx->stored = 1;

    lcf = ngx_http_get_module_loc_conf(ctx->request, ngx_llm_cache_module);

    /* evaluated on the subrequest, so a map can use $upstream_... */

    if (ngx_http_complex_value(sr, lcf->ttl, &value) != NGX_OK) {
        return;
    }

    ttl = ngx_parse_time(&value, 1);

    if (ttl == (time_t) NGX_ERROR) {
        ngx_log_error(NGX_LOG_WARN, sr->connection->log, 0,
                      "llm_cache: invalid llm_cache_ttl value \"%V\", "
                      "response not stored", &value);
        return;
    }

    /* the client's Cache-Control: max-age, with llm_cache_client_control */

    if (ctx->has_max_age && ctx->max_age < ttl) {
        ttl = ctx->max_age;
    }

    if (ttl == 0) {
        ctx->store_result = NGX_LLM_CACHE_NOT_STORED_NO_STORE;
        return;
    }

    if (ctx->sse && ngx_llm_cache_sse_end(ctx->sse) != NGX_OK) {
        ngx_llm_cache_store_invalid(sr, ctx,
                                    ngx_llm_cache_sse_reason(ctx->sse));
        return;
    }

    ngx_llm_cache_metrics_usage(sr, ctx);

    if (ngx_llm_cache_entry_encode(sr->pool, ctx->provider_status,
                                   &ctx->provider_content_type, ngx_time(),
                                   ttl, &ctx->usage, ctx->captured,
                                   ctx->captured_size, &entry)
        != NGX_OK)
    {
        ctx->store_result = NGX_LLM_CACHE_NOT_STORED_INVALID;
        return;
    }

    if (!ctx->provider_sse
        && !ngx_llm_cache_json_valid(entry.data + entry.len
                                     - ctx->captured_size,
                                     ctx->captured_size))
    {
        ngx_llm_cache_store_invalid(sr, ctx, "it does not parse");
        return;
    }

    /* an expired entry is kept for llm_cache_use_stale */

    keep = ttl;

    if (!(lcf->use_stale & NGX_HTTP_UPSTREAM_FT_OFF)) {
        keep += lcf->stale_ttl;
    }

    if (lcf->l1) {
        /* before the SET: its own invalidation may come back first */
        ngx_llm_cache_l1_snapshot(ctx->request, ctx);
    }

    rc = ngx_llm_cache_redis_set(lcf->redis, &ctx->key, &entry, keep,
                                 ctx->lock_held ? &ctx->lock_key : NULL,
                                 &ctx->lock_token);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "llm_cache: store \"%V\" %uz bytes rc:%i",
                   &ctx->key, entry.len, rc);

    ctx->store_result = (rc == NGX_OK) ? NGX_LLM_CACHE_STORED
                                       : NGX_LLM_CACHE_NOT_STORED_REDIS;

    if (rc == NGX_OK) {
        /* the unlock went right behind the entry */
        ctx->lock_held = 0;
        ctx->stored_ttl = ttl;

        if (lcf->l1) {
            ngx_llm_cache_l1_fill(ctx->request, ctx, &entry);
        }

        if (ctx->sem) {
            /* a paraphrase may now be answered from it */
            ngx_llm_cache_semantic_stored(ctx);
        }
    }
}


static void
ngx_llm_cache_store_invalid(ngx_http_request_t *sr, ngx_llm_cache_ctx_t *ctx,
    char *reason)
{
    ngx_log_error(NGX_LOG_WARN, sr->connection->log, 0,
                  "llm_cache: provider response is not valid \"%V\", "
                  "not stored: %s", &ctx->provider_content_type, reason);

    ctx->store_result = NGX_LLM_CACHE_NOT_STORED_INVALID;
}
