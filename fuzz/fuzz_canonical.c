
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * libFuzzer harness for the request body canonicalizer
 * (ngx_llm_cache_json.c) and the cache key builder (ngx_llm_cache_key.c).
 * The whole input is a request body.
 *
 * Canonicalizer: the body parses to the same result in one piece and in
 * small pieces (the same tree; or declined, or invalid, though maybe for
 * another reason first seen).  The tree is written under eight
 * configurations, every normalize mode with one of four exclude sets;
 * under each, writing twice gives the same bytes, and those bytes parse
 * again and are written again unchanged, under the same configuration and
 * under the plain one (the canonical form is a fixed point).  Writing
 * does not change the tree.
 *
 * Key builder, with a request made up here (credential and version
 * headers): the body in one buffer, in many buffers, or partly in a file
 * (with a JSON content type, arguments and a namespace); the result
 * agrees with the parse above, the key is the same for one buffer and
 * many, and it is SHA-256 over what the key format says, with the
 * canonical body as written above.
 *
 * A broken invariant aborts; ASan, UBSan and LSan catch the rest.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sys/mman.h>
#include <openssl/evp.h>

#include "ngx_llm_cache_module.h"


#define FUZZ_NCONFS      8
#define FUZZ_NEXCLUDES   4
#define FUZZ_SMALL       4096         /* bytes parsed in small pieces */


#define fuzz_assert(expr)                                                     \
    if (!(expr)) {                                                            \
        fprintf(stderr, "fuzz_canonical.c:%d: invariant failed: %s\n",        \
                __LINE__, #expr);                                             \
        abort();                                                              \
    }


typedef struct {
    u_char                        *data;
    size_t                         len;
    size_t                         size;
} fuzz_buf_t;


typedef enum {
    FUZZ_BODY_ONE = 0,             /* one memory buffer */
    FUZZ_BODY_PIECES,              /* many small memory buffers */
    FUZZ_BODY_FILE                 /* a memory buffer, the rest in a file */
} fuzz_body_e;


typedef struct {
    u_char                        *data;
    size_t                         size;
    ngx_pool_t                    *pool;

    ngx_int_t                      rc;           /* of the parse */
    ngx_str_t                      error;
    ngx_llm_cache_json_t          *root;

    ngx_int_t                      conf_rc[FUZZ_NCONFS];
    ngx_str_t                      conf_error[FUZZ_NCONFS];
    ngx_llm_cache_json_t          *again[FUZZ_NCONFS];  /* output parsed */
} fuzz_input_t;


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ngx_int_t fuzz_parse(ngx_pool_t *pool, u_char *data, size_t size,
    ngx_uint_t pieces, ngx_llm_cache_json_t **root, ngx_str_t *error);
static size_t fuzz_piece(u_char *data, size_t size, size_t pos);
static ngx_int_t fuzz_canonical(ngx_pool_t *pool, ngx_llm_cache_json_t *root,
    ngx_llm_cache_json_conf_t *conf, fuzz_buf_t *out, ngx_str_t *error);
static void fuzz_write(void *data, u_char *p, size_t len);
static void fuzz_check_conf(fuzz_input_t *in, ngx_uint_t i);
static void fuzz_check_key(fuzz_input_t *in, fuzz_body_e body,
    ngx_str_t *key);
static ngx_http_request_t *fuzz_request(fuzz_input_t *in, fuzz_body_e body,
    ngx_llm_cache_loc_conf_t *lcf);
static u_char *fuzz_short_id(u_char *k, u_char *data, size_t len);
static void fuzz_expected_key(ngx_llm_cache_loc_conf_t *lcf,
    ngx_str_t *fields, ngx_str_t *pass, ngx_str_t *uri, ngx_str_t *args,
    ngx_str_t *model, fuzz_buf_t *body, u_char *key);
static ngx_uint_t fuzz_same(u_char *a, size_t alen, u_char *b, size_t blen);


/* conf->exclude NULL, the module's default, nested paths, an empty array */

static char  *fuzz_exclude_paths[FUZZ_NEXCLUDES][8] = {
    { NULL },
    { "user", "metadata", NULL },
    { "user", "metadata", "messages.content", "tools.function.parameters",
      "a.b.c", "model", "content", NULL },
    { NULL }
};

static char  *fuzz_bad_paths[] = {
    "", ".", "a.", ".a", "a..b", NULL
};


static ngx_log_t                   fuzz_log;
static ngx_cycle_t                 fuzz_cycle;  /* its pool: the key memo's */
static ngx_connection_t            fuzz_connection;
static ngx_file_t                  fuzz_file;

/* normalize mode i, exclude set i % FUZZ_NEXCLUDES: 0 plain, 1 default */
static ngx_llm_cache_json_conf_t   fuzz_confs[FUZZ_NCONFS];

static ngx_table_elt_t             fuzz_header[6];
static ngx_table_elt_t             fuzz_content_type;
static ngx_list_t                  fuzz_headers;
static ngx_list_part_t             fuzz_headers_part2;

/* key by credential headers, with the default configuration */
static ngx_llm_cache_loc_conf_t    fuzz_lcf;
static ngx_str_t                   fuzz_fields =
    ngx_string("Authorization:14=Bearer sk-fuzz\napi-key:2=k2\n"
               "OpenAI-Organization:5=org-f\n");
static ngx_str_t                   fuzz_uri =
    ngx_string("/v1/chat/completions");

/* key by llm_cache_namespace, everything normalized, nested excludes */
static ngx_llm_cache_loc_conf_t    fuzz_lcf_ns;
static ngx_http_complex_value_t    fuzz_namespace;
static ngx_str_t                   fuzz_fields_ns =
    ngx_string("namespace:8=tenant-a\n");
static ngx_str_t                   fuzz_uri_ns = ngx_string("/v1/messages");
static ngx_str_t                   fuzz_args_ns =
    ngx_string("api-version=2024-02-01");

/* the provider location, before the path */
static ngx_str_t                   fuzz_pass =
    ngx_string("pass:5=/_llm\n");
static ngx_str_t                   fuzz_pass_ns =
    ngx_string("pass:6=@llm_a\n");

/* version headers, for both: after the path and arguments */
static ngx_str_t                   fuzz_versions =
    ngx_string("anthropic-version:10=2023-06-01\n");

static fuzz_buf_t                  fuzz_out[FUZZ_NCONFS];
static fuzz_buf_t                  fuzz_tmp;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char         **p;
    ngx_int_t      rc;
    ngx_str_t      path;
    ngx_uint_t     i;
    ngx_pool_t    *pool;
    ngx_array_t   *exclude[FUZZ_NEXCLUDES], *bad;
    u_char         deep[2 * (NGX_LLM_CACHE_JSON_MAX_DEPTH + 1)];

    ngx_pagesize = getpagesize();

    fuzz_connection.log = &fuzz_log;

    fuzz_file.fd = memfd_create("fuzz_canonical", 0);
    fuzz_assert(fuzz_file.fd != -1);
    ngx_str_set(&fuzz_file.name, "fuzz_canonical body");
    fuzz_file.log = &fuzz_log;

    pool = ngx_create_pool(4096, &fuzz_log);
    fuzz_assert(pool != NULL);

    for (i = 0; i < FUZZ_NEXCLUDES; i++) {
        exclude[i] = NULL;

        if (i == 0) {
            continue;
        }

        exclude[i] = ngx_array_create(pool, 2, sizeof(ngx_array_t));
        fuzz_assert(exclude[i] != NULL);

        for (p = fuzz_exclude_paths[i]; *p; p++) {
            path.data = (u_char *) *p;
            path.len = ngx_strlen(*p);

            rc = ngx_llm_cache_json_exclude_add(pool, exclude[i], &path);
            fuzz_assert(rc == NGX_OK);
        }
    }

    for (i = 0; i < FUZZ_NCONFS; i++) {
        fuzz_confs[i].normalize = i;
        fuzz_confs[i].exclude = exclude[i % FUZZ_NEXCLUDES];
    }

    /* what the directive rejects: empty segments and too many of them */

    for (p = fuzz_bad_paths; *p; p++) {
        bad = ngx_array_create(pool, 2, sizeof(ngx_array_t));
        fuzz_assert(bad != NULL);

        path.data = (u_char *) *p;
        path.len = ngx_strlen(*p);

        rc = ngx_llm_cache_json_exclude_add(pool, bad, &path);
        fuzz_assert(rc == NGX_DECLINED);
    }

    for (i = 0; i < NGX_LLM_CACHE_JSON_MAX_DEPTH + 1; i++) {
        deep[2 * i] = 'a';
        deep[2 * i + 1] = '.';
    }

    bad = ngx_array_create(pool, 2, sizeof(ngx_array_t));
    fuzz_assert(bad != NULL);

    path.data = deep;
    path.len = 2 * NGX_LLM_CACHE_JSON_MAX_DEPTH - 1;
    rc = ngx_llm_cache_json_exclude_add(pool, bad, &path);
    fuzz_assert(rc == NGX_OK);

    path.len = 2 * NGX_LLM_CACHE_JSON_MAX_DEPTH + 1;
    rc = ngx_llm_cache_json_exclude_add(pool, bad, &path);
    fuzz_assert(rc == NGX_DECLINED);

    /* credential headers in two list parts, and others */

    ngx_str_set(&fuzz_header[0].key, "authorization");
    ngx_str_set(&fuzz_header[0].value, "Bearer sk-fuzz");
    ngx_str_set(&fuzz_header[1].key, "X-Request-Id");
    ngx_str_set(&fuzz_header[1].value, "r-1");
    ngx_str_set(&fuzz_header[2].key, "Content-Encoding");
    ngx_str_set(&fuzz_header[2].value, "Identity");
    ngx_str_set(&fuzz_header[3].key, "API-KEY");
    ngx_str_set(&fuzz_header[3].value, "k2");
    ngx_str_set(&fuzz_header[4].key, "Anthropic-Version");
    ngx_str_set(&fuzz_header[4].value, "2023-06-01");
    ngx_str_set(&fuzz_header[5].key, "openai-organization");
    ngx_str_set(&fuzz_header[5].value, "org-f");

    fuzz_headers.part.elts = &fuzz_header[0];
    fuzz_headers.part.nelts = 3;
    fuzz_headers.part.next = &fuzz_headers_part2;
    fuzz_headers.last = &fuzz_headers_part2;
    fuzz_headers.size = sizeof(ngx_table_elt_t);
    fuzz_headers.nalloc = 3;
    fuzz_headers.pool = pool;

    fuzz_headers_part2.elts = &fuzz_header[3];
    fuzz_headers_part2.nelts = 3;

    ngx_str_set(&fuzz_lcf.key_prefix, "llm:");
    ngx_str_set(&fuzz_lcf.pass, "/_llm");
    fuzz_lcf.json = fuzz_confs[1];

    ngx_str_set(&fuzz_content_type.key, "Content-Type");
    ngx_str_set(&fuzz_content_type.value,
                " application/vnd.fuzz+JSON; charset=utf-8");

    ngx_str_set(&fuzz_namespace.value, "tenant-a");
    ngx_str_set(&fuzz_lcf_ns.key_prefix, "fuzz:");
    ngx_str_set(&fuzz_lcf_ns.pass, "@llm_a");
    fuzz_lcf_ns.namespace = &fuzz_namespace;
    fuzz_lcf_ns.json = fuzz_confs[FUZZ_NCONFS - 1];

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssize_t                n;
    ngx_int_t              rc;
    ngx_str_t              error, key[3];
    ngx_uint_t             i;
    fuzz_input_t           in;
    ngx_llm_cache_json_t  *root;

    ngx_memzero(&in, sizeof(fuzz_input_t));

    in.data = (u_char *) data;
    in.size = size;

    /* no room for small allocations: each is its own malloc() for ASan */

    in.pool = ngx_create_pool(sizeof(ngx_pool_t), &fuzz_log);
    fuzz_assert(in.pool != NULL);

    in.rc = fuzz_parse(in.pool, in.data, size, 0, &in.root, &in.error);

    fuzz_assert(in.rc == NGX_OK || in.rc == NGX_DECLINED
                || in.rc == NGX_LLM_CACHE_JSON_INVALID);

    /*
     * in small pieces, as a body arrives: the same result; with more than
     * one reason to decline, which one is found first may differ
     */

    rc = fuzz_parse(in.pool, in.data, size, 1, &root, &error);

    fuzz_assert(rc == in.rc);

    if (in.rc == NGX_OK) {
        fuzz_assert(in.root != NULL && root != NULL);

        for (i = 0; i < FUZZ_NCONFS; i++) {
            fuzz_check_conf(&in, i);
        }

        /* the tree parsed in pieces is the same tree */

        rc = fuzz_canonical(in.pool, root, &fuzz_confs[0], &fuzz_tmp,
                            &error);
        fuzz_assert(rc == in.conf_rc[0]);

        if (rc == NGX_OK) {
            fuzz_assert(fuzz_same(fuzz_tmp.data, fuzz_tmp.len,
                                  fuzz_out[0].data, fuzz_out[0].len));
        }

        /* writing under every configuration left the tree as it was */

        rc = fuzz_canonical(in.pool, in.root, &fuzz_confs[0], &fuzz_tmp,
                            &error);
        fuzz_assert(rc == in.conf_rc[0]);

        if (rc == NGX_OK) {
            fuzz_assert(fuzz_same(fuzz_tmp.data, fuzz_tmp.len,
                                  fuzz_out[0].data, fuzz_out[0].len));

            fuzz_assert(ngx_llm_cache_json_is_object(in.root)
                        == (fuzz_out[0].data[0] == '{'));
        }
    }

    fuzz_assert(ftruncate(fuzz_file.fd, 0) == 0);

    if (size) {
        n = pwrite(fuzz_file.fd, data, size, 0);
        fuzz_assert(n == (ssize_t) size);
    }

    fuzz_check_key(&in, FUZZ_BODY_ONE, &key[0]);
    fuzz_check_key(&in, FUZZ_BODY_PIECES, &key[1]);
    fuzz_check_key(&in, FUZZ_BODY_FILE, &key[2]);

    fuzz_assert(fuzz_same(key[0].data, key[0].len, key[1].data, key[1].len));

    ngx_destroy_pool(in.pool);

    return 0;
}


static ngx_int_t
fuzz_parse(ngx_pool_t *pool, u_char *data, size_t size, ngx_uint_t pieces,
    ngx_llm_cache_json_t **root, ngx_str_t *error)
{
    size_t                        n, pos;
    ngx_int_t                     rc, rc2;
    ngx_llm_cache_json_parser_t  *parser;

    *root = NULL;
    ngx_str_null(error);

    parser = ngx_llm_cache_json_parser_create(pool);
    fuzz_assert(parser != NULL);

    for (pos = 0; pos < size; pos += n) {
        n = pieces ? fuzz_piece(data, size, pos) : size;

        rc = ngx_llm_cache_json_parse(parser, data + pos, n);

        if (rc != NGX_OK) {
            /* declined bodies are parsed to the end */
            rc2 = ngx_llm_cache_json_parse_error(parser, error);
            fuzz_assert(rc == rc2);
            fuzz_assert(rc == NGX_LLM_CACHE_JSON_INVALID);
            fuzz_assert(error->len != 0);
            return rc;
        }
    }

    rc = ngx_llm_cache_json_parse_end(parser, root, error);

    if (rc == NGX_OK) {
        fuzz_assert(*root != NULL);

    } else {
        fuzz_assert(error->len != 0);
    }

    return rc;
}


/* 1 to 16 bytes, as the body says, then bigger pieces */

static size_t
fuzz_piece(u_char *data, size_t size, size_t pos)
{
    size_t  n;

    n = (pos < FUZZ_SMALL) ? 1 + (data[pos] & 0x0f) : FUZZ_SMALL;

    return ngx_min(n, size - pos);
}


static ngx_int_t
fuzz_canonical(ngx_pool_t *pool, ngx_llm_cache_json_t *root,
    ngx_llm_cache_json_conf_t *conf, fuzz_buf_t *out, ngx_str_t *error)
{
    ngx_int_t  rc;

    out->len = 0;
    ngx_str_null(error);

    rc = ngx_llm_cache_json_canonicalize(pool, root, conf, fuzz_write, out,
                                         error);

    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);
    fuzz_assert(rc == NGX_OK || error->len != 0);

    return rc;
}


static void
fuzz_write(void *data, u_char *p, size_t len)
{
    fuzz_buf_t  *b = data;

    size_t   size;
    u_char  *n;

    if (len == 0) {
        return;
    }

    if (b->len + len > b->size) {
        size = ngx_max(2 * b->size, b->len + len);
        size = ngx_max(size, 1024);

        n = realloc(b->data, size);
        fuzz_assert(n != NULL);

        b->data = n;
        b->size = size;
    }

    ngx_memcpy(b->data + b->len, p, len);
    b->len += len;
}


static void
fuzz_check_conf(fuzz_input_t *in, ngx_uint_t i)
{
    ngx_int_t                   rc;
    ngx_str_t                   error;
    ngx_uint_t                  j;
    fuzz_buf_t                 *out;
    ngx_llm_cache_json_conf_t  *conf;

    conf = &fuzz_confs[i];
    out = &fuzz_out[i];

    rc = fuzz_canonical(in->pool, in->root, conf, out, &in->conf_error[i]);
    in->conf_rc[i] = rc;

    /* deterministic */

    fuzz_assert(fuzz_canonical(in->pool, in->root, conf, &fuzz_tmp, &error)
                == rc);

    if (rc != NGX_OK) {
        fuzz_assert(fuzz_same(error.data, error.len, in->conf_error[i].data,
                              in->conf_error[i].len));
        return;
    }

    fuzz_assert(fuzz_same(out->data, out->len, fuzz_tmp.data, fuzz_tmp.len));

    /* valid JSON (parsed once for all configurations that wrote it) */

    for (j = 0; j < i; j++) {
        if (in->conf_rc[j] == NGX_OK
            && fuzz_same(out->data, out->len,
                         fuzz_out[j].data, fuzz_out[j].len))
        {
            in->again[i] = in->again[j];
            break;
        }
    }

    if (j == i) {
        rc = fuzz_parse(in->pool, out->data, out->len, 0, &in->again[i],
                        &error);

        if (rc != NGX_OK) {
            fprintf(stderr, "canonical form does not parse: %.*s\n",
                    (int) error.len, error.data);
        }

        fuzz_assert(rc == NGX_OK);

        /* already canonical: the plain configuration writes it unchanged */

        rc = fuzz_canonical(in->pool, in->again[i], &fuzz_confs[0],
                            &fuzz_tmp, &error);
        fuzz_assert(rc == NGX_OK);
        fuzz_assert(fuzz_same(out->data, out->len,
                              fuzz_tmp.data, fuzz_tmp.len));
    }

    /* idempotent: this configuration writes it unchanged too */

    rc = fuzz_canonical(in->pool, in->again[i], conf, &fuzz_tmp, &error);
    fuzz_assert(rc == NGX_OK);
    fuzz_assert(fuzz_same(out->data, out->len, fuzz_tmp.data, fuzz_tmp.len));
}


static void
fuzz_check_key(fuzz_input_t *in, fuzz_body_e body, ngx_str_t *key)
{
    ngx_int_t                  rc, expect;
    ngx_str_t                  error, *reason, *fields, *pass, *uri, *args;
    ngx_str_t                  model;
    ngx_uint_t                 conf;
    ngx_http_request_t        *r;
    ngx_llm_cache_ctx_t        ctx, again;
    ngx_llm_cache_loc_conf_t  *lcf;
    u_char                     expected[256 + 2 * EVP_MAX_MD_SIZE];

    ngx_str_null(key);

    if (body == FUZZ_BODY_FILE) {
        lcf = &fuzz_lcf_ns;
        conf = FUZZ_NCONFS - 1;
        fields = &fuzz_fields_ns;
        pass = &fuzz_pass_ns;
        uri = &fuzz_uri_ns;

    } else {
        lcf = &fuzz_lcf;
        conf = 1;
        fields = &fuzz_fields;
        pass = &fuzz_pass;
        uri = &fuzz_uri;
    }

    r = fuzz_request(in, body, lcf);
    r->uri = *uri;

    if (body == FUZZ_BODY_FILE) {
        args = &fuzz_args_ns;
        r->args = *args;
        r->headers_in.content_type = &fuzz_content_type;

    } else {
        args = NULL;
    }

    /* a key memo of its own for each call (it lives in the cycle's pool) */

    fuzz_cycle.pool = ngx_create_pool(4096, &fuzz_log);
    fuzz_assert(fuzz_cycle.pool != NULL);
    ngx_cycle = &fuzz_cycle;

    ngx_memzero(&ctx, sizeof(ngx_llm_cache_ctx_t));

    rc = ngx_llm_cache_build_key(r, &ctx, &error);

    /* what the parse and the canonical writer said */

    reason = NULL;

    if (in->rc != NGX_OK) {
        expect = in->rc;

        if (body == FUZZ_BODY_ONE) {
            reason = &in->error;
        }

    } else if (!ngx_llm_cache_json_is_object(in->root)) {
        expect = NGX_DECLINED;

    } else {
        expect = in->conf_rc[conf];
        reason = &in->conf_error[conf];
    }

    fuzz_assert(rc == expect);

    if (rc == NGX_OK) {
        /* the same bytes again: the key from the memo, when kept */

        ngx_memzero(&again, sizeof(ngx_llm_cache_ctx_t));

        fuzz_assert(ngx_llm_cache_build_key(r, &again, &error) == NGX_OK);
        fuzz_assert(fuzz_same(again.key.data, again.key.len,
                              ctx.key.data, ctx.key.len));
        fuzz_assert(fuzz_same(again.model.data, again.model.len,
                              ctx.model.data, ctx.model.len));
    }

    ngx_destroy_pool(fuzz_cycle.pool);
    ngx_cycle = NULL;

    if (rc != NGX_OK) {
        fuzz_assert(error.len != 0);

        if (reason) {
            fuzz_assert(fuzz_same(error.data, error.len,
                                  reason->data, reason->len));
        }

        return;
    }

    if (ngx_llm_cache_json_get_string(in->root, "model", &model) == NGX_OK) {
        fuzz_assert(fuzz_same(ctx.model.data, ctx.model.len,
                              model.data, model.len));

    } else {
        fuzz_assert(ctx.model.len == 0);
        ngx_str_null(&model);
    }

    fuzz_expected_key(lcf, fields, pass, uri, args, &model, &fuzz_out[conf],
                      expected);

    fuzz_assert(fuzz_same(ctx.key.data, ctx.key.len,
                          expected, ngx_strlen(expected)));

    *key = ctx.key;
}


/* as much of a request as the key builder looks at */

static ngx_http_request_t *
fuzz_request(fuzz_input_t *in, fuzz_body_e body,
    ngx_llm_cache_loc_conf_t *lcf)
{
    size_t               n, pos, mem;
    void               **loc_conf;
    ngx_buf_t           *b;
    ngx_chain_t         *cl, **ll;
    ngx_http_request_t  *r;

    r = ngx_pcalloc(in->pool, sizeof(ngx_http_request_t));
    fuzz_assert(r != NULL);

    r->request_body = ngx_pcalloc(in->pool, sizeof(ngx_http_request_body_t));
    fuzz_assert(r->request_body != NULL);

    loc_conf = ngx_palloc(in->pool, sizeof(void *));
    fuzz_assert(loc_conf != NULL);

    /* the stub ngx_llm_cache_module has ctx_index 0 */
    loc_conf[0] = lcf;

    r->pool = in->pool;
    r->connection = &fuzz_connection;
    r->loc_conf = loc_conf;
    r->headers_in.headers = fuzz_headers;

    /* the file part starts where the first byte says */
    mem = in->size ? ngx_min(in->size, in->data[0]) : 0;

    ll = &r->request_body->bufs;

    for (pos = 0; pos < in->size; pos += n) {
        b = ngx_calloc_buf(in->pool);
        fuzz_assert(b != NULL);

        if (body == FUZZ_BODY_FILE && pos >= mem) {
            n = in->size - pos;

            b->in_file = 1;
            b->file = &fuzz_file;
            b->file_pos = pos;
            b->file_last = in->size;

        } else {
            if (body == FUZZ_BODY_PIECES) {
                n = fuzz_piece(in->data, in->size, pos);

            } else if (body == FUZZ_BODY_FILE) {
                n = mem - pos;

            } else {
                n = in->size - pos;
            }

            b->pos = in->data + pos;
            b->last = b->pos + n;
            b->memory = 1;
        }

        cl = ngx_pcalloc(in->pool, sizeof(ngx_chain_t));
        fuzz_assert(cl != NULL);

        cl->buf = b;
        *ll = cl;
        ll = &cl->next;
    }

    return r;
}


/*
 * the key format, written out independently of ngx_llm_cache_key.c:
 * prefix "v1:" hex(SHA-256("llm_cache v1\n" fields "pass:" len "=" pass
 * "\n" "path:" len "=" uri "\n" ["args:" len "=" args "\n"] versions
 * "body=" canonical))
 */

/* 16 hex digits of SHA-256, the ids of the key's v2 layout */

static u_char *
fuzz_short_id(u_char *k, u_char *data, size_t len)
{
    unsigned int  i, n;
    u_char        digest[EVP_MAX_MD_SIZE];

    fuzz_assert(EVP_Digest(data, len, digest, &n, EVP_sha256(), NULL) == 1);

    for (i = 0; i < 8; i++) {
        k += snprintf((char *) k, 3, "%02x", digest[i]);
    }

    return k;
}


static void
fuzz_expected_key(ngx_llm_cache_loc_conf_t *lcf, ngx_str_t *fields,
    ngx_str_t *pass, ngx_str_t *uri, ngx_str_t *args, ngx_str_t *model,
    fuzz_buf_t *body, u_char *key)
{
    int            len;
    size_t         size;
    u_char        *stream, *p, *k, *ns;
    unsigned int   i, n;
    u_char         digest[EVP_MAX_MD_SIZE];

    size = 128 + fields->len + pass->len + uri->len
           + (args ? args->len : 0)
           + fuzz_versions.len + body->len;

    stream = malloc(size);
    fuzz_assert(stream != NULL);

    p = stream;
    p = ngx_cpymem(p, "llm_cache " NGX_LLM_CACHE_FORMAT_VERSION "\n",
                   sizeof("llm_cache " NGX_LLM_CACHE_FORMAT_VERSION "\n")
                   - 1);
    p = ngx_cpymem(p, fields->data, fields->len);
    p = ngx_cpymem(p, pass->data, pass->len);

    len = snprintf((char *) p, 32, "path:%zu=", uri->len);
    fuzz_assert(len > 0 && len < 32);
    p += len;

    p = ngx_cpymem(p, uri->data, uri->len);
    *p++ = '\n';

    if (args) {
        len = snprintf((char *) p, 32, "args:%zu=", args->len);
        fuzz_assert(len > 0 && len < 32);
        p += len;

        p = ngx_cpymem(p, args->data, args->len);
        *p++ = '\n';
    }

    p = ngx_cpymem(p, fuzz_versions.data, fuzz_versions.len);
    p = ngx_cpymem(p, "body=", 5);

    if (body->len) {
        p = ngx_cpymem(p, body->data, body->len);
    }

    fuzz_assert(EVP_Digest(stream, p - stream, digest, &n, EVP_sha256(),
                           NULL)
                == 1);
    fuzz_assert(n == 32);

    free(stream);

    /* <prefix>v2:<namespace id>:<model id or ->:<hash> */

    ns = malloc(64 + fields->len + pass->len);
    fuzz_assert(ns != NULL);

    p = ngx_cpymem(ns, "llm_cache namespace\n",
                   sizeof("llm_cache namespace\n") - 1);
    p = ngx_cpymem(p, fields->data, fields->len);
    p = ngx_cpymem(p, pass->data, pass->len);

    k = ngx_cpymem(key, lcf->key_prefix.data, lcf->key_prefix.len);
    k = ngx_cpymem(k, NGX_LLM_CACHE_FORMAT_VERSION ":",
                   sizeof(NGX_LLM_CACHE_FORMAT_VERSION));
    k = fuzz_short_id(k, ns, p - ns);
    *k++ = ':';

    free(ns);

    if (model->len) {
        k = fuzz_short_id(k, model->data, model->len);

    } else {
        *k++ = '-';
    }

    *k++ = ':';

    for (i = 0; i < n; i++) {
        k += snprintf((char *) k, 3, "%02x", digest[i]);
    }
}


static ngx_uint_t
fuzz_same(u_char *a, size_t alen, u_char *b, size_t blen)
{
    return alen == blen && (alen == 0 || ngx_memcmp(a, b, alen) == 0);
}
