
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

#include <zlib.h>

#include "ngx_llm_cache_module.h"


/* what the capture buffer starts with when the length is not known */
#define NGX_LLM_CACHE_CAPTURE_SIZE  16384
#define NGX_LLM_CACHE_CAPTURE_ROOM  256

/* the pieces a deflated JSON answer is parsed in */
#define NGX_LLM_CACHE_JSON_PIECE    262144


static void ngx_llm_cache_store_invalid(ngx_http_request_t *sr,
    ngx_llm_cache_ctx_t *ctx, char *reason);
static ngx_int_t ngx_llm_cache_capture_buf(ngx_http_request_t *sr,
    ngx_llm_cache_ctx_t *ctx, ngx_buf_t *buf);
static void ngx_llm_cache_store_entry(ngx_http_request_t *sr,
    ngx_llm_cache_ctx_t *ctx);
static ngx_int_t ngx_llm_cache_capture_start(ngx_http_request_t *sr,
    ngx_llm_cache_ctx_t *ctx);
static ngx_int_t ngx_llm_cache_capture_grow(ngx_llm_cache_ctx_t *ctx,
    size_t size);
static ngx_int_t ngx_llm_cache_capture_deflate(ngx_llm_cache_ctx_t *ctx,
    u_char *p, size_t len, ngx_uint_t flush);
static void ngx_llm_cache_capture_cleanup(void *data);
static ngx_uint_t ngx_llm_cache_store_json_inflated(ngx_http_request_t *sr,
    ngx_str_t *body);


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

    /* read as the answer passes (a hit's, of a refused entry, is gone) */
    ngx_memzero(&ctx->usage, sizeof(ngx_llm_cache_usage_t));

    return 1;
}


/*
 * One buffer of the body, written into the entry being built (deflated
 * with llm_cache_compress); an event stream is judged as it passes, so
 * that one with an error event stops being copied at once, and its usage
 * read.  NGX_DECLINED: the answer is not stored.
 */

ngx_int_t
ngx_llm_cache_capture(ngx_http_request_t *sr, ngx_llm_cache_ctx_t *ctx,
    ngx_buf_t *buf)
{
    ngx_int_t  rc;

    rc = ngx_llm_cache_capture_buf(sr, ctx, buf);

    if (rc != NGX_OK) {
        /* not stored: what was captured goes now */
        ngx_llm_cache_capture_cleanup(ctx);
    }

    return rc;
}


static ngx_int_t
ngx_llm_cache_capture_buf(ngx_http_request_t *sr, ngx_llm_cache_ctx_t *ctx,
    ngx_buf_t *buf)
{
    size_t                     size;
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

    /* never written, so refused when read (ngx_llm_cache_entry.c) */

    if (memchr(buf->pos, '\0', size) != NULL) {
        ngx_log_error(NGX_LOG_WARN, sr->connection->log, 0,
                      "llm_cache: response with a NUL byte not stored");
        ctx->store_result = NGX_LLM_CACHE_NOT_STORED_INVALID;
        return NGX_DECLINED;
    }

    if (ctx->sse
        && ngx_llm_cache_sse_parse(ctx->sse, buf->pos, size) != NGX_OK)
    {
        ngx_llm_cache_store_invalid(sr, ctx,
                                    ngx_llm_cache_sse_reason(ctx->sse));
        return NGX_DECLINED;
    }

    if (ctx->captured == NULL
        && ngx_llm_cache_capture_start(sr, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_llm_cache_metrics_feed(sr->pool, ctx, buf->pos, size)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->captured_size += size;

    if (ctx->deflate) {
        return ngx_llm_cache_capture_deflate(ctx, buf->pos, size,
                                             Z_NO_FLUSH);
    }

    if ((size_t) (ctx->captured_end - ctx->captured_pos) < size
        && ngx_llm_cache_capture_grow(ctx, size) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->captured_pos = ngx_cpymem(ctx->captured_pos, buf->pos, size);

    return NGX_OK;
}


/*
 * The entry's buffer: room for its header in front, then as much as the
 * provider's Content-Length says, or a start that doubles.  Allocated
 * with malloc(), so that growing it is a realloc() (an mremap() for a
 * large one, no copy) and so that it is freed once Redis has it.
 */

static ngx_int_t
ngx_llm_cache_capture_start(ngx_http_request_t *sr, ngx_llm_cache_ctx_t *ctx)
{
    int                        rc;
    off_t                      len;
    size_t                     size;
    z_stream                  *zs;
    ngx_pool_cleanup_t        *cln;
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(ctx->request, ngx_llm_cache_module);

    cln = ngx_pool_cleanup_add(sr->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    /*
     * in front, the entry's header and the SET's start; behind, the rest
     * of the SET and the unlock: the command is written around the entry
     * (ngx_llm_cache_redis_link_command_in_place())
     */

    ctx->captured_header =
        ngx_llm_cache_entry_header_size(&ctx->provider_content_type)
        + NGX_LLM_CACHE_CAPTURE_ROOM + ctx->key.len;

    len = sr->headers_out.content_length_n;

    if (len > 0 && len <= (off_t) lcf->max_size) {
        size = lcf->compress ? (size_t) len / 4 + 256 : (size_t) len;

    } else {
        size = ngx_min(NGX_LLM_CACHE_CAPTURE_SIZE, lcf->max_size + 64);
    }

    size += NGX_LLM_CACHE_CAPTURE_ROOM + 2 * ctx->key.len;

    ctx->captured = ngx_alloc(ctx->captured_header + size,
                              sr->connection->log);
    if (ctx->captured == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_llm_cache_capture_cleanup;
    cln->data = ctx;

    ctx->captured_pos = ctx->captured + ctx->captured_header;
    ctx->captured_end = ctx->captured_pos + size;

    if (!lcf->compress) {
        return NGX_OK;
    }

    zs = ngx_pcalloc(sr->pool, sizeof(z_stream));
    if (zs == NULL) {
        return NGX_ERROR;
    }

    /* the gzip format, so that a gzip client gets the entry as it is */

    rc = deflateInit2(zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, MAX_WBITS + 16,
                      8, Z_DEFAULT_STRATEGY);

    if (rc != Z_OK) {
        ngx_log_error(NGX_LOG_ALERT, sr->connection->log, 0,
                      "llm_cache: deflateInit2() failed: %d", rc);
        return NGX_ERROR;
    }

    ctx->deflate = zs;

    return NGX_OK;
}


static ngx_int_t
ngx_llm_cache_capture_grow(ngx_llm_cache_ctx_t *ctx, size_t size)
{
    u_char  *p;
    size_t   used, cap;

    used = ctx->captured_pos - ctx->captured;
    cap = ctx->captured_end - ctx->captured;

    cap = ngx_max(2 * cap, used + size);

    p = realloc(ctx->captured, cap);
    if (p == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ctx->request->connection->log,
                      ngx_errno, "llm_cache: realloc(%uz) failed", cap);
        return NGX_ERROR;
    }

    ctx->captured = p;
    ctx->captured_pos = p + used;
    ctx->captured_end = p + cap;

    return NGX_OK;
}


/* deflated into the entry's buffer as the answer passes */

static ngx_int_t
ngx_llm_cache_capture_deflate(ngx_llm_cache_ctx_t *ctx, u_char *p,
    size_t len, ngx_uint_t flush)
{
    int        rc;
    z_stream  *zs;

    zs = ctx->deflate;

    zs->next_in = p;
    zs->avail_in = len;

    for ( ;; ) {

        if (ctx->captured_end - ctx->captured_pos < 256
            && ngx_llm_cache_capture_grow(ctx, ngx_max(len / 2, 4096))
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        zs->next_out = ctx->captured_pos;
        zs->avail_out = ctx->captured_end - ctx->captured_pos;

        rc = deflate(zs, (int) flush);

        ctx->captured_pos = zs->next_out;

        if (rc == Z_STREAM_END) {
            return NGX_OK;
        }

        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            ngx_log_error(NGX_LOG_ALERT, ctx->request->connection->log, 0,
                          "llm_cache: deflate() failed: %d", rc);
            return NGX_ERROR;
        }

        if (flush == Z_NO_FLUSH && zs->avail_in == 0) {
            return NGX_OK;
        }
    }
}


static void
ngx_llm_cache_capture_cleanup(void *data)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    if (ctx->deflate) {
        deflateEnd(ctx->deflate);
        ctx->deflate = NULL;
    }

    if (ctx->captured) {
        ngx_free(ctx->captured);
        ctx->captured = NULL;
    }
}


/* once the subrequest's last buffer has passed */

void
ngx_llm_cache_store(ngx_http_request_t *sr, ngx_llm_cache_ctx_t *ctx)
{
    ngx_llm_cache_store_entry(sr, ctx);

    /* sent (the command is in the Redis layer's buffer), or not stored */
    ngx_llm_cache_capture_cleanup(ctx);
}


static void
ngx_llm_cache_store_entry(ngx_http_request_t *sr, ngx_llm_cache_ctx_t *ctx)
{
    time_t                     ttl, keep;
    ngx_int_t                  rc;
    ngx_str_t                  value, entry, body;
    ngx_uint_t                 encoding;
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

    if (ctx->captured == NULL
        && ngx_llm_cache_capture_start(sr, ctx) != NGX_OK)
    {
        return;
    }

    ngx_llm_cache_metrics_usage(sr, ctx);

    encoding = NGX_LLM_CACHE_ENCODING_IDENTITY;

    if (ctx->deflate) {
        if (ngx_llm_cache_capture_deflate(ctx, NULL, 0, Z_FINISH) != NGX_OK)
        {
            return;
        }

        encoding = NGX_LLM_CACHE_ENCODING_GZIP;
    }

    body.data = ctx->captured + ctx->captured_header;
    body.len = ctx->captured_pos - body.data;

    /*
     * a JSON answer is parsed once, here, in one piece; deflated, in
     * large pieces as it inflates (fed as it passed, yajl would lex a
     * long string again at each buffer that cuts it)
     */

    if (!ctx->provider_sse
        && !(ctx->deflate
             ? ngx_llm_cache_store_json_inflated(sr, &body)
             : ngx_llm_cache_json_valid(body.data, body.len)))
    {
        ngx_llm_cache_store_invalid(sr, ctx, "it does not parse");
        return;
    }

    if (ngx_llm_cache_entry_header(sr->connection->log, ctx->provider_status,
                                   &ctx->provider_content_type, ngx_time(),
                                   ttl, &ctx->usage, encoding,
                                   ctx->captured_size, &body, ctx->captured,
                                   ctx->captured_header, &entry)
        != NGX_OK)
    {
        ctx->store_result = NGX_LLM_CACHE_NOT_STORED_INVALID;
        return;
    }

    /* an expired entry is kept for llm_cache_use_stale */

    keep = ttl;

    if (!(lcf->use_stale & NGX_HTTP_UPSTREAM_FT_OFF)) {
        keep += lcf->stale_ttl;
    }

    if (lcf->l1) {
        /*
         * before the SET, which may take the buffer: the SET's own
         * invalidation comes after it (and usually removes it again)
         */
        ngx_llm_cache_l1_snapshot(ctx->request, ctx);
        ngx_llm_cache_l1_fill(ctx->request, ctx, &entry);
    }

    /* sent from where it is when it can be: ctx->captured is then NULL */

    rc = ngx_llm_cache_redis_set(lcf->redis, &ctx->key, &entry, keep,
                                 ctx->lock_held ? &ctx->lock_key : NULL,
                                 &ctx->lock_token, &ctx->captured,
                                 ctx->captured_end);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "llm_cache: store \"%V\" %uz bytes of %uz rc:%i",
                   &ctx->key, entry.len, ctx->captured_size, rc);

    ctx->store_result = (rc == NGX_OK) ? NGX_LLM_CACHE_STORED
                                       : NGX_LLM_CACHE_NOT_STORED_REDIS;

    if (rc == NGX_OK) {
        /* the unlock went right behind the entry */
        ctx->lock_held = 0;
        ctx->stored_ttl = ttl;

        if (ctx->sem) {
            /* a paraphrase may now be answered from it */
            ngx_llm_cache_semantic_stored(ctx);
        }

    } else if (lcf->l1) {
        ngx_llm_cache_l1_remove(lcf->l1, ctx->key.data, ctx->key.len);
    }
}


/* 1 if the deflated body is a JSON answer */

static ngx_uint_t
ngx_llm_cache_store_json_inflated(ngx_http_request_t *sr, ngx_str_t *body)
{
    int                           rc;
    u_char                       *piece;
    z_stream                      zs;
    ngx_uint_t                    ok;
    ngx_llm_cache_json_stream_t  *js;

    js = ngx_llm_cache_json_stream_create(sr->pool);
    if (js == NULL) {
        return 0;
    }

    piece = ngx_alloc(NGX_LLM_CACHE_JSON_PIECE, sr->connection->log);
    if (piece == NULL) {
        return 0;
    }

    ngx_memzero(&zs, sizeof(z_stream));

    if (inflateInit2(&zs, MAX_WBITS + 16) != Z_OK) {
        ngx_free(piece);
        return 0;
    }

    zs.next_in = body->data;
    zs.avail_in = body->len;

    ok = 0;

    for ( ;; ) {
        zs.next_out = piece;
        zs.avail_out = NGX_LLM_CACHE_JSON_PIECE;

        rc = inflate(&zs, Z_NO_FLUSH);

        if ((rc != Z_OK && rc != Z_STREAM_END)
            || !ngx_llm_cache_json_stream_feed(js, piece,
                                               zs.next_out - piece))
        {
            break;
        }

        if (rc == Z_STREAM_END) {
            ok = ngx_llm_cache_json_stream_end(js);
            break;
        }
    }

    inflateEnd(&zs);
    ngx_free(piece);

    return ok;
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
