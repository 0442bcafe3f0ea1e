
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
static ngx_int_t ngx_llm_cache_copy_headers(ngx_http_request_t *r,
    ngx_http_request_t *sr);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_str_t  ngx_llm_cache_status_names[] = {
    ngx_null_string,
    ngx_string("MISS"),
    ngx_string("HIT"),
    ngx_string("BYPASS"),
    ngx_string("ERROR"),
    ngx_string("HIT_WAITED"),
    ngx_string("MISS_WAITED")
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

    ctx = ngx_http_get_module_ctx(r, ngx_llm_cache_module);

    if (ctx == NULL || r != ctx->sr) {
        return ngx_http_next_header_filter(r);
    }

    mr = ctx->request;

    if (mr->header_sent) {
        return ngx_http_next_header_filter(r);
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


/*
 * The main request gets the provider's status and headers.  Elements are
 * copied one by one: the list itself cannot be shared.  Content-Length is
 * left to the header filter, which writes it from content_length_n.
 */

static ngx_int_t
ngx_llm_cache_copy_headers(ngx_http_request_t *r, ngx_http_request_t *sr)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *ho;

    r->headers_out.status = sr->headers_out.status;
    r->headers_out.status_line = sr->headers_out.status_line;
    r->headers_out.content_type = sr->headers_out.content_type;
    r->headers_out.content_type_len = sr->headers_out.content_type_len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset = sr->headers_out.charset;
    r->headers_out.content_length_n = sr->headers_out.content_length_n;
    r->headers_out.content_length = NULL;

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

        if (&h[i] == sr->headers_out.server) {
            r->headers_out.server = ho;

        } else if (&h[i] == sr->headers_out.date) {
            r->headers_out.date = ho;

        } else if (&h[i] == sr->headers_out.location) {
            r->headers_out.location = ho;

        } else if (&h[i] == sr->headers_out.content_encoding) {
            r->headers_out.content_encoding = ho;
        }
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

    ctx = ngx_http_get_module_ctx(r, ngx_llm_cache_module);

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
