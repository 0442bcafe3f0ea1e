
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * What the fuzz harnesses link in place of the rest of nginx: symbols
 * that the code under test or nginx's own core objects refer to but that
 * are not used here, and whose objects would pull in the cycle, the event
 * loop and most of the http module.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_module.h"


volatile ngx_cycle_t  *ngx_cycle;
ngx_pid_t              ngx_pid;

/* ctx_index 0: the harness puts its loc conf at r->loc_conf[0] */
ngx_module_t  ngx_llm_cache_module;


/*
 * ngx_log.o's configuration side (error_log directives) and its syslog
 * writer: ngx_conf_file.o and ngx_syslog.o would bring in the cycle, the
 * event loop and the resolver.  The harnesses configure no log.
 */

ngx_open_file_t *
ngx_conf_open_file(ngx_cycle_t *cycle, ngx_str_t *name)
{
    abort();
}


void ngx_cdecl
ngx_conf_log_error(ngx_uint_t level, ngx_conf_t *cf, ngx_err_t err,
    const char *fmt, ...)
{
    abort();
}


char *
ngx_syslog_process_conf(ngx_conf_t *cf, ngx_syslog_peer_t *peer)
{
    abort();
}


void
ngx_syslog_writer(ngx_log_t *log, ngx_uint_t level, u_char *buf,
    size_t len)
{
    abort();
}


/* the constant values that ngx_http_compile_complex_value() makes */

ngx_int_t
ngx_http_complex_value(ngx_http_request_t *r, ngx_http_complex_value_t *val,
    ngx_str_t *value)
{
    if (val->lengths != NULL) {
        abort();
    }

    *value = val->value;

    return NGX_OK;
}


/* the key builder's call into the semantic layer, never on here */

ngx_int_t
ngx_llm_cache_semantic_prepare(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_llm_cache_json_t *root)
{
    abort();
}


#if (NGX_THREADS)

/* ngx_thread_read(): the harness's files have no thread handler */

ngx_thread_task_t *
ngx_thread_task_alloc(ngx_pool_t *pool, size_t size)
{
    abort();
}


ngx_int_t
ngx_thread_task_post(ngx_thread_pool_t *tp, ngx_thread_task_t *task)
{
    abort();
}

#endif
