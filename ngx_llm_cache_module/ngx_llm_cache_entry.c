
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * A stored entry, read back with one GET:
 *
 *     "LLMC1 " status " " created " " content-type-length "\n"
 *     content-type body
 *
 * Anything else found under a key is refused, never served.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_module.h"


#define NGX_LLM_CACHE_ENTRY_MAGIC  "LLMC1 "


ngx_int_t
ngx_llm_cache_entry_encode(ngx_pool_t *pool, ngx_uint_t status,
    ngx_str_t *content_type, time_t created, ngx_chain_t *body,
    size_t body_size, ngx_str_t *entry)
{
    u_char       *p;
    size_t        len;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    len = sizeof(NGX_LLM_CACHE_ENTRY_MAGIC) - 1
          + NGX_INT_T_LEN + 1 + NGX_TIME_T_LEN + 1 + NGX_SIZE_T_LEN + 1
          + content_type->len + body_size;

    entry->data = ngx_pnalloc(pool, len);
    if (entry->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(entry->data, NGX_LLM_CACHE_ENTRY_MAGIC "%ui %T %uz\n",
                    status, created, content_type->len);
    p = ngx_cpymem(p, content_type->data, content_type->len);

    for (cl = body; cl; cl = cl->next) {
        b = cl->buf;
        p = ngx_cpymem(p, b->pos, b->last - b->pos);
    }

    entry->len = p - entry->data;

    return NGX_OK;
}


static u_char *
ngx_llm_cache_entry_number(u_char *p, u_char *end, u_char stop,
    off_t *value)
{
    u_char  *start;

    for (start = p; p < end && *p != stop; p++) {
        if (*p < '0' || *p > '9') {
            return NULL;
        }
    }

    if (p == end || p == start || p - start > (ssize_t) NGX_INT32_LEN) {
        return NULL;
    }

    *value = ngx_atoof(start, p - start);

    return p + 1;
}


ngx_int_t
ngx_llm_cache_entry_decode(u_char *data, size_t len, ngx_uint_t *status,
    ngx_str_t *content_type, time_t *created, ngx_str_t *body)
{
    off_t    n;
    u_char  *p, *end;

    p = data;
    end = data + len;

    if (len < sizeof(NGX_LLM_CACHE_ENTRY_MAGIC) - 1
        || ngx_memcmp(p, NGX_LLM_CACHE_ENTRY_MAGIC,
                      sizeof(NGX_LLM_CACHE_ENTRY_MAGIC) - 1) != 0)
    {
        return NGX_ERROR;
    }

    p += sizeof(NGX_LLM_CACHE_ENTRY_MAGIC) - 1;

    p = ngx_llm_cache_entry_number(p, end, ' ', &n);
    if (p == NULL || n < 200 || n > 599) {
        return NGX_ERROR;
    }

    *status = (ngx_uint_t) n;

    p = ngx_llm_cache_entry_number(p, end, ' ', &n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *created = (time_t) n;

    p = ngx_llm_cache_entry_number(p, end, '\n', &n);
    if (p == NULL || n > end - p) {
        return NGX_ERROR;
    }

    content_type->data = p;
    content_type->len = (size_t) n;

    body->data = p + n;
    body->len = end - body->data;

    return NGX_OK;
}
