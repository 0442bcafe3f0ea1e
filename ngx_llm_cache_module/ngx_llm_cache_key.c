
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * The cache key: SHA-256 over the format version, the namespace (by
 * default the client's credential, so two API keys never share an entry
 * and no credential reaches Redis), the provider (the llm_cache_pass
 * value), the request path and arguments and the canonical JSON of the
 * body.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>

#include "ngx_llm_cache_module.h"


#define NGX_LLM_CACHE_FILE_BUF   65536


#define NGX_LLM_CACHE_HASH_BUF   512


/*
 * OpenSSL's own SHA-256 (as nginx's md5 and sha1 once were): no provider
 * look-up, lock or allocation per digest, which the EVP interface of
 * OpenSSL 3 costs on every request.  The many small writes of a key's
 * fields are gathered first: one update costs as much as a block.
 */

typedef struct {
    SHA256_CTX   md;
    size_t       len;
    u_char       buf[NGX_LLM_CACHE_HASH_BUF];
} ngx_llm_cache_hash_t;


static char *ngx_llm_cache_body_type(ngx_http_request_t *r);
static ngx_int_t ngx_llm_cache_parse_body(ngx_http_request_t *r,
    ngx_llm_cache_json_parser_t *parser);
static ngx_int_t ngx_llm_cache_hash_start(ngx_llm_cache_hash_t *h);
static ngx_int_t ngx_llm_cache_hash_end(ngx_llm_cache_hash_t *h,
    ngx_int_t rc, u_char *digest, unsigned int *n);
static void ngx_llm_cache_hash_write(void *data, u_char *p, size_t len);
static void ngx_llm_cache_hash_field(ngx_llm_cache_hash_t *h, char *name,
    ngx_str_t *value);
static ngx_int_t ngx_llm_cache_hash_namespace(ngx_http_request_t *r,
    ngx_llm_cache_loc_conf_t *lcf, ngx_llm_cache_hash_t *h, ngx_str_t *error);
static ngx_uint_t ngx_llm_cache_hash_headers(ngx_http_request_t *r,
    ngx_llm_cache_hash_t *h, ngx_str_t *names);
static ngx_int_t ngx_llm_cache_short_digest(u_char *out, ngx_str_t *value);
static ngx_int_t ngx_llm_cache_raw_digest(ngx_http_request_t *r,
    ngx_llm_cache_loc_conf_t *lcf, u_char *digest);
static ngx_int_t ngx_llm_cache_request_digest(ngx_http_request_t *r,
    ngx_llm_cache_loc_conf_t *lcf, ngx_llm_cache_json_t *root,
    ngx_str_t *identity, u_char *digest, unsigned int *n, ngx_str_t *error);


static ngx_str_t  ngx_llm_cache_credential_headers[] = {
    ngx_string("Authorization"),
    ngx_string("x-api-key"),                 /* Anthropic */
    ngx_string("api-key"),                   /* Azure OpenAI */
    ngx_string("x-goog-api-key"),            /* Gemini */
    ngx_null_string
};


/* one key may serve several of them: part of the namespace when sent */

static ngx_str_t  ngx_llm_cache_account_headers[] = {
    ngx_string("OpenAI-Organization"),
    ngx_string("OpenAI-Project"),
    ngx_null_string
};


/* they change what the provider answers: part of the key when sent */

static ngx_str_t  ngx_llm_cache_version_headers[] = {
    ngx_string("anthropic-version"),
    ngx_string("anthropic-beta"),
    ngx_string("openai-beta"),
    ngx_null_string
};


/*
 * NGX_OK with ctx->key and ctx->model, NGX_DECLINED when the body is not
 * a cacheable request, NGX_LLM_CACHE_JSON_INVALID when it is not JSON;
 * the error says why
 */

ngx_int_t
ngx_llm_cache_build_key(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx,
    ngx_str_t *error)
{
    u_char                       *p;
    ngx_int_t                     rc;
    ngx_str_t                     ns;
    unsigned int                  n;
    ngx_llm_cache_json_t         *root;
    ngx_llm_cache_loc_conf_t     *lcf;
    ngx_uint_t                    memo;
    ngx_llm_cache_json_parser_t  *parser;
    u_char                        digest[SHA256_DIGEST_LENGTH];
    u_char                        raw[NGX_LLM_CACHE_RAW_DIGEST_LEN];

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    ngx_str_null(error);

    error->data = (u_char *) ngx_llm_cache_body_type(r);
    if (error->data) {
        error->len = ngx_strlen(error->data);
        return NGX_DECLINED;
    }

    /*
     * a request seen before, byte for byte, has its key in the memo; not
     * with the semantic layer, which needs the parsed request
     */

    memo = (lcf->semantic.mode == NGX_LLM_CACHE_SEMANTIC_OFF
            && ngx_llm_cache_raw_digest(r, lcf, raw) == NGX_OK);

    if (memo) {
        rc = ngx_llm_cache_key_memo_find(r, raw, ctx);
        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    parser = ngx_llm_cache_json_parser_create(r->pool);
    if (parser == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_llm_cache_parse_body(r, parser);
    if (rc != NGX_OK) {
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        return ngx_llm_cache_json_parse_error(parser, error);
    }

    rc = ngx_llm_cache_json_parse_end(parser, &root, error);
    if (rc != NGX_OK) {
        return rc;
    }

    if (!ngx_llm_cache_json_is_object(root)) {
        ngx_str_set(error, "the body is not a JSON object");
        return NGX_DECLINED;
    }

    (void) ngx_llm_cache_json_get_string(root, "model", &ctx->model);

    rc = ngx_llm_cache_request_digest(r, lcf, root, NULL, digest, &n, error);
    if (rc != NGX_OK) {
        return rc;
    }

    /*
     * <prefix>v2:<namespace id>:<model id>:<hash>: a purge finds all
     * entries of a namespace or of a model with one SCAN pattern
     */

    rc = ngx_llm_cache_namespace_id(r, &ns, error);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx->key.len = lcf->key_prefix.len + sizeof(NGX_LLM_CACHE_FORMAT_VERSION)
                   + ns.len + 1 + NGX_LLM_CACHE_ID_LEN + 1 + 2 * n;
    ctx->key.data = ngx_pnalloc(r->pool, ctx->key.len);
    if (ctx->key.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(ctx->key.data, lcf->key_prefix.data, lcf->key_prefix.len);
    p = ngx_cpymem(p, NGX_LLM_CACHE_FORMAT_VERSION ":",
                   sizeof(NGX_LLM_CACHE_FORMAT_VERSION));
    p = ngx_cpymem(p, ns.data, ns.len);
    *p++ = ':';
    p = ngx_llm_cache_model_id(p, &ctx->model);
    *p++ = ':';
    p = ngx_hex_dump(p, digest, n);

    ctx->key.len = p - ctx->key.data;

    if (lcf->semantic.mode != NGX_LLM_CACHE_SEMANTIC_OFF) {
        return ngx_llm_cache_semantic_prepare(r, ctx, root);
    }

    if (memo) {
        ngx_llm_cache_key_memo_save(r, raw, ctx);
    }

    return NGX_OK;
}


/*
 * The memo's index: SHA-256 over everything the key is made of, with the
 * body's bytes as they came in place of its canonical form, and the
 * location (its configuration decides the canonical form and the
 * prefix).  NGX_DECLINED: no memo for this request (a body in a file,
 * no namespace).
 */

static ngx_int_t
ngx_llm_cache_raw_digest(ngx_http_request_t *r, ngx_llm_cache_loc_conf_t *lcf,
    u_char *digest)
{
    ngx_int_t              rc;
    ngx_str_t              error;
    ngx_chain_t           *cl;
    unsigned int           n;
    ngx_llm_cache_hash_t   h;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (!ngx_buf_in_memory(cl->buf)) {
            return NGX_DECLINED;
        }
    }

    if (ngx_llm_cache_hash_start(&h) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_llm_cache_hash_write(&h, (u_char *) "llm_cache raw\n",
                             sizeof("llm_cache raw\n") - 1);
    ngx_llm_cache_hash_write(&h, (u_char *) &lcf, sizeof(lcf));

    rc = ngx_llm_cache_hash_namespace(r, lcf, &h, &error);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_llm_cache_hash_field(&h, "path", &r->uri);
    ngx_llm_cache_hash_field(&h, "args", &r->args);

    (void) ngx_llm_cache_hash_headers(r, &h, ngx_llm_cache_version_headers);

    ngx_llm_cache_hash_write(&h, (u_char *) "body=", 5);

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        ngx_llm_cache_hash_write(&h, cl->buf->pos,
                                 cl->buf->last - cl->buf->pos);
    }

    return ngx_llm_cache_hash_end(&h, NGX_OK, digest, &n);
}

/*
 * SHA-256 over the version, namespace, provider, path, arguments, version
 * headers and canonical body; with identity, the semantic partition
 * (the caller has hidden the embedded text in the tree)
 */

static ngx_int_t
ngx_llm_cache_request_digest(ngx_http_request_t *r,
    ngx_llm_cache_loc_conf_t *lcf, ngx_llm_cache_json_t *root,
    ngx_str_t *identity, u_char *digest, unsigned int *n, ngx_str_t *error)
{
    ngx_int_t             rc;
    ngx_llm_cache_hash_t  h;

    if (ngx_llm_cache_hash_start(&h) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_llm_cache_hash_write(&h, (u_char *) "llm_cache "
                             NGX_LLM_CACHE_FORMAT_VERSION "\n",
                             sizeof("llm_cache " NGX_LLM_CACHE_FORMAT_VERSION
                                    "\n") - 1);

    rc = ngx_llm_cache_hash_namespace(r, lcf, &h, error);

    if (rc == NGX_OK) {
        /*
         * two locations passing to different providers never share an
         * entry; the configured string, whatever form it takes
         */

        ngx_llm_cache_hash_field(&h, "pass", &lcf->pass);
        ngx_llm_cache_hash_field(&h, "path", &r->uri);

        /*
         * the provider gets them (api-version, a key=...); left out when
         * empty, so keys of requests without them stay what they were
         */

        if (r->args.len) {
            ngx_llm_cache_hash_field(&h, "args", &r->args);
        }

        (void) ngx_llm_cache_hash_headers(r, &h,
                                          ngx_llm_cache_version_headers);

        if (identity) {
            /* the semantic partition: its embedder, then the body */
            ngx_llm_cache_hash_field(&h, "semantic", identity);
        }

        ngx_llm_cache_hash_write(&h, (u_char *) "body=", 5);

        rc = ngx_llm_cache_json_canonicalize(r->pool, root, &lcf->json,
                                             ngx_llm_cache_hash_write, &h,
                                             error);
    }

    return ngx_llm_cache_hash_end(&h, rc, digest, n);
}


ngx_int_t
ngx_llm_cache_partition_digest(ngx_http_request_t *r,
    ngx_llm_cache_json_t *root, ngx_str_t *identity, u_char *digest,
    ngx_str_t *error)
{
    unsigned int               n;
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    return ngx_llm_cache_request_digest(r, lcf, root, identity, digest, &n,
                                        error);
}



/*
 * The namespace's part of the key: 16 hex digits of SHA-256 over the
 * namespace (credential headers or llm_cache_namespace) and the
 * llm_cache_pass value; never a credential in clear
 */

ngx_int_t
ngx_llm_cache_namespace_id(ngx_http_request_t *r, ngx_str_t *id,
    ngx_str_t *error)
{
    ngx_int_t                  rc;
    unsigned int               n;
    ngx_llm_cache_hash_t       h;
    ngx_llm_cache_loc_conf_t  *lcf;
    u_char                     digest[SHA256_DIGEST_LENGTH];

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    if (ngx_llm_cache_hash_start(&h) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_llm_cache_hash_write(&h, (u_char *) "llm_cache namespace\n",
                             sizeof("llm_cache namespace\n") - 1);

    rc = ngx_llm_cache_hash_namespace(r, lcf, &h, error);

    if (rc == NGX_OK) {
        ngx_llm_cache_hash_field(&h, "pass", &lcf->pass);
    }

    rc = ngx_llm_cache_hash_end(&h, rc, digest, &n);

    if (rc != NGX_OK) {
        return rc;
    }

    id->data = ngx_pnalloc(r->pool, NGX_LLM_CACHE_ID_LEN);
    if (id->data == NULL) {
        return NGX_ERROR;
    }

    id->len = ngx_hex_dump(id->data, digest, NGX_LLM_CACHE_ID_LEN / 2)
              - id->data;

    return NGX_OK;
}


/*
 * The model's part of the key: 16 hex digits of SHA-256 of the model's
 * name (no glob or ':' in it, whatever the name), "-" when none;
 * NGX_LLM_CACHE_ID_LEN bytes at most
 */

u_char *
ngx_llm_cache_model_id(u_char *p, ngx_str_t *model)
{
    u_char  out[NGX_LLM_CACHE_ID_LEN];

    if (model->len == 0 || ngx_llm_cache_short_digest(out, model) != NGX_OK) {
        *p++ = '-';
        return p;
    }

    return ngx_cpymem(p, out, NGX_LLM_CACHE_ID_LEN);
}


static ngx_int_t
ngx_llm_cache_short_digest(u_char *out, ngx_str_t *value)
{
    u_char  digest[SHA256_DIGEST_LENGTH];

    if (SHA256(value->data, value->len, digest) == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_hex_dump(out, digest, NGX_LLM_CACHE_ID_LEN / 2);

    return NGX_OK;
}


/*
 * NULL when the body is to be parsed as JSON: a JSON media type
 * (application/json, anything +json) or none.  Other bodies (multipart
 * audio uploads, forms, text) and encoded ones are passed through
 * uncached, never refused: what they are is the provider's business.
 */

static char *
ngx_llm_cache_body_type(ngx_http_request_t *r)
{
    ngx_str_t         media, json;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (r->headers_in.content_type) {
        ngx_llm_cache_media_type(&r->headers_in.content_type->value, &media);

        ngx_str_set(&json, "+json");

        if (media.len
            && !ngx_llm_cache_header_is(&media, "application/json")
            && !(media.len > json.len
                 && ngx_strncasecmp(media.data + media.len - json.len,
                                    json.data, json.len)
                    == 0))
        {
            return "the content type is not JSON";
        }
    }

    part = &r->headers_in.headers.part;
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

        if (ngx_llm_cache_header_is(&h[i].key, "Content-Encoding")
            && !ngx_llm_cache_header_is(&h[i].value, "identity"))
        {
            return "the body has a content encoding";
        }
    }

    return NULL;
}


/* the body as read by nginx: memory buffers and/or a temporary file */

static ngx_int_t
ngx_llm_cache_parse_body(ngx_http_request_t *r,
    ngx_llm_cache_json_parser_t *parser)
{
    off_t         offset;
    size_t        size;
    ssize_t       n;
    u_char       *buf;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    buf = NULL;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file || ngx_buf_in_memory(b)) {
            rc = ngx_llm_cache_json_parse(parser, b->pos, b->last - b->pos);
            if (rc != NGX_OK) {
                return rc;
            }

            continue;
        }

        if (buf == NULL) {
            buf = ngx_palloc(r->pool, NGX_LLM_CACHE_FILE_BUF);
            if (buf == NULL) {
                return NGX_ERROR;
            }
        }

        for (offset = b->file_pos; offset < b->file_last; offset += n) {
            size = (size_t) ngx_min(b->file_last - offset,
                                    NGX_LLM_CACHE_FILE_BUF);

            n = ngx_read_file(b->file, buf, size, offset);
            if (n == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (n == 0) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "llm_cache: request body file \"%V\" "
                              "is shorter than expected", &b->file->name);
                return NGX_ERROR;
            }

            rc = ngx_llm_cache_json_parse(parser, buf, n);
            if (rc != NGX_OK) {
                return rc;
            }
        }
    }

    return NGX_OK;
}


/* a SHA-256 being written through a small buffer */

static ngx_int_t
ngx_llm_cache_hash_start(ngx_llm_cache_hash_t *h)
{
    if (SHA256_Init(&h->md) != 1) {
        return NGX_ERROR;
    }

    h->len = 0;

    return NGX_OK;
}


/* the digest if rc is NGX_OK */

static ngx_int_t
ngx_llm_cache_hash_end(ngx_llm_cache_hash_t *h, ngx_int_t rc, u_char *digest,
    unsigned int *n)
{
    if (rc == NGX_OK) {
        if (h->len) {
            (void) SHA256_Update(&h->md, h->buf, h->len);
        }

        if (SHA256_Final(digest, &h->md) != 1) {
            return NGX_ERROR;
        }

        *n = SHA256_DIGEST_LENGTH;
    }

    return rc;
}


static void
ngx_llm_cache_hash_write(void *data, u_char *p, size_t len)
{
    ngx_llm_cache_hash_t  *h = data;

    if (len == 0) {
        /* an empty value may have no data pointer */
        return;
    }

    if (h->len + len > NGX_LLM_CACHE_HASH_BUF) {
        if (h->len) {
            (void) SHA256_Update(&h->md, h->buf, h->len);
            h->len = 0;
        }

        if (len > NGX_LLM_CACHE_HASH_BUF / 2) {
            (void) SHA256_Update(&h->md, p, len);
            return;
        }
    }

    h->len = ngx_cpymem(h->buf + h->len, p, len) - h->buf;
}


/* name, length and value: no value can be mistaken for another field */

static void
ngx_llm_cache_hash_field(ngx_llm_cache_hash_t *h, char *name,
    ngx_str_t *value)
{
    u_char  *p;
    size_t   n;
    u_char   len[NGX_SIZE_T_LEN + 2];

    /* ":<length>=", written backwards: ngx_sprintf() costs on every key */

    p = len + sizeof(len);
    *--p = '=';
    n = value->len;

    do {
        *--p = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    *--p = ':';

    ngx_llm_cache_hash_write(h, (u_char *) name, ngx_strlen(name));
    ngx_llm_cache_hash_write(h, p, len + sizeof(len) - p);
    ngx_llm_cache_hash_write(h, value->data, value->len);
    ngx_llm_cache_hash_write(h, (u_char *) "\n", 1);
}


/*
 * An empty llm_cache_namespace (a tenant header the request lacks, a map
 * without a default) is no one's: such requests are not cached, rather
 * than all sharing one namespace.  Nor are requests with no credential
 * when no llm_cache_namespace is set.
 */

static ngx_int_t
ngx_llm_cache_hash_namespace(ngx_http_request_t *r,
    ngx_llm_cache_loc_conf_t *lcf, ngx_llm_cache_hash_t *h, ngx_str_t *error)
{
    ngx_str_t  value;

    static ngx_uint_t  noticed;

    if (lcf->namespace) {
        if (ngx_http_complex_value(r, lcf->namespace, &value) != NGX_OK) {
            return NGX_ERROR;
        }

        if (value.len == 0) {
            ngx_str_set(error, "llm_cache_namespace is empty");
            return NGX_DECLINED;
        }

        ngx_llm_cache_hash_field(h, "namespace", &value);
        return NGX_OK;
    }

    /* Gemini also takes the key as "?key=", hashed with the arguments */

    if (ngx_llm_cache_hash_headers(r, h, ngx_llm_cache_credential_headers)
        == 0
        && (ngx_http_arg(r, (u_char *) "key", 3, &value) != NGX_OK
            || value.len == 0))
    {
        if (!noticed) {
            noticed = 1;
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                          "llm_cache: requests without a credential header "
                          "are not cached; to cache them, set "
                          "\"llm_cache_namespace\" to a variable naming "
                          "the tenant, or to a fixed string to share their "
                          "answers on purpose");
        }

        ngx_str_set(error, "no credential and no llm_cache_namespace");
        return NGX_DECLINED;
    }

    (void) ngx_llm_cache_hash_headers(r, h, ngx_llm_cache_account_headers);

    return NGX_OK;
}


/*
 * each header of the list the request has, by name, in request order;
 * how many of them were not empty
 */

static ngx_uint_t
ngx_llm_cache_hash_headers(ngx_http_request_t *r, ngx_llm_cache_hash_t *h,
    ngx_str_t *names)
{
    ngx_str_t        *name;
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *header;

    n = 0;

    part = &r->headers_in.headers.part;
    header = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            header = part->elts;
            i = 0;
        }

        for (name = names; name->len; name++) {
            if (header[i].key.len == name->len
                && ngx_strncasecmp(header[i].key.data, name->data, name->len)
                   == 0)
            {
                ngx_llm_cache_hash_field(h, (char *) name->data,
                                         &header[i].value);

                if (header[i].value.len) {
                    n++;
                }
            }
        }
    }

    return n;
}
