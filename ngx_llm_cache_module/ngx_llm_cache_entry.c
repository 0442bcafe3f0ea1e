
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * A stored entry, read back with one GET:
 *
 *     "LLMC3 " status " " created " " content-type-length " "
 *     prompt-tokens " " completion-tokens " " duration-ms " " ttl "\n"
 *     content-type body
 *
 * The usage and the provider's time are for the metrics, so that a hit
 * needs no parse of the answer.  The ttl is how long the entry is fresh:
 * Redis keeps it llm_cache_stale_ttl longer, for llm_cache_use_stale.
 * Entries of the second version, "LLMC2 " without the ttl, and of the
 * first version,
 *
 *     "LLMC1 " status " " created " " content-type-length "\n"
 *     content-type body
 *
 * are still served (the first with no usage), as fresh for as long as
 * Redis keeps them (ttl 0).
 *
 * Anything else found under a key is refused, never served: Redis may be
 * shared, or written by something else, and what is read from it goes
 * out as the response's status line, headers and body.  Only what the
 * store path writes is accepted: status 200, a JSON or event stream
 * content type of plain visible ASCII, a body with no NUL byte, a
 * creation time not in the future (give or take another gateway's clock).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_module.h"


#define NGX_LLM_CACHE_ENTRY_MAGIC  "LLMC3 "
#define NGX_LLM_CACHE_ENTRY_MAGIC2 "LLMC2 "
#define NGX_LLM_CACHE_ENTRY_MAGIC1 "LLMC1 "
#define NGX_LLM_CACHE_ENTRY_SKEW   86400


static ngx_int_t ngx_llm_cache_entry_valid(ngx_uint_t status,
    ngx_str_t *content_type);
static ngx_uint_t ngx_llm_cache_entry_token(u_char **pp, u_char *end);
static u_char *ngx_llm_cache_entry_number(u_char *p, u_char *end,
    u_char stop, off_t *value);


/* NGX_DECLINED (and a log line) for what would be refused when read */

ngx_int_t
ngx_llm_cache_entry_encode(ngx_pool_t *pool, ngx_uint_t status,
    ngx_str_t *content_type, time_t created, time_t ttl,
    ngx_llm_cache_usage_t *usage, ngx_chain_t *body, size_t body_size,
    ngx_str_t *entry)
{
    u_char       *p;
    size_t        len;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (ngx_llm_cache_entry_valid(status, content_type) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                      "llm_cache: response with status %ui and content type "
                      "\"%V\" not stored", status, content_type);
        return NGX_DECLINED;
    }

    for (cl = body; cl; cl = cl->next) {
        b = cl->buf;

        if (b->last > b->pos
            && memchr(b->pos, '\0', b->last - b->pos) != NULL)
        {
            ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                          "llm_cache: response with a NUL byte not stored");
            return NGX_DECLINED;
        }
    }

    len = sizeof(NGX_LLM_CACHE_ENTRY_MAGIC) - 1
          + NGX_INT_T_LEN + 1 + NGX_TIME_T_LEN + 1 + NGX_SIZE_T_LEN + 1
          + 4 * (NGX_INT32_LEN + 1) + content_type->len + body_size;

    entry->data = ngx_pnalloc(pool, len);
    if (entry->data == NULL) {
        return NGX_ERROR;
    }

    /* the decoder takes numbers of NGX_INT32_LEN digits at most */

    p = ngx_sprintf(entry->data,
                    NGX_LLM_CACHE_ENTRY_MAGIC "%ui %T %uz %uD %uD %uD %uD\n",
                    status, created, content_type->len,
                    (uint32_t) ngx_min(usage->prompt, NGX_MAX_UINT32_VALUE),
                    (uint32_t) ngx_min(usage->completion,
                                       NGX_MAX_UINT32_VALUE),
                    (uint32_t) ngx_min(usage->duration,
                                       NGX_MAX_UINT32_VALUE),
                    (uint32_t) ngx_min(ngx_max(ttl, 0),
                                       NGX_MAX_UINT32_VALUE));
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

    /* as ngx_sprintf() writes them: no sign, no leading zero */

    if (p == end || p == start || p - start > (ssize_t) NGX_INT32_LEN
        || (*start == '0' && p - start > 1))
    {
        return NULL;
    }

    *value = ngx_atoof(start, p - start);

    return p + 1;
}


ngx_int_t
ngx_llm_cache_entry_decode(u_char *data, size_t len, ngx_uint_t *status,
    ngx_str_t *content_type, time_t *created, time_t *ttl,
    ngx_llm_cache_usage_t *usage, ngx_str_t *body)
{
    off_t       n;
    u_char     *p, *end;
    ngx_uint_t  version;

    p = data;
    end = data + len;

    ngx_memzero(usage, sizeof(ngx_llm_cache_usage_t));
    *ttl = 0;

    if (len < sizeof(NGX_LLM_CACHE_ENTRY_MAGIC) - 1) {
        return NGX_ERROR;
    }

    if (ngx_memcmp(p, NGX_LLM_CACHE_ENTRY_MAGIC,
                   sizeof(NGX_LLM_CACHE_ENTRY_MAGIC) - 1)
        == 0)
    {
        version = 3;

    } else if (ngx_memcmp(p, NGX_LLM_CACHE_ENTRY_MAGIC2,
                          sizeof(NGX_LLM_CACHE_ENTRY_MAGIC2) - 1)
               == 0)
    {
        version = 2;

    } else if (ngx_memcmp(p, NGX_LLM_CACHE_ENTRY_MAGIC1,
                          sizeof(NGX_LLM_CACHE_ENTRY_MAGIC1) - 1)
               == 0)
    {
        version = 1;

    } else {
        return NGX_ERROR;
    }

    p += sizeof(NGX_LLM_CACHE_ENTRY_MAGIC) - 1;

    p = ngx_llm_cache_entry_number(p, end, ' ', &n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *status = (ngx_uint_t) n;

    p = ngx_llm_cache_entry_number(p, end, ' ', &n);
    if (p == NULL || n == 0 || n > ngx_time() + NGX_LLM_CACHE_ENTRY_SKEW) {
        return NGX_ERROR;
    }

    *created = (time_t) n;

    p = ngx_llm_cache_entry_number(p, end, version > 1 ? ' ' : '\n', &n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    content_type->len = (size_t) n;

    if (version > 1) {
        /* as the encoder writes them, up to 2^32 - 1 */

        p = ngx_llm_cache_entry_number(p, end, ' ', &n);
        if (p == NULL || n > NGX_MAX_UINT32_VALUE) {
            return NGX_ERROR;
        }

        usage->prompt = (ngx_uint_t) n;

        p = ngx_llm_cache_entry_number(p, end, ' ', &n);
        if (p == NULL || n > NGX_MAX_UINT32_VALUE) {
            return NGX_ERROR;
        }

        usage->completion = (ngx_uint_t) n;

        p = ngx_llm_cache_entry_number(p, end, version > 2 ? ' ' : '\n',
                                       &n);
        if (p == NULL || n > NGX_MAX_UINT32_VALUE) {
            return NGX_ERROR;
        }

        usage->duration = (ngx_msec_t) n;
    }

    if (version > 2) {
        p = ngx_llm_cache_entry_number(p, end, '\n', &n);
        if (p == NULL || n > NGX_MAX_UINT32_VALUE) {
            return NGX_ERROR;
        }

        *ttl = (time_t) n;
    }

    if ((off_t) content_type->len > end - p) {
        return NGX_ERROR;
    }

    content_type->data = p;
    n = content_type->len;

    body->data = p + n;
    body->len = end - body->data;

    /* memchr(): every hit looks through the whole body */

    if (ngx_llm_cache_entry_valid(*status, content_type) != NGX_OK
        || (body->len && memchr(body->data, '\0', body->len) != NULL))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * What the store path stores (see ngx_llm_cache_storable()): a 200 with
 * a JSON or event stream media type, and parameters as RFC 9110 has them
 *
 *     type "/" subtype *( OWS ";" OWS token "=" ( token / quoted-string ) )
 *
 * in visible ASCII, spaces and tabs: nothing that could end the header
 * line or start another.
 */

static ngx_int_t
ngx_llm_cache_entry_valid(ngx_uint_t status, ngx_str_t *content_type)
{
    u_char     *p, *end;
    ngx_str_t   media;

    if (status != NGX_HTTP_OK) {
        return NGX_DECLINED;
    }

    p = content_type->data;
    end = p + content_type->len;

    media.data = p;

    if (!ngx_llm_cache_entry_token(&p, end) || p == end || *p++ != '/'
        || !ngx_llm_cache_entry_token(&p, end))
    {
        return NGX_DECLINED;
    }

    media.len = p - media.data;

    if (!ngx_llm_cache_header_is(&media, "application/json")
        && !ngx_llm_cache_header_is(&media, "text/event-stream"))
    {
        return NGX_DECLINED;
    }

    for ( ;; ) {
        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (p == end) {
            return NGX_OK;
        }

        if (*p++ != ';') {
            return NGX_DECLINED;
        }

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (!ngx_llm_cache_entry_token(&p, end) || p == end || *p++ != '=') {
            return NGX_DECLINED;
        }

        if (p < end && *p == '"') {

            for (p++; p < end && *p != '"'; p++) {
                if (*p == '\\' && ++p == end) {
                    return NGX_DECLINED;
                }

                if ((*p < 0x20 && *p != '\t') || *p > 0x7e) {
                    return NGX_DECLINED;
                }
            }

            if (p++ == end) {
                return NGX_DECLINED;
            }

        } else if (!ngx_llm_cache_entry_token(&p, end)) {
            return NGX_DECLINED;
        }
    }
}


/* RFC 9110 tchar: visible ASCII but for delimiters; 0 when none */

static ngx_uint_t
ngx_llm_cache_entry_token(u_char **pp, u_char *end)
{
    u_char  *p;

    static u_char  delimiters[] = "\"(),/:;<=>?@[\\]{}";

    for (p = *pp; p < end; p++) {
        if (*p <= 0x20 || *p >= 0x7f
            || ngx_strlchr(delimiters, delimiters + sizeof(delimiters) - 1,
                           *p)
               != NULL)
        {
            break;
        }
    }

    if (p == *pp) {
        return 0;
    }

    *pp = p;

    return 1;
}
