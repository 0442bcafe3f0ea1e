
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * Purge, for a request that llm_cache_purge marks (as proxy_cache_purge):
 * the LLM-Cache-Purge header says what goes.  "entry" (the default): the
 * entry the same request would hit.  "namespace", "model" (or
 * "model=<name>") and "all": every key of a SCAN pattern on the v2 key
 * layout <prefix>v2:<namespace id>:<model id>:<hash>, by steps of one
 * EVAL each (SCAN ... COUNT 500 and UNLINK of what it found), so neither
 * Redis nor the worker is held for long; never KEYS or FLUSHDB.  On Redis
 * Cluster the steps go through every master in turn (SCAN sees one node's
 * keys) and the entry's EVAL goes to its key's node.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_llm_cache_module.h"


#define NGX_LLM_CACHE_PURGE_COUNT  "500"


typedef struct {
    ngx_http_request_t   *request;
    ngx_llm_cache_ctx_t  *ctx;
    ngx_str_t             scope;
    ngx_str_t             pattern;
    ngx_uint_t            purged;
    ngx_uint_t            steps;
    ngx_uint_t            master;    /* Redis Cluster: the one scanned */
    u_char                cursor[NGX_INT64_LEN + 1];
    size_t                cursor_len;
} ngx_llm_cache_purge_t;


static ngx_int_t ngx_llm_cache_purge_pattern(ngx_http_request_t *r,
    ngx_llm_cache_purge_t *p, ngx_str_t *ns, ngx_str_t *model);
static ngx_int_t ngx_llm_cache_purge_step(ngx_llm_cache_purge_t *p);
static void ngx_llm_cache_purge_step_done(void *data, ngx_int_t rc,
    ngx_str_t *value);
static void ngx_llm_cache_purge_entry_done(void *data, ngx_int_t rc,
    void *reply);
static ngx_int_t ngx_llm_cache_purge_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *scope, ngx_uint_t purged,
    ngx_str_t *error);


/* the key declared, so that a cluster sends it to the key's node */

static ngx_str_t  ngx_llm_cache_purge_entry_script = ngx_string(
    "return '0 ' .. redis.call('UNLINK', KEYS[1])");

/* a step: the next cursor and how many keys went, as one string */

static ngx_str_t  ngx_llm_cache_purge_scan_script = ngx_string(
    "if redis.replicate_commands then redis.replicate_commands() end "
    "local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], "
                         "'COUNT', ARGV[3]) "
    "local k, n = r[2], 0 "
    "for i = 1, #k, 500 do "
        "n = n + redis.call('UNLINK', unpack(k, i, math.min(i + 499, #k))) "
    "end "
    "return r[1] .. ' ' .. n");

/*
 * On Redis Cluster a script's command may not touch keys of two slots
 * ("non local key"), so one UNLINK a key there
 */

static ngx_str_t  ngx_llm_cache_purge_cluster_script = ngx_string(
    "if redis.replicate_commands then redis.replicate_commands() end "
    "local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], "
                         "'COUNT', ARGV[3]) "
    "local k, n = r[2], 0 "
    "for i = 1, #k do n = n + redis.call('UNLINK', k[i]) end "
    "return r[1] .. ' ' .. n");


/*
 * NGX_DONE when the purge goes on (the request is finalized later),
 * otherwise an HTTP status to finalize with
 */

ngx_int_t
ngx_llm_cache_purge(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx)
{
    size_t                     argvlen[4];
    ngx_str_t                  scope, ns, model, error, arg;
    ngx_int_t                  rc;
    const char                *argv[4];
    ngx_uint_t                 i;
    ngx_list_part_t           *part;
    ngx_table_elt_t           *h;
    ngx_llm_cache_purge_t     *p;
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    ngx_str_set(&scope, "entry");
    ngx_str_null(&model);

    if (lcf->redis == NULL) {
        ngx_str_set(&error, "no llm_cache_redis here");
        return ngx_llm_cache_purge_send(r, NGX_HTTP_BAD_GATEWAY, &scope, 0,
                                        &error);
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

        if (ngx_llm_cache_header_is(&h[i].key, "LLM-Cache-Purge")) {
            scope = h[i].value;
        }
    }

    if (scope.len > 6 && ngx_strncasecmp(scope.data, (u_char *) "model=", 6)
                         == 0)
    {
        model.data = scope.data + 6;
        model.len = scope.len - 6;
        ngx_str_set(&scope, "model");
    }

    p = ngx_pcalloc(r->pool, sizeof(ngx_llm_cache_purge_t));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p->request = r;
    p->ctx = ctx;
    p->cursor[0] = '0';
    p->cursor_len = 1;

    ngx_str_null(&ns);
    ngx_str_null(&error);

    if (ngx_llm_cache_header_is(&scope, "entry")
        || (ngx_llm_cache_header_is(&scope, "model") && model.len == 0))
    {
        /* the key, and the model, exactly as the same request's */

        if (r->request_body == NULL) {
            ngx_str_set(&error, "the request has no body");
            rc = NGX_DECLINED;

        } else {
            rc = ngx_llm_cache_build_key(r, ctx, &error);
        }

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc != NGX_OK) {
            return ngx_llm_cache_purge_send(r, NGX_HTTP_BAD_REQUEST, &scope,
                                            0, &error);
        }

        model = ctx->model;

        if (ngx_llm_cache_header_is(&scope, "entry")) {
            ngx_str_set(&p->scope, "entry");
            p->pattern = ctx->key;

            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "llm_cache: purge of \"%V\"", &ctx->key);

            argv[0] = "EVAL";
            argvlen[0] = 4;
            argv[1] = (const char *) ngx_llm_cache_purge_entry_script.data;
            argvlen[1] = ngx_llm_cache_purge_entry_script.len;
            argv[2] = "1";
            argvlen[2] = 1;
            argv[3] = (const char *) ctx->key.data;
            argvlen[3] = ctx->key.len;

            ctx->op = ngx_llm_cache_redis_command(lcf->redis, "purge failed",
                          4, argv, argvlen, lcf->redis_timeout,
                          ngx_llm_cache_purge_entry_done, p,
                          r->connection->log);
            if (ctx->op == NULL) {
                ngx_str_set(&error, "redis is not available");
                return ngx_llm_cache_purge_send(r, NGX_HTTP_BAD_GATEWAY,
                                                &p->scope, 0, &error);
            }

            return NGX_DONE;
        }

        if (model.len == 0) {
            ngx_str_set(&error, "the request names no model");
            return ngx_llm_cache_purge_send(r, NGX_HTTP_BAD_REQUEST, &scope,
                                            0, &error);
        }
    }

    if (ngx_llm_cache_header_is(&scope, "namespace")) {
        ngx_str_set(&p->scope, "namespace");

        rc = ngx_llm_cache_namespace_id(r, &ns, &error);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc != NGX_OK) {
            return ngx_llm_cache_purge_send(r, NGX_HTTP_BAD_REQUEST,
                                            &p->scope, 0, &error);
        }

    } else if (ngx_llm_cache_header_is(&scope, "model")) {
        ngx_str_set(&p->scope, "model");

    } else if (ngx_llm_cache_header_is(&scope, "all")) {
        ngx_str_set(&p->scope, "all");

    } else {
        ngx_str_set(&error, "LLM-Cache-Purge is not one of entry, "
                    "namespace, model, model=<name>, all");
        ngx_str_set(&arg, "?");
        return ngx_llm_cache_purge_send(r, NGX_HTTP_BAD_REQUEST, &arg, 0,
                                        &error);
    }

    if (ngx_llm_cache_purge_pattern(r, p, &ns, &model) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "llm_cache: purge of %V \"%V\"", &p->scope, &p->pattern);

    rc = ngx_llm_cache_purge_step(p);

    if (rc != NGX_DONE) {
        ngx_str_set(&error, "redis is not available");
        return ngx_llm_cache_purge_send(r, NGX_HTTP_BAD_GATEWAY, &p->scope,
                                        0, &error);
    }

    return NGX_DONE;
}


/*
 * <prefix>* for all, <prefix>v2:<ns>:* for a namespace and
 * <prefix>v2:*:<model id>:* for a model; the glob characters of the
 * prefix are escaped, the ids are hex
 */

static ngx_int_t
ngx_llm_cache_purge_pattern(ngx_http_request_t *r, ngx_llm_cache_purge_t *p,
    ngx_str_t *ns, ngx_str_t *model)
{
    u_char                    *d, *s, *end;
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    p->pattern.data = ngx_pnalloc(r->pool, 2 * lcf->key_prefix.len
                                  + sizeof(NGX_LLM_CACHE_FORMAT_VERSION)
                                  + ns->len + NGX_LLM_CACHE_ID_LEN + 8);
    if (p->pattern.data == NULL) {
        return NGX_ERROR;
    }

    d = p->pattern.data;
    end = lcf->key_prefix.data + lcf->key_prefix.len;

    for (s = lcf->key_prefix.data; s < end; s++) {
        if (*s == '*' || *s == '?' || *s == '[' || *s == ']' || *s == '\\') {
            *d++ = '\\';
        }

        *d++ = *s;
    }

    if (p->scope.data[0] != 'a') {
        d = ngx_cpymem(d, NGX_LLM_CACHE_FORMAT_VERSION ":",
                       sizeof(NGX_LLM_CACHE_FORMAT_VERSION));

        if (ns->len) {
            d = ngx_cpymem(d, ns->data, ns->len);
            *d++ = ':';

        } else {
            *d++ = '*';
            *d++ = ':';
            d = ngx_llm_cache_model_id(d, model);
            *d++ = ':';
        }
    }

    *d++ = '*';

    p->pattern.len = d - p->pattern.data;

    return NGX_OK;
}


static ngx_int_t
ngx_llm_cache_purge_step(ngx_llm_cache_purge_t *p)
{
    ngx_str_t                      args[3], *script;
    ngx_http_request_t            *r;
    ngx_llm_cache_loc_conf_t      *lcf;
    ngx_llm_cache_redis_server_t  *s;

    r = p->request;
    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    s = ngx_llm_cache_redis_master(lcf->redis, p->master);
    if (s == NULL) {
        return NGX_ERROR;
    }

    args[0].data = p->cursor;
    args[0].len = p->cursor_len;
    args[1] = p->pattern;
    ngx_str_set(&args[2], NGX_LLM_CACHE_PURGE_COUNT);

    script = ngx_llm_cache_redis_is_cluster(lcf->redis)
             ? &ngx_llm_cache_purge_cluster_script
             : &ngx_llm_cache_purge_scan_script;

    p->ctx->op = ngx_llm_cache_redis_eval(s, script, 3, args,
                                          lcf->redis_timeout,
                                          ngx_llm_cache_purge_step_done, p,
                                          r->connection->log);

    return p->ctx->op ? NGX_DONE : NGX_ERROR;
}


/* called from the Redis connection's event handlers: "cursor count" */

static void
ngx_llm_cache_purge_step_done(void *data, ngx_int_t rc, ngx_str_t *value)
{
    ngx_llm_cache_purge_t  *p = data;

    u_char                    *sp, *last;
    ngx_int_t                  n;
    ngx_str_t                  error;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_llm_cache_loc_conf_t  *lcf;

    r = p->request;
    c = r->connection;
    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    p->ctx->op = NULL;

    sp = NULL;
    last = NULL;

    if (rc == NGX_OK) {
        last = value->data + value->len;
        sp = ngx_strlchr(value->data, last, ' ');
    }

    if (sp == NULL
        || sp == value->data
        || (size_t) (sp - value->data) > NGX_INT64_LEN
        || (n = ngx_atoi(sp + 1, last - sp - 1)) == NGX_ERROR)
    {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "llm_cache: purge of %V \"%V\" failed after %ui "
                      "keys", &p->scope, &p->pattern, p->purged);
        ngx_str_set(&error, "redis failed");
        rc = ngx_llm_cache_purge_send(r, NGX_HTTP_BAD_GATEWAY, &p->scope,
                                      p->purged, &error);
        goto done;
    }

    p->purged += n;
    p->steps++;

    if (sp - value->data == 1 && value->data[0] == '0'
        && p->scope.data[0] != 'e'
        && ngx_llm_cache_redis_master(lcf->redis, p->master + 1) != NULL)
    {
        /* Redis Cluster: this master is done, the next one from 0 */
        p->master++;
        p->cursor_len = 1;

        if (ngx_llm_cache_purge_step(p) == NGX_DONE) {
            goto posted;
        }

        ngx_str_set(&error, "redis is not available");
        rc = ngx_llm_cache_purge_send(r, NGX_HTTP_BAD_GATEWAY, &p->scope,
                                      p->purged, &error);
        goto done;
    }

    if (sp - value->data == 1 && value->data[0] == '0') {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "llm_cache: purge of %V \"%V\": %ui keys in %ui steps",
                      &p->scope, &p->pattern, p->purged, p->steps);

        rc = ngx_llm_cache_purge_send(r, (p->purged == 0
                                          && p->scope.data[0] == 'e')
                                         ? NGX_HTTP_NOT_FOUND : NGX_HTTP_OK,
                                      &p->scope, p->purged, NULL);
        goto done;
    }

    /* the next step in the next round trip: others' commands go between */

    p->cursor_len = ngx_cpymem(p->cursor, value->data, sp - value->data)
                    - p->cursor;

    if (ngx_llm_cache_purge_step(p) == NGX_DONE) {
        goto posted;
    }

    ngx_str_set(&error, "redis is not available");
    rc = ngx_llm_cache_purge_send(r, NGX_HTTP_BAD_GATEWAY, &p->scope,
                                  p->purged, &error);

done:

    ngx_http_finalize_request(r, rc);

posted:

    ngx_http_run_posted_requests(c);
}


/* {"purged": N, "scope": "..."} and, when it failed, "error" */

static ngx_int_t
ngx_llm_cache_purge_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *scope, ngx_uint_t purged, ngx_str_t *error)
{
    size_t                len;
    ngx_int_t             rc;
    ngx_buf_t            *b;
    ngx_chain_t           out;
    ngx_llm_cache_ctx_t  *ctx;

    len = sizeof("{\"purged\": , \"scope\": \"\", \"error\": \"\"}\n") - 1
          + NGX_INT_T_LEN + 6 * ngx_min(scope->len, 32)
          + (error ? 6 * error->len : 0);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"purged\": %ui, \"scope\": \"",
                          purged);
    b->last = (u_char *) ngx_escape_json(b->last, scope->data,
                                         ngx_min(scope->len, 32));
    *b->last++ = '"';

    if (error) {
        b->last = ngx_cpymem(b->last, ", \"error\": \"", 12);
        b->last = (u_char *) ngx_escape_json(b->last, error->data,
                                             error->len);
        *b->last++ = '"';
    }

    b->last = ngx_cpymem(b->last, "}\n", 2);
    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    ctx = ngx_http_get_module_ctx(r, ngx_llm_cache_module);

    if (ctx) {
        ctx->status = NGX_LLM_CACHE_STATUS_PURGE;

        if (ngx_llm_cache_set_status_header(r, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* the entry's EVAL: its string reply, as a step's */

static void
ngx_llm_cache_purge_entry_done(void *data, ngx_int_t rc, void *reply)
{
    ngx_str_t    value;
    redisReply  *rr;

    rr = reply;
    ngx_str_null(&value);

    if (rc == NGX_OK
        && (rr->type == REDIS_REPLY_STRING || rr->type == REDIS_REPLY_STATUS))
    {
        value.data = (u_char *) rr->str;
        value.len = rr->len;

    } else if (rc == NGX_OK) {
        rc = NGX_ERROR;
    }

    ngx_llm_cache_purge_step_done(data, rc, &value);
}
