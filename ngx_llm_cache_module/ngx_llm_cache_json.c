
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * The request body parsed with yajl into a small tree in the request pool,
 * and written back in one canonical form: object members sorted by name
 * in byte order, no whitespace, numbers as <digits>e<exponent> (so 0.7,
 * 0.70 and 7e-1 are one value, and 1 and 1.0 another), strings unescaped
 * and re-escaped one way.  Excluded members are left out and message text
 * may be normalized.  The writer callback sees the canonical bytes; the
 * caller hashes them.
 *
 * Before yajl, every byte of the body goes through a small scanner: the
 * body must be UTF-8 (yajl lets overlong forms, encoded surrogates and
 * code points past U+10FFFF through), and a \u escape of a UTF-16
 * surrogate must be one half of a pair (yajl turns a lone high surrogate
 * into "?" and pairs it with any \u escape that follows, so different
 * strings would make one key).  A body that is not cacheable ("declined")
 * is still parsed to its end, without building anything, so that broken
 * JSON is told apart from valid JSON wherever the break is.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <yajl/yajl_parse.h>

#include "ngx_llm_cache_json.h"


typedef enum {
    NGX_LLM_CACHE_JSON_NULL = 0,
    NGX_LLM_CACHE_JSON_TRUE,
    NGX_LLM_CACHE_JSON_FALSE,
    NGX_LLM_CACHE_JSON_NUMBER,
    NGX_LLM_CACHE_JSON_STRING,
    NGX_LLM_CACHE_JSON_ARRAY,
    NGX_LLM_CACHE_JSON_OBJECT
} ngx_llm_cache_json_type_e;


struct ngx_llm_cache_json_s {
    ngx_llm_cache_json_type_e      type;
    ngx_str_t                      name;       /* member name in an object */
    ngx_str_t                      value;      /* string, canonical number */
    ngx_llm_cache_json_t          *child;
    ngx_llm_cache_json_t          *last;
    ngx_llm_cache_json_t          *next;
    ngx_uint_t                     nchildren;
    unsigned                       hidden:1;   /* written as null */
};


struct ngx_llm_cache_json_parser_s {
    yajl_handle                    handle;
    ngx_pool_t                    *pool;
    ngx_llm_cache_json_t          *root;
    ngx_llm_cache_json_t          *stack[NGX_LLM_CACHE_JSON_MAX_DEPTH];
    ngx_uint_t                     depth;
    ngx_uint_t                     nvalues;
    ngx_str_t                      name;
    char                          *declined;   /* why it is not cacheable */
    char                          *invalid;    /* why it is not JSON */

    /* the scanner of the raw body: UTF-8 and \u escapes */
    ngx_uint_t                     utf8_need;  /* continuation bytes due */
    u_char                         utf8_min;   /* the range of the next */
    u_char                         utf8_max;
    ngx_uint_t                     escape;     /* 0, 1 after '\', 2-5 hex */
    ngx_uint_t                     code;       /* the \u value so far */

    unsigned                       surrogate:1; /* high half, low due */
    unsigned                       nomem:1;
};


typedef struct {
    ngx_pool_t                    *pool;
    ngx_llm_cache_json_conf_t     *conf;
    ngx_llm_cache_json_write_pt    write;
    void                          *data;
    ngx_str_t                     *path[NGX_LLM_CACHE_JSON_MAX_DEPTH];
    ngx_uint_t                     path_len;
    char                          *declined;
} ngx_llm_cache_json_emit_t;


static int ngx_llm_cache_json_null(void *ctx);
static int ngx_llm_cache_json_boolean(void *ctx, int value);
static int ngx_llm_cache_json_number(void *ctx, const char *s, size_t len);
static int ngx_llm_cache_json_string(void *ctx, const unsigned char *s,
    size_t len);
static int ngx_llm_cache_json_start_map(void *ctx);
static int ngx_llm_cache_json_map_key(void *ctx, const unsigned char *s,
    size_t len);
static int ngx_llm_cache_json_end(void *ctx);
static int ngx_llm_cache_json_start_array(void *ctx);
static void ngx_llm_cache_json_parser_cleanup(void *data);
static ngx_int_t ngx_llm_cache_json_scan(ngx_llm_cache_json_parser_t *parser,
    u_char *p, size_t len);
static void ngx_llm_cache_json_escape(ngx_llm_cache_json_parser_t *parser);
static ngx_int_t ngx_llm_cache_json_canonical_number(ngx_pool_t *pool,
    u_char *s, size_t len, ngx_str_t *out);

static ngx_int_t ngx_llm_cache_json_emit(ngx_llm_cache_json_emit_t *e,
    ngx_llm_cache_json_t *node, ngx_uint_t content);
static ngx_int_t ngx_llm_cache_json_emit_object(ngx_llm_cache_json_emit_t *e,
    ngx_llm_cache_json_t *node);
static ngx_int_t ngx_llm_cache_json_emit_string(ngx_llm_cache_json_emit_t *e,
    ngx_str_t *s, ngx_uint_t normalize);
static ngx_uint_t ngx_llm_cache_json_excluded(ngx_llm_cache_json_emit_t *e);
static int ngx_libc_cdecl ngx_llm_cache_json_cmp(const void *one,
    const void *two);


static yajl_callbacks  ngx_llm_cache_json_callbacks = {
    ngx_llm_cache_json_null,
    ngx_llm_cache_json_boolean,
    NULL,
    NULL,
    ngx_llm_cache_json_number,
    ngx_llm_cache_json_string,
    ngx_llm_cache_json_start_map,
    ngx_llm_cache_json_map_key,
    ngx_llm_cache_json_end,
    ngx_llm_cache_json_start_array,
    ngx_llm_cache_json_end
};


/* members whose string values are message text, subject to normalization */

static ngx_str_t  ngx_llm_cache_json_content_names[] = {
    ngx_string("content"),
    ngx_string("text"),
    ngx_string("input"),
    ngx_string("prompt"),
    ngx_string("system"),
    ngx_string("instructions"),
    ngx_string("query"),
    ngx_null_string
};


ngx_llm_cache_json_parser_t *
ngx_llm_cache_json_parser_create(ngx_pool_t *pool)
{
    ngx_pool_cleanup_t           *cln;
    ngx_llm_cache_json_parser_t  *parser;

    parser = ngx_pcalloc(pool, sizeof(ngx_llm_cache_json_parser_t));
    if (parser == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    parser->pool = pool;
    parser->handle = yajl_alloc(&ngx_llm_cache_json_callbacks, NULL, parser);
    if (parser->handle == NULL) {
        return NULL;
    }

    cln->handler = ngx_llm_cache_json_parser_cleanup;
    cln->data = parser;

    return parser;
}


static void
ngx_llm_cache_json_parser_cleanup(void *data)
{
    ngx_llm_cache_json_parser_t  *parser = data;

    yajl_free(parser->handle);
}


/*
 * A declined body is still read to its end, so once yajl has failed the
 * body is not JSON, whatever was declined before
 */

static ngx_int_t
ngx_llm_cache_json_status(ngx_llm_cache_json_parser_t *parser,
    yajl_status status)
{
    if (status == yajl_status_ok) {
        return NGX_OK;
    }

    if (parser->nomem) {
        return NGX_ERROR;
    }

    return NGX_LLM_CACHE_JSON_INVALID;
}


ngx_int_t
ngx_llm_cache_json_parse(ngx_llm_cache_json_parser_t *parser, u_char *p,
    size_t len)
{
    if (ngx_llm_cache_json_scan(parser, p, len) != NGX_OK) {
        return NGX_LLM_CACHE_JSON_INVALID;
    }

    return ngx_llm_cache_json_status(parser,
                                     yajl_parse(parser->handle, p, len));
}


/*
 * NGX_OK and the tree; NGX_DECLINED and why it is not cacheable; or as
 * ngx_llm_cache_json_parse_error() says
 */

ngx_int_t
ngx_llm_cache_json_parse_end(ngx_llm_cache_json_parser_t *parser,
    ngx_llm_cache_json_t **root, ngx_str_t *error)
{
    if (yajl_complete_parse(parser->handle) != yajl_status_ok) {
        return ngx_llm_cache_json_parse_error(parser, error);
    }

    if (parser->utf8_need) {
        /* yajl has seen the end of the text: the sequence was outside it */
        parser->invalid = "invalid UTF-8 byte sequence";
        return ngx_llm_cache_json_parse_error(parser, error);
    }

    if (parser->declined) {
        error->data = (u_char *) parser->declined;
        error->len = ngx_strlen(parser->declined);
        return NGX_DECLINED;
    }

    *root = parser->root;

    return NGX_OK;
}


/* after a failed parse: why, and NGX_LLM_CACHE_JSON_INVALID or NGX_ERROR */

ngx_int_t
ngx_llm_cache_json_parse_error(ngx_llm_cache_json_parser_t *parser,
    ngx_str_t *error)
{
    u_char  *msg;
    size_t   len;

    if (parser->nomem) {
        return NGX_ERROR;
    }

    if (parser->invalid) {
        error->data = (u_char *) parser->invalid;
        error->len = ngx_strlen(parser->invalid);
        return NGX_LLM_CACHE_JSON_INVALID;
    }

    msg = yajl_get_error(parser->handle, 0, NULL, 0);

    if (msg == NULL) {
        ngx_str_set(error, "invalid JSON");
        return NGX_LLM_CACHE_JSON_INVALID;
    }

    len = ngx_strlen(msg);

    while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '
                   || msg[len - 1] == '.'))
    {
        len--;
    }

    error->data = ngx_pnalloc(parser->pool, len);
    if (error->data == NULL) {
        yajl_free_error(parser->handle, msg);
        return NGX_ERROR;
    }

    error->len = len;
    ngx_memcpy(error->data, msg, len);

    yajl_free_error(parser->handle, msg);

    return NGX_LLM_CACHE_JSON_INVALID;
}


/*
 * The raw body, byte by byte, in as many pieces as it comes: strict UTF-8
 * (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF) and
 * \u escapes of surrogates in pairs.  Outside strings '\' and bytes over
 * 0x7f are errors yajl reports, so strings need not be tracked: a '\'
 * always starts an escape.
 */

static ngx_int_t
ngx_llm_cache_json_scan(ngx_llm_cache_json_parser_t *parser, u_char *p,
    size_t len)
{
    u_char  c, *end;

    for (end = p + len; p < end; p++) {
        c = *p;

        if (parser->utf8_need) {
            if (c < parser->utf8_min || c > parser->utf8_max) {
                goto invalid;
            }

            parser->utf8_min = 0x80;
            parser->utf8_max = 0xbf;
            parser->utf8_need--;

            continue;
        }

        if (c >= 0x80) {
            parser->utf8_min = 0x80;
            parser->utf8_max = 0xbf;

            if (c >= 0xc2 && c <= 0xdf) {
                parser->utf8_need = 1;

            } else if (c >= 0xe0 && c <= 0xef) {
                parser->utf8_need = 2;

                if (c == 0xe0) {
                    parser->utf8_min = 0xa0;     /* overlong */

                } else if (c == 0xed) {
                    parser->utf8_max = 0x9f;     /* surrogates */
                }

            } else if (c >= 0xf0 && c <= 0xf4) {
                parser->utf8_need = 3;

                if (c == 0xf0) {
                    parser->utf8_min = 0x90;     /* overlong */

                } else if (c == 0xf4) {
                    parser->utf8_max = 0x8f;     /* past U+10FFFF */
                }

            } else {
                goto invalid;
            }

            /* no escape goes on with it: yajl fails on the escape */
            parser->escape = 0;

            if (parser->surrogate) {
                parser->surrogate = 0;
                parser->declined = parser->declined ? parser->declined
                                   : "unpaired UTF-16 surrogate in a string";
            }

            continue;
        }

        switch (parser->escape) {

        case 0:
            if (c == '\\') {
                parser->escape = 1;
                continue;
            }

            break;

        case 1:
            if (c == 'u') {
                parser->escape = 2;
                parser->code = 0;
                continue;
            }

            /* \\, \" and the others; an invalid one is yajl's to report */
            parser->escape = 0;
            break;

        default:
            if (c >= '0' && c <= '9') {
                parser->code = parser->code * 16 + c - '0';

            } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
                parser->code = parser->code * 16 + (c | 0x20) - 'a' + 10;

            } else {
                parser->escape = 0;
                break;
            }

            if (++parser->escape == 6) {
                parser->escape = 0;
                ngx_llm_cache_json_escape(parser);
            }

            continue;
        }

        /* anything but the \u escape of a low surrogate after a high one */

        if (parser->surrogate) {
            parser->surrogate = 0;
            parser->declined = parser->declined ? parser->declined
                               : "unpaired UTF-16 surrogate in a string";
        }
    }

    return NGX_OK;

invalid:

    parser->invalid = "invalid UTF-8 byte sequence";

    return NGX_ERROR;
}


/* a complete \uXXXX escape */

static void
ngx_llm_cache_json_escape(ngx_llm_cache_json_parser_t *parser)
{
    ngx_uint_t  code;

    code = parser->code;

    if (parser->surrogate) {
        parser->surrogate = 0;

        if (code >= 0xdc00 && code <= 0xdfff) {
            return;
        }

    } else if (code >= 0xd800 && code <= 0xdbff) {
        parser->surrogate = 1;
        return;

    } else if (code < 0xdc00 || code > 0xdfff) {
        return;
    }

    if (parser->declined == NULL) {
        parser->declined = "unpaired UTF-16 surrogate in a string";
    }
}


/*
 * A new node in its parent.  NGX_DECLINED once the body is not cacheable:
 * then nothing more is built, yajl only checks the syntax to the end.
 */

static ngx_int_t
ngx_llm_cache_json_add(ngx_llm_cache_json_parser_t *parser,
    ngx_llm_cache_json_type_e type, ngx_llm_cache_json_t **nodep)
{
    ngx_llm_cache_json_t  *node, *parent;

    if (parser->declined) {
        return NGX_DECLINED;
    }

    /* a tree node costs ~100 bytes: 1 MB of "0," must not cost 50 MB */

    if (++parser->nvalues > NGX_LLM_CACHE_JSON_MAX_VALUES) {
        parser->declined = "more than 100000 values";
        return NGX_DECLINED;
    }

    node = ngx_pcalloc(parser->pool, sizeof(ngx_llm_cache_json_t));
    if (node == NULL) {
        parser->nomem = 1;
        return NGX_ERROR;
    }

    node->type = type;
    *nodep = node;

    if (parser->depth == 0) {
        parser->root = node;
        return NGX_OK;
    }

    parent = parser->stack[parser->depth - 1];

    if (parent->type == NGX_LLM_CACHE_JSON_OBJECT) {
        node->name = parser->name;
    }

    if (parent->last) {
        parent->last->next = node;

    } else {
        parent->child = node;
    }

    parent->last = node;
    parent->nchildren++;

    return NGX_OK;
}


static int
ngx_llm_cache_json_null(void *ctx)
{
    ngx_llm_cache_json_t  *node;

    return ngx_llm_cache_json_add(ctx, NGX_LLM_CACHE_JSON_NULL, &node)
           != NGX_ERROR;
}


static int
ngx_llm_cache_json_boolean(void *ctx, int value)
{
    ngx_llm_cache_json_t  *node;

    return ngx_llm_cache_json_add(ctx, value ? NGX_LLM_CACHE_JSON_TRUE
                                             : NGX_LLM_CACHE_JSON_FALSE,
                                  &node)
           != NGX_ERROR;
}


static int
ngx_llm_cache_json_number(void *ctx, const char *s, size_t len)
{
    ngx_llm_cache_json_parser_t *parser = ctx;

    ngx_int_t              rc;
    ngx_llm_cache_json_t  *node;

    rc = ngx_llm_cache_json_add(parser, NGX_LLM_CACHE_JSON_NUMBER, &node);
    if (rc != NGX_OK) {
        return rc != NGX_ERROR;
    }

    rc = ngx_llm_cache_json_canonical_number(parser->pool, (u_char *) s, len,
                                             &node->value);
    if (rc == NGX_ERROR) {
        parser->nomem = 1;
        return 0;
    }

    if (rc == NGX_DECLINED) {
        parser->declined = "number exponent out of range";
    }

    return 1;
}


static ngx_int_t
ngx_llm_cache_json_copy(ngx_llm_cache_json_parser_t *parser, ngx_str_t *to,
    const unsigned char *s, size_t len)
{
    to->len = len;

    if (len == 0) {
        to->data = (u_char *) "";
        return NGX_OK;
    }

    to->data = ngx_pnalloc(parser->pool, len);
    if (to->data == NULL) {
        parser->nomem = 1;
        return NGX_ERROR;
    }

    ngx_memcpy(to->data, s, len);

    return NGX_OK;
}


static int
ngx_llm_cache_json_string(void *ctx, const unsigned char *s, size_t len)
{
    ngx_llm_cache_json_parser_t *parser = ctx;

    ngx_int_t              rc;
    ngx_llm_cache_json_t  *node;

    rc = ngx_llm_cache_json_add(parser, NGX_LLM_CACHE_JSON_STRING, &node);
    if (rc != NGX_OK) {
        return rc != NGX_ERROR;
    }

    return ngx_llm_cache_json_copy(parser, &node->value, s, len) == NGX_OK;
}


static int
ngx_llm_cache_json_push(ngx_llm_cache_json_parser_t *parser,
    ngx_llm_cache_json_type_e type)
{
    ngx_int_t              rc;
    ngx_llm_cache_json_t  *node;

    if (parser->declined) {
        return 1;
    }

    if (parser->depth == NGX_LLM_CACHE_JSON_MAX_DEPTH) {
        parser->declined = "nested too deeply";
        return 1;
    }

    rc = ngx_llm_cache_json_add(parser, type, &node);
    if (rc != NGX_OK) {
        return rc != NGX_ERROR;
    }

    parser->stack[parser->depth++] = node;

    return 1;
}


static int
ngx_llm_cache_json_start_map(void *ctx)
{
    return ngx_llm_cache_json_push(ctx, NGX_LLM_CACHE_JSON_OBJECT);
}


static int
ngx_llm_cache_json_start_array(void *ctx)
{
    return ngx_llm_cache_json_push(ctx, NGX_LLM_CACHE_JSON_ARRAY);
}


static int
ngx_llm_cache_json_map_key(void *ctx, const unsigned char *s, size_t len)
{
    ngx_llm_cache_json_parser_t *parser = ctx;

    if (parser->declined) {
        return 1;
    }

    if (len > NGX_LLM_CACHE_JSON_MAX_KEY_LEN) {
        parser->declined = "member name too long";
        return 1;
    }

    return ngx_llm_cache_json_copy(parser, &parser->name, s, len) == NGX_OK;
}


static int
ngx_llm_cache_json_end(void *ctx)
{
    ngx_llm_cache_json_parser_t *parser = ctx;

    if (parser->declined == NULL) {
        parser->depth--;
    }

    return 1;
}


/*
 * -12.50e3 -> "-125e2": significant digits without leading or trailing
 * zeros and a decimal exponent; all zeros are "0"
 */

static ngx_int_t
ngx_llm_cache_json_canonical_number(ngx_pool_t *pool, u_char *s, size_t len,
    ngx_str_t *out)
{
    u_char     *p, *end, *digits, *first, *last, *o;
    int64_t     exp10, e;
    ngx_uint_t  neg, eneg, edigits, n;

    p = s;
    end = s + len;
    neg = 0;

    digits = ngx_pnalloc(pool, len + NGX_INT64_LEN + 3);
    if (digits == NULL) {
        return NGX_ERROR;
    }

    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }

    n = 0;
    exp10 = 0;

    while (p < end && *p >= '0' && *p <= '9') {
        digits[n++] = *p++;
    }

    if (p < end && *p == '.') {
        p++;

        while (p < end && *p >= '0' && *p <= '9') {
            digits[n++] = *p++;
            exp10--;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        eneg = 0;

        if (p < end && (*p == '+' || *p == '-')) {
            eneg = (*p == '-');
            p++;
        }

        e = 0;
        edigits = 0;

        while (p < end && *p >= '0' && *p <= '9') {
            e = e * 10 + (*p++ - '0');

            /* leading zeros are harmless, big exponents are not */
            if (e && ++edigits > 9) {
                return NGX_DECLINED;
            }
        }

        exp10 += eneg ? -e : e;
    }

    first = digits;
    last = digits + n;

    while (first < last && *first == '0') {
        first++;
    }

    while (last > first && *(last - 1) == '0') {
        last--;
        exp10++;
    }

    if (first == last) {
        ngx_str_set(out, "0");
        return NGX_OK;
    }

    /* what is written must read back: 10e999999999 is 1e1000000000 */
    if (exp10 > 999999999 || exp10 < -999999999) {
        return NGX_DECLINED;
    }

    n = last - first;

    ngx_memmove(digits + neg, first, n);

    if (neg) {
        digits[0] = '-';
    }

    o = digits + neg + n;
    o = ngx_sprintf(o, "e%L", exp10);

    out->data = digits;
    out->len = o - digits;

    return NGX_OK;
}


ngx_int_t
ngx_llm_cache_json_canonicalize(ngx_pool_t *pool, ngx_llm_cache_json_t *root,
    ngx_llm_cache_json_conf_t *conf, ngx_llm_cache_json_write_pt write,
    void *data, ngx_str_t *error)
{
    ngx_int_t                  rc;
    ngx_llm_cache_json_emit_t  e;

    ngx_memzero(&e, sizeof(ngx_llm_cache_json_emit_t));

    e.pool = pool;
    e.conf = conf;
    e.write = write;
    e.data = data;

    rc = ngx_llm_cache_json_emit(&e, root, 0);

    if (rc == NGX_DECLINED) {
        error->data = (u_char *) e.declined;
        error->len = ngx_strlen(e.declined);
    }

    return rc;
}


static ngx_int_t
ngx_llm_cache_json_emit(ngx_llm_cache_json_emit_t *e,
    ngx_llm_cache_json_t *node, ngx_uint_t content)
{
    ngx_int_t              rc;
    ngx_llm_cache_json_t  *child;

    if (node->hidden) {
        e->write(e->data, (u_char *) "null", 4);
        return NGX_OK;
    }

    switch (node->type) {

    case NGX_LLM_CACHE_JSON_NULL:
        e->write(e->data, (u_char *) "null", 4);
        return NGX_OK;

    case NGX_LLM_CACHE_JSON_TRUE:
        e->write(e->data, (u_char *) "true", 4);
        return NGX_OK;

    case NGX_LLM_CACHE_JSON_FALSE:
        e->write(e->data, (u_char *) "false", 5);
        return NGX_OK;

    case NGX_LLM_CACHE_JSON_NUMBER:
        e->write(e->data, node->value.data, node->value.len);
        return NGX_OK;

    case NGX_LLM_CACHE_JSON_STRING:
        return ngx_llm_cache_json_emit_string(e, &node->value,
                                   content ? e->conf->normalize : 0);

    case NGX_LLM_CACHE_JSON_ARRAY:
        e->write(e->data, (u_char *) "[", 1);

        for (child = node->child; child; child = child->next) {
            if (child != node->child) {
                e->write(e->data, (u_char *) ",", 1);
            }

            rc = ngx_llm_cache_json_emit(e, child, content);
            if (rc != NGX_OK) {
                return rc;
            }
        }

        e->write(e->data, (u_char *) "]", 1);
        return NGX_OK;

    default: /* NGX_LLM_CACHE_JSON_OBJECT */
        return ngx_llm_cache_json_emit_object(e, node);
    }
}


static ngx_int_t
ngx_llm_cache_json_emit_object(ngx_llm_cache_json_emit_t *e,
    ngx_llm_cache_json_t *node)
{
    ngx_int_t               rc;
    ngx_str_t              *name;
    ngx_uint_t              i, n, content, written;
    ngx_llm_cache_json_t   *child, **members;

    n = node->nchildren;

    members = ngx_palloc(e->pool,
                         (n ? n : 1) * sizeof(ngx_llm_cache_json_t *));
    if (members == NULL) {
        return NGX_ERROR;
    }

    for (i = 0, child = node->child; child; child = child->next) {
        members[i++] = child;
    }

    ngx_qsort(members, n, sizeof(ngx_llm_cache_json_t *),
              ngx_llm_cache_json_cmp);

    e->write(e->data, (u_char *) "{", 1);

    written = 0;

    for (i = 0; i < n; i++) {
        child = members[i];

        if (i > 0 && ngx_llm_cache_json_cmp(&members[i - 1], &child) == 0) {
            /* parsers disagree on which one wins: not cacheable */
            e->declined = "duplicate member name";
            return NGX_DECLINED;
        }

        e->path[e->path_len++] = &child->name;

        if (ngx_llm_cache_json_excluded(e)) {
            e->path_len--;
            continue;
        }

        if (written++) {
            e->write(e->data, (u_char *) ",", 1);
        }

        rc = ngx_llm_cache_json_emit_string(e, &child->name, 0);
        if (rc != NGX_OK) {
            return rc;
        }

        e->write(e->data, (u_char *) ":", 1);

        content = 0;

        for (name = ngx_llm_cache_json_content_names; name->len; name++) {
            if (name->len == child->name.len
                && ngx_strncmp(name->data, child->name.data, name->len) == 0)
            {
                content = 1;
                break;
            }
        }

        rc = ngx_llm_cache_json_emit(e, child, content);
        if (rc != NGX_OK) {
            return rc;
        }

        e->path_len--;
    }

    e->write(e->data, (u_char *) "}", 1);

    return NGX_OK;
}


static ngx_uint_t
ngx_llm_cache_json_excluded(ngx_llm_cache_json_emit_t *e)
{
    ngx_str_t    *seg;
    ngx_uint_t    i, j;
    ngx_array_t  *paths;

    if (e->conf->exclude == NULL) {
        return 0;
    }

    paths = e->conf->exclude->elts;

    for (i = 0; i < e->conf->exclude->nelts; i++) {

        if (paths[i].nelts != e->path_len) {
            continue;
        }

        seg = paths[i].elts;

        for (j = 0; j < e->path_len; j++) {
            if (seg[j].len != e->path[j]->len
                || ngx_memcmp(seg[j].data, e->path[j]->data, seg[j].len) != 0)
            {
                break;
            }
        }

        if (j == e->path_len) {
            return 1;
        }
    }

    return 0;
}


#define ngx_llm_cache_json_space(c)                                           \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r'                 \
     || (c) == '\f' || (c) == '\v')


static ngx_int_t
ngx_llm_cache_json_emit_string(ngx_llm_cache_json_emit_t *e, ngx_str_t *s,
    ngx_uint_t normalize)
{
    u_char   *p, *end, *start, *buf, *o, c;
    u_char    esc[6];
    ngx_uint_t  space;

    static u_char  hex[] = "0123456789abcdef";

    p = s->data;
    end = s->data + s->len;

    if (normalize) {
        buf = ngx_pnalloc(e->pool, s->len ? s->len : 1);
        if (buf == NULL) {
            return NGX_ERROR;
        }

        if (normalize & NGX_LLM_CACHE_NORMALIZE_TRIM) {
            while (p < end && ngx_llm_cache_json_space(*p)) {
                p++;
            }

            while (end > p && ngx_llm_cache_json_space(*(end - 1))) {
                end--;
            }
        }

        o = buf;
        space = 0;

        for ( /* void */ ; p < end; p++) {
            c = *p;

            if ((normalize & NGX_LLM_CACHE_NORMALIZE_COLLAPSE)
                && ngx_llm_cache_json_space(c))
            {
                if (!space) {
                    *o++ = ' ';
                    space = 1;
                }

                continue;
            }

            space = 0;

            if (normalize & NGX_LLM_CACHE_NORMALIZE_LOWERCASE) {
                c = ngx_tolower(c);
            }

            *o++ = c;
        }

        p = buf;
        end = o;
    }

    e->write(e->data, (u_char *) "\"", 1);

    for (start = p; p < end; p++) {
        c = *p;

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }

        if (p > start) {
            e->write(e->data, start, p - start);
        }

        esc[0] = '\\';

        if (c == '"' || c == '\\') {
            esc[1] = c;
            e->write(e->data, esc, 2);

        } else {
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            e->write(e->data, esc, 6);
        }

        start = p + 1;
    }

    if (p > start) {
        e->write(e->data, start, p - start);
    }

    e->write(e->data, (u_char *) "\"", 1);

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_llm_cache_json_cmp(const void *one, const void *two)
{
    ngx_llm_cache_json_t  *a = *(ngx_llm_cache_json_t **) one;
    ngx_llm_cache_json_t  *b = *(ngx_llm_cache_json_t **) two;

    int     rc;
    size_t  n;

    n = ngx_min(a->name.len, b->name.len);

    rc = ngx_memcmp(a->name.data, b->name.data, n);
    if (rc != 0) {
        return rc;
    }

    return (a->name.len > b->name.len) - (a->name.len < b->name.len);
}


ngx_int_t
ngx_llm_cache_json_is_object(ngx_llm_cache_json_t *root)
{
    return root != NULL && root->type == NGX_LLM_CACHE_JSON_OBJECT;
}


ngx_int_t
ngx_llm_cache_json_get_string(ngx_llm_cache_json_t *object, char *name,
    ngx_str_t *value)
{
    size_t                 len;
    ngx_llm_cache_json_t  *child;

    len = ngx_strlen(name);

    for (child = object->child; child; child = child->next) {
        if (child->type == NGX_LLM_CACHE_JSON_STRING
            && child->name.len == len
            && ngx_strncmp(child->name.data, name, len) == 0)
        {
            *value = child->value;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* the semantic layer reads the messages (ngx_llm_cache_semantic.c) */

ngx_llm_cache_json_t *
ngx_llm_cache_json_member(ngx_llm_cache_json_t *object, char *name)
{
    size_t                 len;
    ngx_llm_cache_json_t  *child;

    if (object == NULL || object->type != NGX_LLM_CACHE_JSON_OBJECT) {
        return NULL;
    }

    len = ngx_strlen(name);

    for (child = object->child; child; child = child->next) {
        if (child->name.len == len
            && ngx_strncmp(child->name.data, name, len) == 0)
        {
            return child;
        }
    }

    return NULL;
}


ngx_llm_cache_json_t *
ngx_llm_cache_json_first(ngx_llm_cache_json_t *array)
{
    if (array == NULL || array->type != NGX_LLM_CACHE_JSON_ARRAY) {
        return NULL;
    }

    return array->child;
}


ngx_llm_cache_json_t *
ngx_llm_cache_json_last(ngx_llm_cache_json_t *array)
{
    if (array == NULL || array->type != NGX_LLM_CACHE_JSON_ARRAY) {
        return NULL;
    }

    return array->last;
}


ngx_llm_cache_json_t *
ngx_llm_cache_json_next(ngx_llm_cache_json_t *node)
{
    return node->next;
}


/* a string's value, unescaped; a canonical number's ("1e0") */

ngx_int_t
ngx_llm_cache_json_value(ngx_llm_cache_json_t *node, ngx_uint_t number,
    ngx_str_t *value)
{
    if (node == NULL
        || node->type != (number ? NGX_LLM_CACHE_JSON_NUMBER
                                 : NGX_LLM_CACHE_JSON_STRING))
    {
        return NGX_DECLINED;
    }

    *value = node->value;

    return NGX_OK;
}


void
ngx_llm_cache_json_hide(ngx_llm_cache_json_t *node, ngx_uint_t hide)
{
    node->hidden = hide ? 1 : 0;
}


/* "metadata.trace_id" -> ["metadata", "trace_id"] */

ngx_int_t
ngx_llm_cache_json_exclude_add(ngx_pool_t *pool, ngx_array_t *exclude,
    ngx_str_t *path)
{
    u_char       *p, *end, *dot;
    ngx_str_t    *seg;
    ngx_array_t  *segs;

    segs = ngx_array_push(exclude);
    if (segs == NULL) {
        return NGX_ERROR;
    }

    if (ngx_array_init(segs, pool, 2, sizeof(ngx_str_t)) != NGX_OK) {
        return NGX_ERROR;
    }

    p = path->data;
    end = path->data + path->len;

    while (p <= end) {
        dot = ngx_strlchr(p, end, '.');
        if (dot == NULL) {
            dot = end;
        }

        if (dot == p) {
            return NGX_DECLINED;
        }

        if (segs->nelts == NGX_LLM_CACHE_JSON_MAX_DEPTH) {
            return NGX_DECLINED;
        }

        seg = ngx_array_push(segs);
        if (seg == NULL) {
            return NGX_ERROR;
        }

        seg->data = p;
        seg->len = dot - p;

        p = dot + 1;
    }

    return NGX_OK;
}


/*
 * A provider's JSON answer is stored only if it parses and does not carry
 * a top-level "error" that is not null: some gateways answer 200 with
 * {"error": ...}, and that must not be replayed as an answer.
 */

typedef struct {
    ngx_uint_t   depth;
    unsigned     error_key:1;
    unsigned     error:1;
} ngx_llm_cache_json_answer_t;


static ngx_int_t
ngx_llm_cache_json_answer_value(ngx_llm_cache_json_answer_t *a,
    ngx_uint_t null)
{
    if (a->error_key && !null) {
        a->error = 1;
        return 0;       /* stops the parse */
    }

    a->error_key = 0;

    return 1;
}


static int
ngx_llm_cache_json_answer_null(void *ctx)
{
    return ngx_llm_cache_json_answer_value(ctx, 1);
}


static int
ngx_llm_cache_json_answer_bool(void *ctx, int v)
{
    return ngx_llm_cache_json_answer_value(ctx, 0);
}


static int
ngx_llm_cache_json_answer_number(void *ctx, const char *s, size_t len)
{
    return ngx_llm_cache_json_answer_value(ctx, 0);
}


static int
ngx_llm_cache_json_answer_string(void *ctx, const unsigned char *s,
    size_t len)
{
    return ngx_llm_cache_json_answer_value(ctx, 0);
}


static int
ngx_llm_cache_json_answer_key(void *ctx, const unsigned char *s, size_t len)
{
    ngx_llm_cache_json_answer_t  *a = ctx;

    a->error_key = (a->depth == 1 && len == sizeof("error") - 1
                    && ngx_strncmp(s, "error", len) == 0);

    return 1;
}


static int
ngx_llm_cache_json_answer_open(void *ctx)
{
    ngx_llm_cache_json_answer_t  *a = ctx;

    if (!ngx_llm_cache_json_answer_value(a, 0)) {
        return 0;
    }

    a->depth++;

    return 1;
}


static int
ngx_llm_cache_json_answer_close(void *ctx)
{
    ngx_llm_cache_json_answer_t  *a = ctx;

    a->depth--;

    return 1;
}


static yajl_callbacks  ngx_llm_cache_json_answer_callbacks = {
    ngx_llm_cache_json_answer_null,
    ngx_llm_cache_json_answer_bool,
    NULL,
    NULL,
    ngx_llm_cache_json_answer_number,
    ngx_llm_cache_json_answer_string,
    ngx_llm_cache_json_answer_open,
    ngx_llm_cache_json_answer_key,
    ngx_llm_cache_json_answer_close,
    ngx_llm_cache_json_answer_open,
    ngx_llm_cache_json_answer_close
};


ngx_uint_t
ngx_llm_cache_json_valid(u_char *p, size_t len)
{
    yajl_handle                  h;
    yajl_status                  st;
    ngx_llm_cache_json_answer_t  a;

    ngx_memzero(&a, sizeof(ngx_llm_cache_json_answer_t));

    h = yajl_alloc(&ngx_llm_cache_json_answer_callbacks, NULL, &a);
    if (h == NULL) {
        return 0;
    }

    st = yajl_parse(h, p, len);

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    return st == yajl_status_ok && !a.error;
}


struct ngx_llm_cache_json_stream_s {
    yajl_handle                  handle;
    ngx_llm_cache_json_answer_t  answer;
    ngx_uint_t                   failed;
};


static void
ngx_llm_cache_json_stream_cleanup(void *data)
{
    ngx_llm_cache_json_stream_t  *js = data;

    if (js->handle) {
        yajl_free(js->handle);
        js->handle = NULL;
    }
}


ngx_llm_cache_json_stream_t *
ngx_llm_cache_json_stream_create(ngx_pool_t *pool)
{
    ngx_pool_cleanup_t           *cln;
    ngx_llm_cache_json_stream_t  *js;

    cln = ngx_pool_cleanup_add(pool, sizeof(ngx_llm_cache_json_stream_t));
    if (cln == NULL) {
        return NULL;
    }

    js = cln->data;
    ngx_memzero(js, sizeof(ngx_llm_cache_json_stream_t));

    cln->handler = ngx_llm_cache_json_stream_cleanup;

    js->handle = yajl_alloc(&ngx_llm_cache_json_answer_callbacks, NULL,
                            &js->answer);
    if (js->handle == NULL) {
        return NULL;
    }

    return js;
}


/* 0 once the answer is known not to be one */

ngx_uint_t
ngx_llm_cache_json_stream_feed(ngx_llm_cache_json_stream_t *js, u_char *p,
    size_t len)
{
    if (js->failed) {
        return 0;
    }

    if (yajl_parse(js->handle, p, len) != yajl_status_ok
        || js->answer.error)
    {
        js->failed = 1;
        ngx_llm_cache_json_stream_cleanup(js);
        return 0;
    }

    return 1;
}


ngx_uint_t
ngx_llm_cache_json_stream_end(ngx_llm_cache_json_stream_t *js)
{
    if (js->failed) {
        return 0;
    }

    /* the lexer's buffer goes now, not with the request */

    if (yajl_complete_parse(js->handle) != yajl_status_ok
        || js->answer.error)
    {
        js->failed = 1;
    }

    ngx_llm_cache_json_stream_cleanup(js);

    return !js->failed;
}
