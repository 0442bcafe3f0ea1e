
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_module.h"


static ngx_int_t ngx_llm_cache_variable_status(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_llm_cache_variable_str(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_llm_cache_variable_age(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_llm_cache_variable_lock_wait(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_llm_cache_variable_semantic(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_llm_cache_variable_similarity(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_llm_cache_variable_tier(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_llm_cache_variables[] = {

    { ngx_string("llm_cache_status"), NULL, ngx_llm_cache_variable_status,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_cache_key"), NULL, ngx_llm_cache_variable_str,
      offsetof(ngx_llm_cache_ctx_t, key), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_cache_model"), NULL, ngx_llm_cache_variable_str,
      offsetof(ngx_llm_cache_ctx_t, model), NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_cache_age"), NULL, ngx_llm_cache_variable_age,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_cache_lock_wait"), NULL,
      ngx_llm_cache_variable_lock_wait, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_cache_semantic_status"), NULL,
      ngx_llm_cache_variable_semantic, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_cache_similarity"), NULL,
      ngx_llm_cache_variable_similarity, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llm_cache_tier"), NULL, ngx_llm_cache_variable_tier,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_llm_cache_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_llm_cache_variables; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_llm_cache_variable_set(ngx_http_variable_value_t *v, ngx_str_t *s)
{
    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->data = s->data;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/* the state lives on the main request; logs and maps may ask anywhere */

static ngx_llm_cache_ctx_t *
ngx_llm_cache_variable_ctx(ngx_http_request_t *r)
{
    return ngx_http_get_module_ctx(r->main, ngx_llm_cache_module);
}


static ngx_int_t
ngx_llm_cache_variable_status(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t            *name;
    ngx_llm_cache_ctx_t  *ctx;

    ctx = ngx_llm_cache_variable_ctx(r);

    if (ctx == NULL || ctx->status == NGX_LLM_CACHE_STATUS_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    name = ngx_llm_cache_status_name(ctx);

    return ngx_llm_cache_variable_set(v, name);
}


static ngx_int_t
ngx_llm_cache_variable_str(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t            *s;
    ngx_llm_cache_ctx_t  *ctx;

    ctx = ngx_llm_cache_variable_ctx(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((char *) ctx + data);

    return ngx_llm_cache_variable_set(v, s);
}


static ngx_int_t
ngx_llm_cache_variable_age(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t             s;
    ngx_llm_cache_ctx_t  *ctx;

    ctx = ngx_llm_cache_variable_ctx(r);

    if (ctx == NULL || !ctx->has_age) {
        v->not_found = 1;
        return NGX_OK;
    }

    s.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (s.data == NULL) {
        return NGX_ERROR;
    }

    s.len = ngx_sprintf(s.data, "%T", ctx->age) - s.data;

    return ngx_llm_cache_variable_set(v, &s);
}


/* seconds with milliseconds, as $upstream_response_time */

static ngx_int_t
ngx_llm_cache_variable_lock_wait(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t             s;
    ngx_llm_cache_ctx_t  *ctx;

    ctx = ngx_llm_cache_variable_ctx(r);

    if (ctx == NULL || !ctx->wait_over) {
        v->not_found = 1;
        return NGX_OK;
    }

    s.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN + 4);
    if (s.data == NULL) {
        return NGX_ERROR;
    }

    s.len = ngx_sprintf(s.data, "%T.%03M", (time_t) (ctx->wait_time / 1000),
                        ctx->wait_time % 1000)
            - s.data;

    return ngx_llm_cache_variable_set(v, &s);
}


static ngx_int_t
ngx_llm_cache_variable_semantic(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_llm_cache_ctx_t  *ctx;

    ctx = ngx_llm_cache_variable_ctx(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_llm_cache_variable_set(v,
                                      ngx_llm_cache_semantic_status_name(ctx));
}


static ngx_int_t
ngx_llm_cache_variable_similarity(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t             s;
    ngx_llm_cache_ctx_t  *ctx;

    ctx = ngx_llm_cache_variable_ctx(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s.data = ngx_pnalloc(r->pool, sizeof("-1.0000"));
    if (s.data == NULL) {
        return NGX_ERROR;
    }

    s.len = ngx_llm_cache_semantic_similarity(ctx, s.data);

    return ngx_llm_cache_variable_set(v, &s);
}


/* where a hit came from: l1 or redis; empty for anything else */

static ngx_int_t
ngx_llm_cache_variable_tier(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t             s;
    ngx_llm_cache_ctx_t  *ctx;

    ctx = ngx_llm_cache_variable_ctx(r);

    ngx_str_null(&s);

    if (ctx && ctx->tier == NGX_LLM_CACHE_TIER_L1) {
        ngx_str_set(&s, "l1");

    } else if (ctx && ctx->tier == NGX_LLM_CACHE_TIER_REDIS) {
        ngx_str_set(&s, "redis");
    }

    if (s.len == 0) {
        v->len = 0;
        v->data = (u_char *) "";
        v->valid = 1;
        v->no_cacheable = 0;
        v->not_found = 0;
        return NGX_OK;
    }

    return ngx_llm_cache_variable_set(v, &s);
}
