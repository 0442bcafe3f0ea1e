
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * What the fuzz harness links in place of the rest of nginx: symbols the
 * code under test (or nginx's own pool, string and file code, when built
 * from a full nginx source) refers to but does not use here.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


volatile ngx_cycle_t  *ngx_cycle;
volatile ngx_time_t   *ngx_cached_time;

/* ctx_index 0: the harness puts its loc conf at r->loc_conf[0] */
ngx_module_t  ngx_llm_cache_module;


/* the harness's logs have log_level 0: nothing is logged */

void ngx_cdecl
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
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
