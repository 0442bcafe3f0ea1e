
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_module.h"


static ngx_int_t ngx_llm_cache_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_llm_cache_postconfiguration(ngx_conf_t *cf);
static void *ngx_llm_cache_create_main_conf(ngx_conf_t *cf);
static void *ngx_llm_cache_create_loc_conf(ngx_conf_t *cf);
static char *ngx_llm_cache_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_llm_cache_pass_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_llm_cache_redis_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_llm_cache_ttl_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_llm_cache_key_exclude_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_llm_cache_normalize_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_llm_cache_positive_msec(ngx_conf_t *cf, void *post,
    void *data);


/* a timeout of 0 would wait for ever, the client's leaving unnoticed */
static ngx_conf_post_handler_pt  ngx_llm_cache_redis_timeout_post =
    ngx_llm_cache_positive_msec;
static char *ngx_llm_cache_status_header_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_llm_cache_init_process(ngx_cycle_t *cycle);
static void ngx_llm_cache_exit_process(ngx_cycle_t *cycle);


/* the message names the directive, unlike ngx_conf_check_num_bounds() */
static char *ngx_llm_cache_metrics_models_check(ngx_conf_t *cf, void *post,
    void *data);
static ngx_conf_post_handler_pt  ngx_llm_cache_metrics_models_post =
    ngx_llm_cache_metrics_models_check;


/* the failures of the provider that an expired entry answers */
static ngx_conf_bitmask_t  ngx_llm_cache_use_stale_masks[] = {
    { ngx_string("error"), NGX_HTTP_UPSTREAM_FT_ERROR },
    { ngx_string("timeout"), NGX_HTTP_UPSTREAM_FT_TIMEOUT },
    { ngx_string("http_429"), NGX_HTTP_UPSTREAM_FT_HTTP_429 },
    { ngx_string("http_500"), NGX_HTTP_UPSTREAM_FT_HTTP_500 },
    { ngx_string("http_502"), NGX_HTTP_UPSTREAM_FT_HTTP_502 },
    { ngx_string("http_503"), NGX_HTTP_UPSTREAM_FT_HTTP_503 },
    { ngx_string("http_504"), NGX_HTTP_UPSTREAM_FT_HTTP_504 },
    { ngx_string("off"), NGX_HTTP_UPSTREAM_FT_OFF },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_llm_cache_invalid_json[] = {
    { ngx_string("pass"), NGX_LLM_CACHE_INVALID_JSON_PASS },
    { ngx_string("reject"), NGX_LLM_CACHE_INVALID_JSON_REJECT },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_llm_cache_semantic_modes[] = {
    { ngx_string("off"), NGX_LLM_CACHE_SEMANTIC_OFF },
    { ngx_string("on"), NGX_LLM_CACHE_SEMANTIC_ON },
    { ngx_string("shadow"), NGX_LLM_CACHE_SEMANTIC_SHADOW },
    { ngx_null_string, 0 }
};


static ngx_conf_bitmask_t  ngx_llm_cache_semantic_guards[] = {
    { ngx_string("off"), NGX_LLM_CACHE_SEM_GUARD_OFF },
    { ngx_string("numbers"), NGX_LLM_CACHE_SEM_GUARD_NUMBERS },
    { ngx_string("negation"), NGX_LLM_CACHE_SEM_GUARD_NEGATION },
    { ngx_string("entities"), NGX_LLM_CACHE_SEM_GUARD_ENTITIES },
    { ngx_string("strict"), NGX_LLM_CACHE_SEM_GUARD_STRICT },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_llm_cache_commands[] = {

    { ngx_string("llm_cache_pass"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_llm_cache_pass_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, enable),
      NULL },

    { ngx_string("llm_cache_redis"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_llm_cache_redis_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_cache_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, redis_timeout),
      &ngx_llm_cache_redis_timeout_post },

    { ngx_string("llm_cache_redis_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, redis_ssl.verify),
      NULL },

    { ngx_string("llm_cache_redis_ssl_server_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, redis_ssl.server_name),
      NULL },

    { ngx_string("llm_cache_redis_ssl_protocols"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_conf_set_bitmask_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, redis_ssl.protocols),
      &ngx_llm_cache_redis_ssl_protocols },

    { ngx_string("llm_cache_redis_ssl_ciphers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, redis_ssl.ciphers),
      NULL },

    { ngx_string("llm_cache_redis_ssl_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, redis_ssl.name),
      NULL },

    { ngx_string("llm_cache_redis_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, redis_ssl.trusted_certificate),
      NULL },

    { ngx_string("llm_cache_redis_ssl_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, redis_ssl.certificate),
      NULL },

    { ngx_string("llm_cache_redis_ssl_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, redis_ssl.certificate_key),
      NULL },

    { ngx_string("llm_cache_lock"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, lock),
      NULL },

    { ngx_string("llm_cache_lock_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, lock_timeout),
      NULL },

    { ngx_string("llm_cache_use_stale"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_conf_set_bitmask_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, use_stale),
      &ngx_llm_cache_use_stale_masks },

    { ngx_string("llm_cache_stale_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, stale_ttl),
      NULL },

    { ngx_string("llm_cache_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_llm_cache_ttl_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_cache_key_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, key_prefix),
      NULL },

    { ngx_string("llm_cache_key_exclude"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_llm_cache_key_exclude_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_cache_normalize"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_llm_cache_normalize_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_cache_namespace"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, namespace),
      NULL },

    { ngx_string("llm_cache_bypass"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_set_predicate_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, bypass),
      NULL },

    { ngx_string("llm_cache_no_store"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_set_predicate_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, no_store),
      NULL },

    { ngx_string("llm_cache_purge"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_set_predicate_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, purge),
      NULL },

    { ngx_string("llm_cache_client_control"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, client_control),
      NULL },

    { ngx_string("llm_cache_compress"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, compress),
      NULL },

    { ngx_string("llm_cache_max_body_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, max_body_size),
      NULL },

    { ngx_string("llm_cache_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, max_size),
      NULL },

    { ngx_string("llm_cache_status_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_llm_cache_status_header_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_cache_invalid_json"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, invalid_json),
      &ngx_llm_cache_invalid_json },

    { ngx_string("llm_cache_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_llm_cache_metrics_directive,
      0,
      0,
      NULL },

    { ngx_string("llm_cache_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_llm_cache_main_conf_t, metrics_size),
      NULL },

    { ngx_string("llm_cache_metrics_models"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_llm_cache_main_conf_t, metrics_models),
      &ngx_llm_cache_metrics_models_post },

    { ngx_string("llm_cache_semantic"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, semantic.mode),
      &ngx_llm_cache_semantic_modes },

    { ngx_string("llm_cache_semantic_embed"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, semantic.embed),
      NULL },

    { ngx_string("llm_cache_semantic_model"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, semantic.model),
      NULL },

    { ngx_string("llm_cache_semantic_dimensions"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, semantic.dimensions),
      NULL },

    { ngx_string("llm_cache_semantic_threshold"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_llm_cache_semantic_threshold_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_cache_semantic_guard"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_conf_set_bitmask_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, semantic.guards),
      &ngx_llm_cache_semantic_guards },

    { ngx_string("llm_cache_semantic_max_entries"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, semantic.max_entries),
      NULL },

    { ngx_string("llm_cache_semantic_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, semantic.ttl),
      NULL },

    { ngx_string("llm_cache_semantic_max_input"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, semantic.max_input),
      NULL },

    { ngx_string("llm_cache_semantic_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_llm_cache_loc_conf_t, semantic.timeout),
      &ngx_llm_cache_redis_timeout_post },

    { ngx_string("llm_cache_price"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE3,
      ngx_llm_cache_price_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_cache_l1_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_llm_cache_l1_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("llm_cache_l1"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_llm_cache_l1_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_llm_cache_module_ctx = {
    ngx_llm_cache_preconfiguration,        /* preconfiguration */
    ngx_llm_cache_postconfiguration,       /* postconfiguration */

    ngx_llm_cache_create_main_conf,        /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_llm_cache_create_loc_conf,         /* create location configuration */
    ngx_llm_cache_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_llm_cache_module = {
    NGX_MODULE_V1,
    &ngx_llm_cache_module_ctx,             /* module context */
    ngx_llm_cache_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_llm_cache_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_llm_cache_exit_process,            /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_llm_cache_default_exclude[] = {
    ngx_string("user"),
    ngx_string("metadata"),
    ngx_null_string
};


static ngx_conf_enum_t  ngx_llm_cache_normalize_names[] = {
    { ngx_string("trim"), NGX_LLM_CACHE_NORMALIZE_TRIM },
    { ngx_string("collapse"), NGX_LLM_CACHE_NORMALIZE_COLLAPSE },
    { ngx_string("lowercase"), NGX_LLM_CACHE_NORMALIZE_LOWERCASE },
    { ngx_null_string, 0 }
};


static ngx_int_t
ngx_llm_cache_preconfiguration(ngx_conf_t *cf)
{
    return ngx_llm_cache_add_variables(cf);
}


static ngx_int_t
ngx_llm_cache_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_llm_cache_rewrite_handler;

    if (ngx_llm_cache_metrics_init(cf,
            ngx_http_conf_get_module_main_conf(cf, ngx_llm_cache_module))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_llm_cache_filter_init(cf);
}


static void *
ngx_llm_cache_create_main_conf(ngx_conf_t *cf)
{
    ngx_llm_cache_main_conf_t  *lmcf;

    lmcf = ngx_pcalloc(cf->pool, sizeof(ngx_llm_cache_main_conf_t));
    if (lmcf == NULL) {
        return NULL;
    }

    lmcf->servers = ngx_array_create(cf->pool, 2,
                                     sizeof(ngx_llm_cache_redis_server_t *));
    if (lmcf->servers == NULL) {
        return NULL;
    }

    lmcf->metrics_size = NGX_CONF_UNSET_SIZE;
    lmcf->metrics_models = NGX_CONF_UNSET_UINT;

    return lmcf;
}


static void *
ngx_llm_cache_create_loc_conf(ngx_conf_t *cf)
{
    ngx_llm_cache_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_llm_cache_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->pass = { 0, NULL };
     *     conf->ttl = NULL;
     *     conf->namespace = NULL;
     *     conf->key_prefix = { 0, NULL };
     *     conf->status_header = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET;
    conf->redis = NGX_CONF_UNSET_PTR;
    conf->redis_timeout = NGX_CONF_UNSET_MSEC;
    ngx_llm_cache_redis_ssl_create_conf(&conf->redis_ssl);
    conf->lock = NGX_CONF_UNSET;
    conf->lock_timeout = NGX_CONF_UNSET_MSEC;
    conf->bypass = NGX_CONF_UNSET_PTR;
    conf->purge = NGX_CONF_UNSET_PTR;
    conf->no_store = NGX_CONF_UNSET_PTR;
    conf->client_control = NGX_CONF_UNSET;
    conf->compress = NGX_CONF_UNSET;
    conf->json.exclude = NGX_CONF_UNSET_PTR;
    conf->json.normalize = NGX_CONF_UNSET_UINT;
    conf->max_body_size = NGX_CONF_UNSET_SIZE;
    conf->max_size = NGX_CONF_UNSET_SIZE;
    conf->invalid_json = NGX_CONF_UNSET_UINT;
    conf->stale_ttl = NGX_CONF_UNSET;
    conf->l1 = NGX_CONF_UNSET_PTR;

    conf->semantic.mode = NGX_CONF_UNSET_UINT;
    conf->semantic.dimensions = NGX_CONF_UNSET_UINT;
    conf->semantic.threshold = NGX_CONF_UNSET_UINT;
    conf->semantic.max_entries = NGX_CONF_UNSET_UINT;
    conf->semantic.ttl = NGX_CONF_UNSET;
    conf->semantic.max_input = NGX_CONF_UNSET_SIZE;
    conf->semantic.timeout = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_llm_cache_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_llm_cache_loc_conf_t *prev = parent;
    ngx_llm_cache_loc_conf_t *conf = child;

    ngx_str_t                         *name;
    ngx_uint_t                         redis_here;
    ngx_llm_cache_redis_server_t      *prev_redis;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_llm_cache_main_conf_t         *lmcf;
    ngx_http_compile_complex_value_t   ccv;

    ngx_conf_merge_value(conf->enable, prev->enable, 1);

    redis_here = (conf->redis != NGX_CONF_UNSET_PTR);
    prev_redis = prev->redis;
    ngx_conf_merge_ptr_value(conf->redis, prev->redis, NULL);

    /* TLS settings and the resolver: core's loc conf is merged already */

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_llm_cache_module);
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (ngx_llm_cache_redis_merge(cf, lmcf->servers, &conf->redis,
                                  redis_here, prev_redis, &prev->redis_ssl,
                                  &conf->redis_ssl, clcf->resolver,
                                  clcf->resolver_timeout)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_msec_value(conf->redis_timeout, prev->redis_timeout, 50);
    ngx_conf_merge_value(conf->lock, prev->lock, 0);
    ngx_conf_merge_msec_value(conf->lock_timeout, prev->lock_timeout, 10000);
    ngx_conf_merge_ptr_value(conf->bypass, prev->bypass, NULL);
    ngx_conf_merge_ptr_value(conf->purge, prev->purge, NULL);
    ngx_conf_merge_ptr_value(conf->no_store, prev->no_store, NULL);
    ngx_conf_merge_value(conf->client_control, prev->client_control, 0);
    ngx_conf_merge_value(conf->compress, prev->compress, 0);
    ngx_conf_merge_str_value(conf->key_prefix, prev->key_prefix, "llm:");
    ngx_conf_merge_uint_value(conf->json.normalize, prev->json.normalize,
                              NGX_LLM_CACHE_NORMALIZE_TRIM);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              1024 * 1024);
    ngx_conf_merge_size_value(conf->max_size, prev->max_size,
                              2 * 1024 * 1024);
    ngx_conf_merge_str_value(conf->status_header, prev->status_header,
                             "X-LLM-Cache");
    ngx_conf_merge_bitmask_value(conf->use_stale, prev->use_stale,
                                 NGX_CONF_BITMASK_SET
                                 |NGX_HTTP_UPSTREAM_FT_OFF);

    if (conf->use_stale & NGX_HTTP_UPSTREAM_FT_OFF) {
        conf->use_stale = NGX_CONF_BITMASK_SET|NGX_HTTP_UPSTREAM_FT_OFF;
    }

    ngx_conf_merge_sec_value(conf->stale_ttl, prev->stale_ttl, 0);

    ngx_conf_merge_uint_value(conf->invalid_json, prev->invalid_json,
                              NGX_LLM_CACHE_INVALID_JSON_PASS);

    if (conf->namespace == NULL) {
        conf->namespace = prev->namespace;
    }

    if (conf->ttl == NULL) {
        conf->ttl = prev->ttl;
    }

    if (conf->ttl == NULL) {
        conf->ttl = ngx_pcalloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (conf->ttl == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.complex_value = conf->ttl;

        ccv.value = ngx_pcalloc(cf->pool, sizeof(ngx_str_t));
        if (ccv.value == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_str_set(ccv.value, "1h");

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        prev->ttl = conf->ttl;
    }

    ngx_conf_merge_ptr_value(conf->json.exclude, prev->json.exclude,
                             NGX_CONF_UNSET_PTR);

    if (conf->json.exclude == NGX_CONF_UNSET_PTR) {
        conf->json.exclude = ngx_array_create(cf->pool, 2,
                                              sizeof(ngx_array_t));
        if (conf->json.exclude == NULL) {
            return NGX_CONF_ERROR;
        }

        for (name = ngx_llm_cache_default_exclude; name->len; name++) {
            if (ngx_llm_cache_json_exclude_add(cf->pool, conf->json.exclude,
                                               name)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }
        }

        prev->json.exclude = conf->json.exclude;
    }

    if (conf->lock && conf->lock_timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_lock_timeout\" must be more than 0 "
                           "with \"llm_cache_lock on\"");
        return NGX_CONF_ERROR;
    }

    if (ngx_llm_cache_semantic_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_llm_cache_l1_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->pass.len && conf->enable && conf->redis == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_pass\" needs \"llm_cache_redis\" "
                           "(or \"llm_cache off\")");
        return NGX_CONF_ERROR;
    }

    /*
     * as proxy_pass: the methods a limit_except block lets through (from
     * the addresses it allows) are handled with the location's conf
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->lmt_excpt && conf->pass.len == 0 && prev->pass.len) {
        conf->pass = prev->pass;

        if (clcf->handler == NULL) {
            clcf->handler = ngx_llm_cache_handler;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_llm_cache_pass_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_llm_cache_loc_conf_t *lcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->pass.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_pass\" must be a URI prefix starting "
                           "with \"/\", not \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* "/_llm/" + "/v1/chat" would make "//"; "/_llm" is what is meant */

    if (value[1].len > 1 && value[1].data[value[1].len - 1] == '/') {
        value[1].len--;
    }

    lcf->pass = value[1];

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_llm_cache_handler;

    return NGX_CONF_OK;
}


static char *
ngx_llm_cache_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_llm_cache_loc_conf_t *lcf = conf;

    ngx_str_t                  *value;
    ngx_llm_cache_main_conf_t  *lmcf;

    if (lcf->redis != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        lcf->redis = NULL;
        return NGX_CONF_OK;
    }

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_llm_cache_module);

    lcf->redis = ngx_llm_cache_redis_add(cf, lmcf->servers, value,
                                         cf->args->nelts);
    if (lcf->redis == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_llm_cache_ttl_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_llm_cache_loc_conf_t *lcf = conf;

    time_t                             ttl;
    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (lcf->ttl) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lcf->ttl = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (lcf->ttl == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = lcf->ttl;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* a constant is checked now; a variable when a response is stored */

    if (lcf->ttl->lengths == NULL) {
        ttl = ngx_parse_time(&value[1], 1);

        if (ttl == (time_t) NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid time \"%V\" in \"llm_cache_ttl\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_llm_cache_key_exclude_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_llm_cache_loc_conf_t *lcf = conf;

    ngx_int_t    rc;
    ngx_str_t   *value;
    ngx_uint_t   i;

    if (lcf->json.exclude != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lcf->json.exclude = ngx_array_create(cf->pool, cf->args->nelts,
                                         sizeof(ngx_array_t));
    if (lcf->json.exclude == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        rc = ngx_llm_cache_json_exclude_add(cf->pool, lcf->json.exclude,
                                            &value[i]);

        if (rc == NGX_DECLINED) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid path \"%V\" in "
                               "\"llm_cache_key_exclude\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (rc != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_llm_cache_normalize_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_llm_cache_loc_conf_t *lcf = conf;

    ngx_str_t        *value;
    ngx_uint_t        i;
    ngx_conf_enum_t  *e;

    if (lcf->json.normalize != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lcf->json.normalize = 0;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        for (e = ngx_llm_cache_normalize_names; e->name.len; e++) {
            if (e->name.len == value[i].len
                && ngx_strcmp(e->name.data, value[i].data) == 0)
            {
                lcf->json.normalize |= e->value;
                break;
            }
        }

        if (e->name.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in "
                               "\"llm_cache_normalize\", it must be "
                               "\"off\", \"trim\", \"collapse\" or "
                               "\"lowercase\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_llm_cache_status_header_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_llm_cache_loc_conf_t *lcf = conf;

    u_char      *p;
    ngx_str_t   *value;

    if (lcf->status_header.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        ngx_str_set(&lcf->status_header, "");
        return NGX_CONF_OK;
    }

    for (p = value[1].data; p < value[1].data + value[1].len; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid header name \"%V\" in "
                               "\"llm_cache_status_header\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 0) {
        return "has an empty header name";
    }

    lcf->status_header = value[1];

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_llm_cache_init_process(ngx_cycle_t *cycle)
{
    ngx_llm_cache_main_conf_t  *lmcf;

    lmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_llm_cache_module);

    if (lmcf == NULL || lmcf->servers->nelts == 0) {
        return NGX_OK;
    }

    /* the cache manager and loader serve no requests: no pool for them */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (ngx_llm_cache_redis_init_worker(cycle, lmcf->servers) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_llm_cache_l1_init_worker(cycle, lmcf->l1_zones);
}


static void
ngx_llm_cache_exit_process(ngx_cycle_t *cycle)
{
    ngx_llm_cache_main_conf_t  *lmcf;

    lmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_llm_cache_module);

    if (lmcf == NULL || lmcf->servers->nelts == 0) {
        return;
    }

    ngx_llm_cache_l1_exit_worker(lmcf->l1_zones);
    ngx_llm_cache_redis_exit_worker(lmcf->servers);
}


static char *
ngx_llm_cache_positive_msec(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *ms = data;

    if (*ms == 0) {
        return "must be more than 0";
    }

    return NGX_CONF_OK;
}


static char *
ngx_llm_cache_metrics_models_check(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t  *n = data;

    if (*n > NGX_LLM_CACHE_METRICS_MAX_MODELS) {
        return "must be from 0 to 256";
    }

    return NGX_CONF_OK;
}
