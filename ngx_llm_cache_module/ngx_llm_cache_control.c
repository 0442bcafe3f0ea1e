
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * Request controls, evaluated once the body is parsed and the key built,
 * so that $llm_cache_model and the other variables have their values:
 * llm_cache_bypass (a refresh: no look-up, the answer stored), as
 * proxy_cache_bypass; llm_cache_no_store (the answer not stored), as
 * proxy_no_cache; and, with llm_cache_client_control on, the client's own
 * Cache-Control: no-cache, no-store, max-age.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_module.h"


static ngx_int_t ngx_llm_cache_test(ngx_http_request_t *r,
    ngx_array_t *predicates);
static void ngx_llm_cache_client_control(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
static void ngx_llm_cache_cache_control(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_str_t *value);
static ngx_int_t ngx_llm_cache_delta_seconds(u_char *p, size_t len,
    time_t *delta);


ngx_int_t
ngx_llm_cache_controls(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx)
{
    ngx_int_t                  rc;
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    rc = ngx_llm_cache_test(r, lcf->bypass);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ctx->refresh = 1;
    }

    rc = ngx_llm_cache_test(r, lcf->no_store);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ctx->no_store = 1;
    }

    if (lcf->client_control) {
        ngx_llm_cache_client_control(r, ctx);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llm_cache: controls refresh:%ud no_store:%ud "
                   "max_age:%T", ctx->refresh, ctx->no_store,
                   ctx->has_max_age ? ctx->max_age : (time_t) -1);

    return NGX_OK;
}


/*
 * ngx_http_test_predicates(), but first the variables the values name
 * forget what they were earlier in the request: a map over
 * $llm_cache_model that a rewrite "if" or "set" evaluated before the body
 * was read keeps, by nginx's per-request cache, the empty model it saw
 * then.  Only the variables that a map, geo, split_clients or perl_set
 * make (changeable, not weak): one that "set" alone makes has its value
 * nowhere else, and built-in ones do not change (or, as $request_id,
 * must not).
 */

static ngx_int_t
ngx_llm_cache_test(ngx_http_request_t *r, ngx_array_t *predicates)
{
    ngx_uint_t                  i, *index;
    ngx_http_variable_t        *v;
    ngx_http_complex_value_t   *cv;
    ngx_http_core_main_conf_t  *cmcf;

    if (predicates == NULL) {
        return NGX_OK;
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_core_module);

    v = cmcf->variables.elts;
    cv = predicates->elts;

    for (i = 0; i < predicates->nelts; i++) {

        if (cv[i].flushes == NULL) {
            continue;
        }

        for (index = cv[i].flushes; *index != (ngx_uint_t) -1; index++) {

            if ((v[*index].flags
                 & (NGX_HTTP_VAR_CHANGEABLE|NGX_HTTP_VAR_WEAK))
                != NGX_HTTP_VAR_CHANGEABLE)
            {
                continue;
            }

            r->variables[*index].valid = 0;
            r->variables[*index].not_found = 0;
        }
    }

    return ngx_http_test_predicates(r, predicates);
}


static void
ngx_llm_cache_client_control(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

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

        if (h[i].hash == 0
            || !ngx_llm_cache_header_is(&h[i].key, "Cache-Control"))
        {
            continue;
        }

        ngx_llm_cache_cache_control(r, ctx, &h[i].value);
    }
}


/*
 * One Cache-Control value: a list of directives, token [ "=" ( token |
 * quoted-string ) ], names case-insensitive (RFC 9111, 5.2).  Unknown
 * directives and a max-age that is not delta-seconds are ignored.
 */

static void
ngx_llm_cache_cache_control(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx,
    ngx_str_t *value)
{
    u_char  *p, *end, *name, *arg;
    size_t   name_len, arg_len;
    time_t   delta;

    p = value->data;
    end = p + value->len;

    while (p < end) {

        if (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
            continue;
        }

        name = p;

        while (p < end && *p != '=' && *p != ',' && *p != ' ' && *p != '\t') {
            p++;
        }

        name_len = p - name;
        arg = NULL;
        arg_len = 0;

        if (p < end && *p == '=') {
            p++;

            if (p < end && *p == '"') {
                arg = ++p;

                while (p < end && *p != '"') {
                    if (*p == '\\' && p + 1 < end) {
                        p++;
                    }

                    p++;
                }

                arg_len = p - arg;

            } else {
                arg = p;

                while (p < end && *p != ',' && *p != ' ' && *p != '\t') {
                    p++;
                }

                arg_len = p - arg;
            }
        }

        /* whatever else is before the next comma is not of the directive */

        while (p < end && *p != ',') {
            p++;
        }

        if (name_len == sizeof("no-cache") - 1
            && ngx_strncasecmp(name, (u_char *) "no-cache", name_len) == 0)
        {
            ctx->refresh = 1;
            continue;
        }

        if (name_len == sizeof("no-store") - 1
            && ngx_strncasecmp(name, (u_char *) "no-store", name_len) == 0)
        {
            ctx->no_store = 1;
            continue;
        }

        if (name_len == sizeof("max-age") - 1
            && ngx_strncasecmp(name, (u_char *) "max-age", name_len) == 0)
        {
            if (arg == NULL
                || ngx_llm_cache_delta_seconds(arg, arg_len, &delta)
                   != NGX_OK)
            {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "llm_cache: invalid max-age in client "
                              "Cache-Control \"%V\", ignored", value);
                continue;
            }

            /* several: the shortest */

            if (!ctx->has_max_age || delta < ctx->max_age) {
                ctx->max_age = delta;
                ctx->has_max_age = 1;
            }
        }
    }
}


/* 1*DIGIT; a greater one counts as 2^31 - 1 (RFC 9111, 1.2.2) */

static ngx_int_t
ngx_llm_cache_delta_seconds(u_char *p, size_t len, time_t *delta)
{
    time_t   n;
    u_char  *end;

    if (len == 0) {
        return NGX_ERROR;
    }

    n = 0;

    for (end = p + len; p < end; p++) {

        if (*p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        if (n > (NGX_MAX_INT32_VALUE - 9) / 10) {
            n = NGX_MAX_INT32_VALUE;
            continue;
        }

        n = n * 10 + (*p - '0');
    }

    *delta = n;

    return NGX_OK;
}
