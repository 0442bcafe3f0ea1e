/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * A body that is not JSON, with "llm_cache_invalid_json reject": a 400
 * answered here, in the shape of the error the path's API gives, so its
 * SDK reads it as it reads the provider's own.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_module.h"


typedef struct {
    ngx_str_t  head;
    ngx_str_t  tail;
} ngx_llm_cache_invalid_shape_t;


static ngx_llm_cache_invalid_shape_t *ngx_llm_cache_invalid_shape(
    ngx_str_t *uri);
static ngx_uint_t ngx_llm_cache_uri_ends(ngx_str_t *uri, char *tail);


static ngx_llm_cache_invalid_shape_t  ngx_llm_cache_invalid_openai = {
    ngx_string("{\"error\":{\"message\":\"We could not parse the JSON body "
               "of your request: "),
    ngx_string("\",\"type\":\"invalid_request_error\",\"param\":null,"
               "\"code\":\"invalid_json\"}}\n")
};


static ngx_llm_cache_invalid_shape_t  ngx_llm_cache_invalid_anthropic = {
    ngx_string("{\"type\":\"error\",\"error\":{\"type\":"
               "\"invalid_request_error\",\"message\":\"The request body "
               "is not valid JSON: "),
    ngx_string("\"}}\n")
};


static ngx_llm_cache_invalid_shape_t  ngx_llm_cache_invalid_gemini = {
    ngx_string("{\"error\":{\"code\":400,\"message\":\"Invalid JSON payload "
               "received: "),
    ngx_string("\",\"status\":\"INVALID_ARGUMENT\"}}\n")
};


ngx_int_t
ngx_llm_cache_send_invalid(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx,
    ngx_str_t *reason)
{
    u_char                         *p;
    size_t                          len;
    ngx_int_t                       rc;
    ngx_buf_t                      *b;
    ngx_chain_t                     out;
    ngx_llm_cache_invalid_shape_t  *shape;

    shape = ngx_llm_cache_invalid_shape(&r->uri);

    len = shape->head.len + reason->len
          + ngx_escape_json(NULL, reason->data, reason->len)
          + shape->tail.len;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(b->pos, shape->head.data, shape->head.len);
    p = (u_char *) ngx_escape_json(p, reason->data, reason->len);
    b->last = ngx_cpymem(p, shape->tail.data, shape->tail.len);
    b->last_buf = 1;
    b->last_in_chain = 1;

    ctx->status = NGX_LLM_CACHE_STATUS_BYPASS;

    r->headers_out.status = NGX_HTTP_BAD_REQUEST;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    if (ngx_llm_cache_set_status_header(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * Anthropic for its messages API, Gemini for a model's generate method,
 * OpenAI's shape otherwise (chat, completions, embeddings, responses and
 * the many compatible APIs)
 */

static ngx_llm_cache_invalid_shape_t *
ngx_llm_cache_invalid_shape(ngx_str_t *uri)
{
    if (ngx_llm_cache_uri_ends(uri, ":generateContent")
        || ngx_llm_cache_uri_ends(uri, ":streamGenerateContent"))
    {
        return &ngx_llm_cache_invalid_gemini;
    }

    if (ngx_llm_cache_uri_ends(uri, "/v1/messages")
        || ngx_llm_cache_uri_ends(uri, "/v1/messages/count_tokens"))
    {
        return &ngx_llm_cache_invalid_anthropic;
    }

    return &ngx_llm_cache_invalid_openai;
}


static ngx_uint_t
ngx_llm_cache_uri_ends(ngx_str_t *uri, char *tail)
{
    size_t  len;

    len = ngx_strlen(tail);

    return uri->len >= len
           && ngx_memcmp(uri->data + uri->len - len, tail, len) == 0;
}
