
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
 * With llm_cache_compress, the fourth version,
 *
 *     "LLMC4 " ... ttl " " encoding " " length " " crc32 "\n"
 *     content-type body
 *
 * has the body deflated in the gzip format (encoding 1, the only one:
 * a body as it is is written in the third version), its length once
 * inflated and the CRC-32 of the body as stored,
 * checked at each hit, since a gzip client gets it without an inflate.
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

#include <zlib.h>

#include "ngx_llm_cache_module.h"


#define NGX_LLM_CACHE_ENTRY_MAGIC4 "LLMC4 "
#define NGX_LLM_CACHE_ENTRY_MAGIC  "LLMC3 "
#define NGX_LLM_CACHE_ENTRY_MAGIC2 "LLMC2 "
#define NGX_LLM_CACHE_ENTRY_MAGIC1 "LLMC1 "
#define NGX_LLM_CACHE_ENTRY_SKEW   86400


static ngx_int_t ngx_llm_cache_entry_valid(ngx_uint_t status,
    ngx_str_t *content_type);
static ngx_uint_t ngx_llm_cache_entry_token(u_char **pp, u_char *end);
static u_char *ngx_llm_cache_entry_number(u_char *p, u_char *end,
    u_char stop, off_t *value);


/*
 * The room the capture keeps in front of the body for the entry's header
 * line and content type (ngx_llm_cache_store.c), so that the entry is
 * never copied to be built
 */

size_t
ngx_llm_cache_entry_header_size(ngx_str_t *content_type)
{
    return sizeof(NGX_LLM_CACHE_ENTRY_MAGIC4) - 1
           + NGX_INT_T_LEN + 1 + NGX_TIME_T_LEN + 1 + NGX_SIZE_T_LEN + 1
           + 7 * (NGX_INT32_LEN + 1) + content_type->len;
}


/*
 * The header written right in front of the body, in the room of
 * ngx_llm_cache_entry_header_size() bytes that ends where the body
 * starts; NGX_DECLINED (and a log line) for what would be refused when
 * read.  An entry as it is keeps the third version, which gateways of
 * an older version read.
 */

ngx_int_t
ngx_llm_cache_entry_header(ngx_log_t *log, ngx_uint_t status,
    ngx_str_t *content_type, time_t created, time_t ttl,
    ngx_llm_cache_usage_t *usage, ngx_uint_t encoding, size_t length,
    ngx_str_t *body, u_char *room, size_t room_size, ngx_str_t *entry)
{
    u_char  *p, *start;
    u_char   line[sizeof(NGX_LLM_CACHE_ENTRY_MAGIC4) - 1 + NGX_INT_T_LEN + 1
                  + NGX_TIME_T_LEN + 1 + NGX_SIZE_T_LEN + 1
                  + 7 * (NGX_INT32_LEN + 1)];

    if (ngx_llm_cache_entry_valid(status, content_type) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "llm_cache: response with status %ui and content type "
                      "\"%V\" not stored", status, content_type);
        return NGX_DECLINED;
    }

    if (room_size < ngx_llm_cache_entry_header_size(content_type)
        || length > NGX_MAX_UINT32_VALUE)
    {
        return NGX_ERROR;
    }

    /* the decoder takes numbers of NGX_INT32_LEN digits at most */

    p = ngx_sprintf(line, "%s%ui %T %uz %uD %uD %uD %uD",
                    encoding == NGX_LLM_CACHE_ENCODING_IDENTITY
                    ? NGX_LLM_CACHE_ENTRY_MAGIC : NGX_LLM_CACHE_ENTRY_MAGIC4,
                    status, created, content_type->len,
                    (uint32_t) ngx_min(usage->prompt, NGX_MAX_UINT32_VALUE),
                    (uint32_t) ngx_min(usage->completion,
                                       NGX_MAX_UINT32_VALUE),
                    (uint32_t) ngx_min(usage->duration,
                                       NGX_MAX_UINT32_VALUE),
                    (uint32_t) ngx_min(ngx_max(ttl, 0),
                                       NGX_MAX_UINT32_VALUE));

    if (encoding != NGX_LLM_CACHE_ENCODING_IDENTITY) {
        p = ngx_sprintf(p, " %ui %uD %uD", encoding, (uint32_t) length,
                        (uint32_t) crc32(0, body->data, body->len));
    }

    *p++ = '\n';

    start = room + room_size - content_type->len - (p - line);

    entry->data = start;

    start = ngx_cpymem(start, line, p - line);
    ngx_memcpy(start, content_type->data, content_type->len);

    entry->len = room + room_size + body->len - entry->data;

    return NGX_OK;
}


/*
 * An entry as it is from a chain, in one new buffer (the store writes
 * its own in place, see ngx_llm_cache_entry_header()); NGX_DECLINED (and
 * a log line) for what would be refused when read
 */

ngx_int_t
ngx_llm_cache_entry_encode(ngx_pool_t *pool, ngx_uint_t status,
    ngx_str_t *content_type, time_t created, time_t ttl,
    ngx_llm_cache_usage_t *usage, ngx_chain_t *body, size_t body_size,
    ngx_str_t *entry)
{
    u_char       *p, *start;
    size_t        room;
    ngx_buf_t    *b;
    ngx_str_t     data;
    ngx_chain_t  *cl;

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

    room = ngx_llm_cache_entry_header_size(content_type);

    start = ngx_pnalloc(pool, room + body_size);
    if (start == NULL) {
        return NGX_ERROR;
    }

    p = start + room;

    for (cl = body; cl; cl = cl->next) {
        b = cl->buf;
        p = ngx_cpymem(p, b->pos, b->last - b->pos);
    }

    data.data = start + room;
    data.len = p - data.data;

    return ngx_llm_cache_entry_header(pool->log, status, content_type,
                                      created, ttl, usage,
                                      NGX_LLM_CACHE_ENCODING_IDENTITY,
                                      data.len, &data, start, room, entry);
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
    ngx_int_t              rc;
    ngx_llm_cache_entry_t  e;

    rc = ngx_llm_cache_entry_parse(data, len, &e);

    /* a body as it is only: a compressed one is for the hit path */

    if (rc == NGX_OK && e.encoding != NGX_LLM_CACHE_ENCODING_IDENTITY) {
        rc = NGX_ERROR;
    }

    *status = e.status;
    *content_type = e.content_type;
    *created = e.created;
    *ttl = e.ttl;
    *usage = e.usage;
    *body = e.body;

    return rc;
}


ngx_int_t
ngx_llm_cache_entry_parse(u_char *data, size_t len, ngx_llm_cache_entry_t *e)
{
    off_t       n;
    u_char     *p, *end;
    uint32_t    crc;
    ngx_uint_t  version;

    p = data;
    end = data + len;

    ngx_memzero(e, sizeof(ngx_llm_cache_entry_t));

    if (len < sizeof(NGX_LLM_CACHE_ENTRY_MAGIC) - 1) {
        return NGX_ERROR;
    }

    if (ngx_memcmp(p, NGX_LLM_CACHE_ENTRY_MAGIC4,
                   sizeof(NGX_LLM_CACHE_ENTRY_MAGIC4) - 1)
        == 0)
    {
        version = 4;

    } else if (ngx_memcmp(p, NGX_LLM_CACHE_ENTRY_MAGIC,
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

    e->status = (ngx_uint_t) n;

    p = ngx_llm_cache_entry_number(p, end, ' ', &n);
    if (p == NULL || n == 0 || n > ngx_time() + NGX_LLM_CACHE_ENTRY_SKEW) {
        return NGX_ERROR;
    }

    e->created = (time_t) n;

    p = ngx_llm_cache_entry_number(p, end, version > 1 ? ' ' : '\n', &n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    e->content_type.len = (size_t) n;

    if (version > 1) {
        /* as the encoder writes them, up to 2^32 - 1 */

        p = ngx_llm_cache_entry_number(p, end, ' ', &n);
        if (p == NULL || n > NGX_MAX_UINT32_VALUE) {
            return NGX_ERROR;
        }

        e->usage.prompt = (ngx_uint_t) n;

        p = ngx_llm_cache_entry_number(p, end, ' ', &n);
        if (p == NULL || n > NGX_MAX_UINT32_VALUE) {
            return NGX_ERROR;
        }

        e->usage.completion = (ngx_uint_t) n;

        p = ngx_llm_cache_entry_number(p, end, version > 2 ? ' ' : '\n',
                                       &n);
        if (p == NULL || n > NGX_MAX_UINT32_VALUE) {
            return NGX_ERROR;
        }

        e->usage.duration = (ngx_msec_t) n;
    }

    if (version > 2) {
        p = ngx_llm_cache_entry_number(p, end, version > 3 ? ' ' : '\n',
                                       &n);
        if (p == NULL || n > NGX_MAX_UINT32_VALUE) {
            return NGX_ERROR;
        }

        e->ttl = (time_t) n;
    }

    crc = 0;

    if (version > 3) {
        /* an entry as it is is written LLMC3 */

        p = ngx_llm_cache_entry_number(p, end, ' ', &n);
        if (p == NULL || n != NGX_LLM_CACHE_ENCODING_GZIP) {
            return NGX_ERROR;
        }

        e->encoding = (ngx_uint_t) n;

        p = ngx_llm_cache_entry_number(p, end, ' ', &n);
        if (p == NULL || n > NGX_MAX_UINT32_VALUE) {
            return NGX_ERROR;
        }

        e->length = (size_t) n;

        p = ngx_llm_cache_entry_number(p, end, '\n', &n);
        if (p == NULL || n > NGX_MAX_UINT32_VALUE) {
            return NGX_ERROR;
        }

        crc = (uint32_t) n;
    }

    if ((off_t) e->content_type.len > end - p) {
        return NGX_ERROR;
    }

    e->content_type.data = p;

    e->body.data = p + e->content_type.len;
    e->body.len = end - e->body.data;

    if (ngx_llm_cache_entry_valid(e->status, &e->content_type) != NGX_OK) {
        return NGX_ERROR;
    }

    if (e->encoding == NGX_LLM_CACHE_ENCODING_GZIP) {
        /*
         * as the store deflates it: a gzip header without options, the
         * trailer's length the one above, the whole as stored; the NUL
         * bytes are looked for where it is inflated
         */

        if (e->body.len < 18
            || e->body.data[0] != 0x1f || e->body.data[1] != 0x8b
            || e->body.data[2] != 8 || e->body.data[3] != 0
            || crc32(0, e->body.data, e->body.len) != crc
            || (uint32_t) (e->body.data[e->body.len - 4]
                           | e->body.data[e->body.len - 3] << 8
                           | e->body.data[e->body.len - 2] << 16
                           | (uint32_t) e->body.data[e->body.len - 1] << 24)
               != (uint32_t) e->length)
        {
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    e->length = e->body.len;

    /* memchr(): every hit looks through the whole body */

    if (e->body.len && memchr(e->body.data, '\0', e->body.len) != NULL) {
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

    /* !#$%&'*+-.^_`|~, digits and letters */
    static uint32_t  tchar[] = {
        0x00000000,
        0x03ff6cfa,
        0xc7fffffe,
        0x57ffffff,
        0x00000000,
        0x00000000,
        0x00000000,
        0x00000000,
    };

    for (p = *pp; p < end; p++) {
        if (!(tchar[*p >> 5] & (1U << (*p & 0x1f)))) {
            break;
        }
    }

    if (p == *pp) {
        return 0;
    }

    *pp = p;

    return 1;
}
