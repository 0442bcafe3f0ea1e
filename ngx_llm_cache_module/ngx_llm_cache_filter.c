
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * Filters on the provider subrequest.  nginx never sends a subrequest's
 * header, so the header filter copies the provider's status and headers
 * to the main request and sends them.  The body filter lets every buffer
 * through as it comes (SSE included), keeps a copy while the response is
 * storable, and stores it once the subrequest's last buffer has passed:
 * a response that never reaches last_in_chain was cut and is not stored.
 * What is storable and how it is judged is ngx_llm_cache_store.c's.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_module.h"


static ngx_int_t ngx_llm_cache_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_llm_cache_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_uint_t ngx_llm_cache_intercepted(ngx_http_request_t *sr,
    ngx_http_request_t *r);
static ngx_int_t ngx_llm_cache_copy_headers(ngx_http_request_t *r,
    ngx_http_request_t *sr);
static ngx_uint_t ngx_llm_cache_stale_failure(ngx_http_request_t *sr,
    ngx_http_request_t *r);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_str_t  ngx_llm_cache_status_names[] = {
    ngx_null_string,
    ngx_string("MISS"),
    ngx_string("HIT"),
    ngx_string("BYPASS"),
    ngx_string("ERROR"),
    ngx_string("HIT_WAITED"),
    ngx_string("MISS_WAITED"),
    ngx_string("STALE"),
    ngx_string("PURGE"),
    ngx_string("HIT_SEMANTIC")
};


ngx_int_t
ngx_llm_cache_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_llm_cache_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_llm_cache_body_filter;

    return NGX_OK;
}


ngx_int_t
ngx_llm_cache_set_status_header(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx)
{
    ngx_table_elt_t           *h;
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    if (lcf->status_header.len == 0
        || ctx->status == NGX_LLM_CACHE_STATUS_NONE)
    {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key = lcf->status_header;
    h->value = ngx_llm_cache_status_names[ctx->status];
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


ngx_str_t *
ngx_llm_cache_status_name(ngx_llm_cache_ctx_t *ctx)
{
    return &ngx_llm_cache_status_names[ctx->status];
}


static ngx_int_t
ngx_llm_cache_header_filter(ngx_http_request_t *r)
{
    ngx_int_t             rc;
    ngx_http_request_t   *mr;
    ngx_llm_cache_ctx_t  *ctx;

    if (r == r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_llm_cache_get_ctx(r);

    if (ctx && ctx->sem && ngx_llm_cache_semantic_is_embed(r, ctx)) {
        return ngx_llm_cache_semantic_header_filter(r, ctx);
    }

    if (ctx == NULL || r != ctx->sr) {
        return ngx_http_next_header_filter(r);
    }

    mr = ctx->request;

    if (mr->header_sent) {
        return ngx_http_next_header_filter(r);
    }

    if (r->headers_out.status == 0) {
        /* proxy takes an answer without a status line as HTTP/0.9 */
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "llm_cache: the provider's answer has no valid "
                      "status line");
        return NGX_HTTP_BAD_GATEWAY;
    }

    if (ngx_llm_cache_intercepted(r, mr)) {
        /* the public location's error_page answers it, the body is not
         * sent: what proxy_intercept_errors does with proxy_pass */
        return r->headers_out.status;
    }

    if (ctx->stale.len) {
        ctx->stale_failure = ngx_llm_cache_stale_failure(r, mr);

        if (ctx->stale_failure) {
            /* the expired entry answers instead: ngx_llm_cache_finish() */
            return r->headers_out.status;
        }
    }

    if (ctx->capture && !ngx_llm_cache_storable(r, ctx)) {
        ctx->capture = 0;
    }

    if (ngx_llm_cache_copy_headers(mr, r) != NGX_OK
        || ngx_llm_cache_set_status_header(mr, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(mr);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    return ngx_http_next_header_filter(r);
}


/* the llm_cache_use_stale kind of a provider's answer, 0 when not listed */

static ngx_uint_t
ngx_llm_cache_stale_failure(ngx_http_request_t *sr, ngx_http_request_t *r)
{
    ngx_uint_t                 ft;
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    switch (sr->headers_out.status) {
    case NGX_HTTP_TOO_MANY_REQUESTS:
        ft = NGX_HTTP_UPSTREAM_FT_HTTP_429;
        break;
    case NGX_HTTP_INTERNAL_SERVER_ERROR:
        ft = NGX_HTTP_UPSTREAM_FT_HTTP_500;
        break;
    case NGX_HTTP_BAD_GATEWAY:
        ft = NGX_HTTP_UPSTREAM_FT_HTTP_502;
        break;
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        ft = NGX_HTTP_UPSTREAM_FT_HTTP_503;
        break;
    case NGX_HTTP_GATEWAY_TIME_OUT:
        ft = NGX_HTTP_UPSTREAM_FT_HTTP_504;
        break;
    default:
        return 0;
    }

    return lcf->use_stale & ft;
}


/*
 * With proxy_intercept_errors on in the provider location, an error that
 * its own error_page does not take goes to the public location's one.
 */

static ngx_uint_t
ngx_llm_cache_intercepted(ngx_http_request_t *sr, ngx_http_request_t *r)
{
    ngx_uint_t                 i;
    ngx_http_err_page_t       *err_page;
    ngx_http_core_loc_conf_t  *clcf;

    if (sr->upstream == NULL || !sr->upstream->conf->intercept_errors
        || sr->headers_out.status < NGX_HTTP_SPECIAL_RESPONSE)
    {
        return 0;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->error_page || clcf->error_pages == NULL || r->uri_changes == 0) {
        return 0;
    }

    err_page = clcf->error_pages->elts;

    for (i = 0; i < clcf->error_pages->nelts; i++) {
        if (err_page[i].status == (ngx_int_t) sr->headers_out.status) {
            return 1;
        }
    }

    return 0;
}


/*
 * The main request gets the provider's status and headers.  Elements are
 * copied one by one: the list itself cannot be shared.  The headers that
 * nginx keeps pointers to are pointed to in the copy, so that expires,
 * add_header and $sent_http_... act on them as with proxy_pass.
 * Content-Length is left to the header filter (content_length_n).
 */

static ngx_int_t
ngx_llm_cache_copy_headers(ngx_http_request_t *r, ngx_http_request_t *sr)
{
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *ho, **ph;
#if (nginx_version >= 1023000)
    ngx_table_elt_t  *e;
#else
    ngx_uint_t        k;
    ngx_array_t      *a;
#endif

    static size_t     pointers[] = {
        offsetof(ngx_http_headers_out_t, server),
        offsetof(ngx_http_headers_out_t, date),
        offsetof(ngx_http_headers_out_t, content_encoding),
        offsetof(ngx_http_headers_out_t, location),
        offsetof(ngx_http_headers_out_t, refresh),
        offsetof(ngx_http_headers_out_t, last_modified),
        offsetof(ngx_http_headers_out_t, content_range),
        offsetof(ngx_http_headers_out_t, accept_ranges),
        offsetof(ngx_http_headers_out_t, www_authenticate),
        offsetof(ngx_http_headers_out_t, expires),
        offsetof(ngx_http_headers_out_t, etag),
#if (nginx_version >= 1029007)
        /* added in 1.29.7, not in the 1.28 stable branch */
        offsetof(ngx_http_headers_out_t, proxy_authenticate),
#endif
        0
    };

#if (nginx_version >= 1023000)
    static size_t     chains[] = {
        offsetof(ngx_http_headers_out_t, cache_control),
        offsetof(ngx_http_headers_out_t, link),
        0
    };

    ngx_table_elt_t **ends[2];
#else
    /* Link too: $sent_http_link and http2_push_preload read its array */

    static size_t     arrays[] = {
        offsetof(ngx_http_headers_out_t, cache_control),
        offsetof(ngx_http_headers_out_t, link),
        0
    };
#endif

    r->headers_out.status = sr->headers_out.status;
    r->headers_out.status_line = sr->headers_out.status_line;
    r->headers_out.content_type = sr->headers_out.content_type;
    r->headers_out.content_type_len = sr->headers_out.content_type_len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset = sr->headers_out.charset;
    r->headers_out.content_length_n = sr->headers_out.content_length_n;
    r->headers_out.content_length = NULL;
    r->headers_out.last_modified_time = sr->headers_out.last_modified_time;

#if (nginx_version >= 1023000)
    for (n = 0; chains[n]; n++) {
        ends[n] = (ngx_table_elt_t **) ((char *) &r->headers_out + chains[n]);

        while (*ends[n]) {
            ends[n] = &(*ends[n])->next;
        }
    }
#endif

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

        if (h[i].hash == 0 || &h[i] == sr->headers_out.content_length) {
            continue;
        }

        ho = ngx_list_push(&r->headers_out.headers);
        if (ho == NULL) {
            return NGX_ERROR;
        }

        *ho = h[i];

        for (n = 0; pointers[n]; n++) {
            ph = (ngx_table_elt_t **) ((char *) &sr->headers_out
                                       + pointers[n]);
            if (*ph == &h[i]) {
                *(ngx_table_elt_t **) ((char *) &r->headers_out
                                       + pointers[n]) = ho;
                break;
            }
        }

#if (nginx_version >= 1023000)
        /* the subrequest's chains must not leak into the main's */

        ho->next = NULL;

        for (n = 0; chains[n]; n++) {
            e = *(ngx_table_elt_t **) ((char *) &sr->headers_out
                                       + chains[n]);
            for ( /* void */ ; e; e = e->next) {
                if (e == &h[i]) {
                    *ends[n] = ho;
                    ends[n] = &ho->next;
                    break;
                }
            }
        }
#else
        for (n = 0; arrays[n]; n++) {
            a = (ngx_array_t *) ((char *) &sr->headers_out + arrays[n]);
            ph = a->elts;

            for (k = 0; k < a->nelts; k++) {
                if (ph[k] == &h[i]) {
                    break;
                }
            }

            if (k == a->nelts) {
                continue;
            }

            a = (ngx_array_t *) ((char *) &r->headers_out + arrays[n]);

            if (a->elts == NULL
                && ngx_array_init(a, r->pool, 1, sizeof(ngx_table_elt_t *))
                   != NGX_OK)
            {
                return NGX_ERROR;
            }

            ph = ngx_array_push(a);
            if (ph == NULL) {
                return NGX_ERROR;
            }

            *ph = ho;
            break;
        }
#endif
    }

    return NGX_OK;
}


static ngx_int_t
ngx_llm_cache_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_int_t             rc;
    ngx_uint_t            last;
    ngx_chain_t          *cl;
    ngx_llm_cache_ctx_t  *ctx;

    if (r == r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_llm_cache_get_ctx(r);

    if (ctx && ctx->sem && ngx_llm_cache_semantic_is_embed(r, ctx)) {
        /* the embedder's reply is read, never sent */
        return ngx_llm_cache_semantic_body_filter(r, ctx, in);
    }

    if (ctx == NULL || r != ctx->sr) {
        return ngx_http_next_body_filter(r, in);
    }

    last = 0;

    for (cl = in; cl; cl = cl->next) {

        if (ctx->capture
            && ngx_llm_cache_capture(r, ctx, cl->buf) != NGX_OK)
        {
            ctx->capture = 0;
        }

        if (cl->buf->last_in_chain || cl->buf->last_buf) {
            last = 1;
        }
    }

    rc = ngx_http_next_body_filter(r, in);

    if (last) {
        ctx->provider_complete = 1;

        if (ctx->capture && !ctx->stored && rc != NGX_ERROR
            && !r->connection->error)
        {
            ngx_llm_cache_store(r, ctx);
        }
    }

    return rc;
}
