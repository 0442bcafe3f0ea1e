
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * Counters shared by all workers, in a shared memory zone that a reload
 * keeps (same name, size and tag), and the llm_cache_metrics location
 * that shows them in Prometheus' text format or, asked for, in JSON.
 *
 * Model labels are bounded: the first llm_cache_metrics_models distinct
 * models get their own label, later ones count as "other", so clients
 * cannot grow the label set.  The label table is under the slab mutex;
 * counters are bumped with ngx_atomic_fetch_add().
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_module.h"


#define NGX_LLM_CACHE_METRICS_LABEL     64
#define NGX_LLM_CACHE_METRICS_STATUSES  10

/* by ngx_llm_cache_sem_status_e, NONE unused */
#define NGX_LLM_CACHE_METRICS_SEMANTIC  7

/* slots after the named models: "other", and requests with no model */
#define NGX_LLM_CACHE_METRICS_OTHER     NGX_LLM_CACHE_METRICS_MAX_MODELS
#define NGX_LLM_CACHE_METRICS_NONE      (NGX_LLM_CACHE_METRICS_MAX_MODELS + 1)
#define NGX_LLM_CACHE_METRICS_SLOTS     (NGX_LLM_CACHE_METRICS_MAX_MODELS + 2)

/* servers with counters of their own, in the order of the configuration */
#define NGX_LLM_CACHE_METRICS_REDIS     8

/* Redis reply time histogram buckets, in milliseconds (and +Inf) */
#define NGX_LLM_CACHE_METRICS_BUCKETS   7

static ngx_msec_t  ngx_llm_cache_metrics_buckets[] = {
    1, 5, 10, 50, 100, 500
};

static char  *ngx_llm_cache_metrics_bucket_le[] = {
    "0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "+Inf"
};


/* counted in picodollars */
#define NGX_LLM_CACHE_METRICS_DOLLAR    ((ngx_atomic_uint_t) 1000000000000)

/* one line of output at most, a label included */
#define NGX_LLM_CACHE_METRICS_LINE      (160 + NGX_LLM_CACHE_METRICS_LABEL)


typedef struct {
    ngx_atomic_t   requests[NGX_LLM_CACHE_METRICS_STATUSES];

    /* saved by hits */
    ngx_atomic_t   prompt;
    ngx_atomic_t   completion;
    ngx_atomic_t   cost;           /* picodollars */
    ngx_atomic_t   time;           /* the provider's, milliseconds */
} ngx_llm_cache_metrics_slot_t;


typedef struct {
    u_char                         name_len;
    u_char                         name[NGX_LLM_CACHE_METRICS_LABEL];
    ngx_atomic_t                   ok;        /* the last event a success */
    ngx_atomic_t                   connects;
    ngx_atomic_t                   failures;
    ngx_atomic_t                   breakers;  /* open, a gauge */
} ngx_llm_cache_metrics_redis_t;


typedef struct {
    size_t                         size;     /* the layout it was made with */
    ngx_atomic_t                   nmodels;

    u_char                         model_len[NGX_LLM_CACHE_METRICS_MAX_MODELS];
    u_char                         model[NGX_LLM_CACHE_METRICS_MAX_MODELS]
                                        [NGX_LLM_CACHE_METRICS_LABEL];

    ngx_llm_cache_metrics_slot_t   slot[NGX_LLM_CACHE_METRICS_SLOTS];

    /* by NGX_LLM_CACHE_STORED or the reason an answer was not stored */
    ngx_atomic_t                   store[NGX_LLM_CACHE_STORE_RESULTS];

    /* the semantic layer's look-ups, by outcome */
    ngx_atomic_t                   semantic[NGX_LLM_CACHE_METRICS_SEMANTIC];

    /* with llm_cache_lock: requests that waited on another's miss */
    ngx_atomic_t                   lock_waits;
    ngx_atomic_t                   lock_wait_ms;

    /* by llm_cache_redis server, all workers together */
    ngx_llm_cache_metrics_redis_t  redis[NGX_LLM_CACHE_METRICS_REDIS];

    /* every server's replies */
    ngx_atomic_t                   redis_bucket[NGX_LLM_CACHE_METRICS_BUCKETS];
    ngx_atomic_t                   redis_replies;
    ngx_atomic_t                   redis_reply_ms;

    /* hits answered from an L1 zone (ngx_llm_cache_l1.c) */
    ngx_atomic_t                   l1_hits;
} ngx_llm_cache_metrics_shm_t;


typedef struct {
    ngx_http_request_t            *request;
    ngx_llm_cache_metrics_shm_t   *shm;
    ngx_uint_t                     json;
    ngx_uint_t                     nmodels;
} ngx_llm_cache_metrics_out_t;


static ngx_int_t ngx_llm_cache_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_llm_cache_metrics_slot(ngx_slab_pool_t *shpool,
    ngx_llm_cache_metrics_shm_t *shm, ngx_uint_t limit, ngx_str_t *model);
static ngx_uint_t ngx_llm_cache_metrics_cost(ngx_llm_cache_main_conf_t *lmcf,
    ngx_str_t *model, ngx_llm_cache_usage_t *usage);
static u_char *ngx_llm_cache_metrics_scan(u_char *p, u_char *end,
    ngx_llm_cache_usage_t *usage);
static u_char *ngx_llm_cache_metrics_scan_usage(u_char *p, u_char *end,
    ngx_llm_cache_usage_t *usage);
static ngx_int_t ngx_llm_cache_metrics_handler(ngx_http_request_t *r);
static ngx_uint_t ngx_llm_cache_metrics_l1_zones(ngx_http_request_t *r);
static u_char *ngx_llm_cache_metrics_l1(u_char *p,
    ngx_llm_cache_metrics_out_t *out);
static ngx_uint_t ngx_llm_cache_metrics_wants_json(ngx_http_request_t *r);
static void ngx_llm_cache_metrics_label(ngx_llm_cache_metrics_out_t *out,
    ngx_uint_t slot, ngx_str_t *label);
static u_char *ngx_llm_cache_metrics_prometheus(u_char *p,
    ngx_llm_cache_metrics_out_t *out);
static u_char *ngx_llm_cache_metrics_json(u_char *p,
    ngx_llm_cache_metrics_out_t *out);
static u_char *ngx_llm_cache_metrics_help(u_char *p, char *name, char *help,
    char *type);
static u_char *ngx_llm_cache_metrics_redis_lines(u_char *p,
    ngx_llm_cache_metrics_out_t *out, char *metric, ngx_uint_t field);


static ngx_str_t  ngx_llm_cache_metrics_zone_name =
    ngx_string("llm_cache_metrics");

static ngx_shm_zone_t  *ngx_llm_cache_metrics_zone;


/* by NGX_LLM_CACHE_NOT_STORED_... */

static char  *ngx_llm_cache_metrics_not_stored[] = {
    NULL,
    NULL,
    "status",
    "type",
    "too_big",
    "cut",
    "no_store",
    "invalid",
    "redis"
};


/* as X-LLM-Cache says them, by ngx_llm_cache_status_e */

static ngx_str_t  ngx_llm_cache_metrics_status[] = {
    ngx_null_string,
    ngx_string("MISS"),
    ngx_string("HIT"),
    ngx_string("BYPASS"),
    ngx_string("ERROR"),
    ngx_string("HIT_WAITED"),
    ngx_string("MISS_WAITED"),
    ngx_string("STALE"),
    ngx_string("PURGE"),
    ngx_string("HIT_SEMANTIC")
};


static char  *ngx_llm_cache_metrics_semantic[] = {
    NULL,
    "bypass",
    "miss",
    "hit",
    "guard",
    "error",
    "shadow_hit"
};


/* from postconfiguration: the zone, whether a location shows it or not */

ngx_int_t
ngx_llm_cache_metrics_init(ngx_conf_t *cf, ngx_llm_cache_main_conf_t *lmcf)
{
    size_t  min;

    if (lmcf->metrics_size == NGX_CONF_UNSET_SIZE) {
        lmcf->metrics_size = 1024 * 1024;
    }

    if (lmcf->metrics_models == NGX_CONF_UNSET_UINT) {
        lmcf->metrics_models = 32;
    }

    min = 8 * ngx_pagesize + sizeof(ngx_llm_cache_metrics_shm_t);

    if (lmcf->metrics_size < min) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_metrics_zone\" of %uz bytes is too "
                           "small, it needs at least %uz",
                           lmcf->metrics_size, min);
        return NGX_ERROR;
    }

    ngx_llm_cache_metrics_zone = ngx_shared_memory_add(cf,
                                              &ngx_llm_cache_metrics_zone_name,
                                              lmcf->metrics_size,
                                              &ngx_llm_cache_module);
    if (ngx_llm_cache_metrics_zone == NULL) {
        return NGX_ERROR;
    }

    ngx_llm_cache_metrics_zone->init = ngx_llm_cache_metrics_init_zone;
    ngx_llm_cache_metrics_zone->data = lmcf;

    return NGX_OK;
}


static ngx_int_t
ngx_llm_cache_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t              *shpool;
    ngx_llm_cache_metrics_shm_t  *shm;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    /* a reload: the zone and its counters are kept */

    if (data) {
        shm = data;

        if (shm->size == sizeof(ngx_llm_cache_metrics_shm_t)) {
            shm_zone->data = shm;
            return NGX_OK;
        }

        /* counters of another layout, maybe smaller: new ones */
    }

    shm = ngx_slab_calloc(shpool, sizeof(ngx_llm_cache_metrics_shm_t));
    if (shm == NULL) {
        return NGX_ERROR;
    }

    shm->size = sizeof(ngx_llm_cache_metrics_shm_t);

    shpool->data = shm;
    shm_zone->data = shm;

    return NGX_OK;
}


/* from the request's pool cleanup: each main request once, at its end */

void
ngx_llm_cache_metrics_request(ngx_llm_cache_ctx_t *ctx)
{
    ngx_uint_t                    i, result;
    ngx_slab_pool_t              *shpool;
    ngx_llm_cache_main_conf_t    *lmcf;
    ngx_llm_cache_metrics_shm_t  *shm;

    if (ctx->request != ctx->request->main
        || ngx_llm_cache_metrics_zone == NULL
        || ngx_llm_cache_metrics_zone->shm.addr == NULL)
    {
        return;
    }

    shpool = (ngx_slab_pool_t *) ngx_llm_cache_metrics_zone->shm.addr;
    shm = ngx_llm_cache_metrics_zone->data;

    if (shm == NULL || shm->size != sizeof(ngx_llm_cache_metrics_shm_t)) {
        return;
    }

    /* a storable answer whose end never passed: cut, or the client left */

    result = ctx->store_result;

    if (result == NGX_LLM_CACHE_STORE_NONE
        && ctx->provider_status == NGX_HTTP_OK && !ctx->stored)
    {
        result = NGX_LLM_CACHE_NOT_STORED_CUT;
    }

    if (result != NGX_LLM_CACHE_STORE_NONE
        && result < NGX_LLM_CACHE_STORE_RESULTS)
    {
        (void) ngx_atomic_fetch_add(&shm->store[result], 1);
    }

    if (ctx->waited) {
        (void) ngx_atomic_fetch_add(&shm->lock_waits, 1);
        (void) ngx_atomic_fetch_add(&shm->lock_wait_ms,
                                    ctx->wait_over
                                    ? ctx->wait_time
                                    : ngx_current_msec - ctx->wait_start);
    }

    if (ctx->sem && ngx_llm_cache_semantic_outcome(ctx) != 0) {
        (void) ngx_atomic_fetch_add(
                          &shm->semantic[ngx_llm_cache_semantic_outcome(ctx)],
                          1);
    }

    if (ctx->status == NGX_LLM_CACHE_STATUS_NONE
        || ctx->status >= NGX_LLM_CACHE_METRICS_STATUSES)
    {
        return;
    }

    lmcf = ngx_http_get_module_main_conf(ctx->request, ngx_llm_cache_module);

    i = ngx_llm_cache_metrics_slot(shpool, shm, lmcf->metrics_models,
                                   &ctx->model);

    (void) ngx_atomic_fetch_add(&shm->slot[i].requests[ctx->status], 1);

    if (ctx->tier == NGX_LLM_CACHE_TIER_L1) {
        (void) ngx_atomic_fetch_add(&shm->l1_hits, 1);
    }

    if (ctx->status != NGX_LLM_CACHE_STATUS_HIT
        && ctx->status != NGX_LLM_CACHE_STATUS_HIT_WAITED
        && ctx->status != NGX_LLM_CACHE_STATUS_HIT_SEMANTIC)
    {
        return;
    }

    (void) ngx_atomic_fetch_add(&shm->slot[i].prompt, ctx->usage.prompt);
    (void) ngx_atomic_fetch_add(&shm->slot[i].completion,
                                ctx->usage.completion);
    (void) ngx_atomic_fetch_add(&shm->slot[i].time, ctx->usage.duration);
    (void) ngx_atomic_fetch_add(&shm->slot[i].cost,
                                ngx_llm_cache_metrics_cost(lmcf, &ctx->model,
                                                           &ctx->usage));
}


static ngx_llm_cache_metrics_shm_t *
ngx_llm_cache_metrics_shm(void)
{
    ngx_llm_cache_metrics_shm_t  *shm;

    if (ngx_llm_cache_metrics_zone == NULL) {
        return NULL;
    }

    shm = ngx_llm_cache_metrics_zone->data;

    if (shm == NULL || ngx_llm_cache_metrics_zone->shm.addr == NULL
        || shm->size != sizeof(ngx_llm_cache_metrics_shm_t))
    {
        return NULL;
    }

    return shm;
}


/* the server's counters: its place among the configuration's servers */

static ngx_llm_cache_metrics_redis_t *
ngx_llm_cache_metrics_redis(ngx_llm_cache_metrics_shm_t *shm, void *server,
    ngx_str_t *name)
{
    size_t                          len;
    ngx_uint_t                      i;
    ngx_llm_cache_main_conf_t      *lmcf;
    ngx_llm_cache_metrics_redis_t  *mr;
    ngx_llm_cache_redis_server_t  **s;

    lmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_llm_cache_module);

    if (lmcf == NULL) {
        return NULL;
    }

    /* a Redis Cluster node counts under its cluster= server */
    server = ngx_llm_cache_redis_owner(server, &name);

    s = lmcf->servers->elts;

    for (i = 0; i < lmcf->servers->nelts; i++) {
        if (s[i] == server) {
            break;
        }
    }

    if (i == lmcf->servers->nelts || i >= NGX_LLM_CACHE_METRICS_REDIS) {
        return NULL;
    }

    mr = &shm->redis[i];

    /* every worker writes the same bytes; a new configuration renames */

    len = ngx_min(name->len, NGX_LLM_CACHE_METRICS_LABEL);

    if (mr->name_len != len || ngx_memcmp(mr->name, name->data, len) != 0) {
        ngx_memcpy(mr->name, name->data, len);
        mr->name_len = (u_char) len;
    }

    return mr;
}


/* every command's reply (ok: in time), from ngx_llm_cache_redis_reply() */

void
ngx_llm_cache_metrics_redis_reply(void *server, ngx_str_t *name,
    ngx_msec_t sent, ngx_uint_t ok)
{
    ngx_uint_t                      i;
    ngx_msec_t                      ms;
    ngx_llm_cache_metrics_shm_t    *shm;
    ngx_llm_cache_metrics_redis_t  *mr;

    shm = ngx_llm_cache_metrics_shm();

    if (shm == NULL || !ok) {
        return;
    }

    ms = ngx_current_msec - sent;

    for (i = 0; i < NGX_LLM_CACHE_METRICS_BUCKETS - 1; i++) {
        if (ms <= ngx_llm_cache_metrics_buckets[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&shm->redis_bucket[i], 1);
    (void) ngx_atomic_fetch_add(&shm->redis_replies, 1);
    (void) ngx_atomic_fetch_add(&shm->redis_reply_ms, ms);

    mr = ngx_llm_cache_metrics_redis(shm, server, name);

    if (mr && !mr->ok) {
        mr->ok = 1;
    }
}


void
ngx_llm_cache_metrics_redis_event(void *server, ngx_str_t *name,
    ngx_uint_t event)
{
    ngx_llm_cache_metrics_shm_t    *shm;
    ngx_llm_cache_metrics_redis_t  *mr;

    shm = ngx_llm_cache_metrics_shm();

    if (shm == NULL) {
        return;
    }

    mr = ngx_llm_cache_metrics_redis(shm, server, name);

    if (mr == NULL) {
        return;
    }

    switch (event) {

    case NGX_LLM_CACHE_METRICS_REDIS_CONNECT:
        (void) ngx_atomic_fetch_add(&mr->connects, 1);
        mr->ok = 1;
        break;

    case NGX_LLM_CACHE_METRICS_REDIS_FAILURE:
        (void) ngx_atomic_fetch_add(&mr->failures, 1);
        mr->ok = 0;
        break;

    case NGX_LLM_CACHE_METRICS_REDIS_BREAKER_OPEN:
        (void) ngx_atomic_fetch_add(&mr->breakers, 1);
        break;

    default: /* NGX_LLM_CACHE_METRICS_REDIS_BREAKER_CLOSE */
        (void) ngx_atomic_fetch_add(&mr->breakers, (ngx_atomic_int_t) -1);
        break;
    }
}


/* the first llm_cache_price that matches the request's model */

static ngx_uint_t
ngx_llm_cache_metrics_cost(ngx_llm_cache_main_conf_t *lmcf, ngx_str_t *model,
    ngx_llm_cache_usage_t *usage)
{
    ngx_uint_t              i;
    ngx_llm_cache_price_t  *price;

    if (lmcf->prices == NULL || model->len == 0) {
        return 0;
    }

    price = lmcf->prices->elts;

    for (i = 0; i < lmcf->prices->nelts; i++) {

#if (NGX_PCRE)
        if (price[i].regex) {
            if (ngx_regex_exec(price[i].regex, model, NULL, 0) < 0) {
                continue;
            }

        } else
#endif
        if (price[i].prefix) {
            if (model->len < price[i].model.len
                || ngx_strncmp(model->data, price[i].model.data,
                               price[i].model.len) != 0)
            {
                continue;
            }

        } else if (model->len != price[i].model.len
                   || ngx_strncmp(model->data, price[i].model.data,
                                  model->len) != 0)
        {
            continue;
        }

        /* a price per 1M tokens in millionths is picodollars a token */

        return usage->prompt * price[i].input
               + usage->completion * price[i].output;
    }

    return 0;
}


/*
 * The usage the answer reports, read as it passes (from the capture,
 * so that no copy of the answer is needed).  Every "usage" object is
 * read, a later one's fields replacing an earlier one's: an OpenAI
 * stream's last chunk (stream_options.include_usage), Anthropic's
 * message_start (input) and message_delta (output).  An object split
 * over buffers is carried, up to NGX_LLM_CACHE_USAGE_CARRY bytes, to
 * the next (reading an object twice changes nothing).
 */

#define NGX_LLM_CACHE_USAGE_CARRY  4096

ngx_int_t
ngx_llm_cache_metrics_feed(ngx_pool_t *pool, ngx_llm_cache_ctx_t *ctx,
    u_char *p, size_t len)
{
    size_t   n;
    u_char  *rest, *carry;

    carry = ctx->usage_carry;

    if (ctx->usage_carry_len) {
        n = ngx_min(len, NGX_LLM_CACHE_USAGE_CARRY - ctx->usage_carry_len);

        ngx_memcpy(carry + ctx->usage_carry_len, p, n);
        ctx->usage_carry_len += n;

        rest = ngx_llm_cache_metrics_scan(carry,
                                          carry + ctx->usage_carry_len,
                                          &ctx->usage);

        if (n == len) {
            /* all of this buffer was read behind the carry */

            if (rest == NULL
                || ctx->usage_carry_len == NGX_LLM_CACHE_USAGE_CARRY)
            {
                ctx->usage_carry_len = 0;
                return NGX_OK;
            }

            ctx->usage_carry_len = carry + ctx->usage_carry_len - rest;
            ngx_memmove(carry, rest, ctx->usage_carry_len);

            return NGX_OK;
        }

        ctx->usage_carry_len = 0;
    }

    rest = ngx_llm_cache_metrics_scan(p, p + len, &ctx->usage);

    if (rest == NULL) {
        return NGX_OK;
    }

    if (carry == NULL) {
        carry = ngx_pnalloc(pool, NGX_LLM_CACHE_USAGE_CARRY);
        if (carry == NULL) {
            return NGX_ERROR;
        }

        ctx->usage_carry = carry;
    }

    n = ngx_min((size_t) (p + len - rest), NGX_LLM_CACHE_USAGE_CARRY);

    ngx_memcpy(carry, rest, n);
    ctx->usage_carry_len = n;

    return NGX_OK;
}


/* at the store: the provider's time, from the subrequest's start */

void
ngx_llm_cache_metrics_usage(ngx_http_request_t *sr, ngx_llm_cache_ctx_t *ctx)
{
    ngx_time_t      *tp;
    ngx_msec_int_t   ms;

    tp = ngx_timeofday();

    ms = (ngx_msec_int_t) ((tp->sec - sr->start_sec) * 1000
                           + (tp->msec - sr->start_msec));

    ctx->usage.duration = ngx_max(ms, 0);
}


/* NULL, or where a "usage" object the buffer cuts starts */

static u_char *
ngx_llm_cache_metrics_scan(u_char *p, u_char *end,
    ngx_llm_cache_usage_t *usage)
{
    u_char  *start;

    /* inside a JSON string its quotes would be escaped: a key */

    while (p < end) {
        /* memmem(): the whole answer passes here */
        start = memmem(p, end - p, "\"usage\"", 7);

        if (start == NULL) {
            /* a "usage" the next buffer may complete */

            for (p = ngx_max(p, end - 6); p < end; p++) {
                if (*p == '"' && ngx_strncmp(p, "\"usage\"", end - p) == 0) {
                    return p;
                }
            }

            return NULL;
        }

        p = start;

        for (p += 7; p < end && (*p == ' ' || *p == '\t'); p++) { }

        if (p == end) {
            return start;
        }

        if (*p != ':') {
            continue;
        }

        for (p++; p < end && (*p == ' ' || *p == '\t'); p++) { }

        if (p == end) {
            return start;
        }

        if (*p != '{') {
            continue;     /* "usage":null */
        }

        p = ngx_llm_cache_metrics_scan_usage(p + 1, end, usage);

        if (p == NULL) {
            return start;
        }
    }

    return NULL;
}


/*
 * the object's own numeric token counts; nested objects are skipped;
 * NULL if the buffer ends before the object does
 */

static u_char *
ngx_llm_cache_metrics_scan_usage(u_char *p, u_char *end,
    ngx_llm_cache_usage_t *usage)
{
    u_char      *name;
    size_t       len;
    uint64_t     n;
    ngx_uint_t   depth, digits, *field;

    depth = 1;

    while (p < end) {

        switch (*p) {

        case '{':
        case '[':
            depth++;
            p++;
            continue;

        case '}':
        case ']':
            if (--depth == 0) {
                return p + 1;
            }

            p++;
            continue;

        case '"':
            break;

        default:
            p++;
            continue;
        }

        for (name = ++p; p < end && *p != '"'; p++) {
            if (*p == '\\' && ++p == end) {
                return NULL;
            }
        }

        if (p == end) {
            return NULL;
        }

        len = p - name;

        for (p++; p < end && (*p == ' ' || *p == '\t'); p++) { }

        if (depth != 1 || p == end || *p != ':') {
            continue;
        }

        if ((len == 13 && ngx_strncmp(name, "prompt_tokens", 13) == 0)
            || (len == 12 && ngx_strncmp(name, "input_tokens", 12) == 0))
        {
            field = &usage->prompt;

        } else if ((len == 17
                    && ngx_strncmp(name, "completion_tokens", 17) == 0)
                   || (len == 13
                       && ngx_strncmp(name, "output_tokens", 13) == 0))
        {
            field = &usage->completion;

        } else {
            continue;
        }

        for (p++; p < end && (*p == ' ' || *p == '\t'); p++) { }

        for (n = 0, digits = 0; p < end && *p >= '0' && *p <= '9'; p++) {
            n = n * 10 + (*p - '0');

            if (++digits > 10) {
                break;
            }
        }

        if (digits && digits <= 10 && n <= NGX_MAX_UINT32_VALUE) {
            *field = (ngx_uint_t) n;
        }
    }

    return NULL;
}


char *
ngx_llm_cache_price_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_llm_cache_main_conf_t *lmcf = conf;

    ngx_int_t               n;
    ngx_str_t              *value;
    ngx_uint_t              i;
    ngx_llm_cache_price_t  *price;
#if (NGX_PCRE)
    u_char                  errstr[NGX_MAX_CONF_ERRSTR];
    ngx_regex_compile_t     rc;
#endif

    value = cf->args->elts;

    if (lmcf->prices == NULL) {
        lmcf->prices = ngx_array_create(cf->pool, 4,
                                        sizeof(ngx_llm_cache_price_t));
        if (lmcf->prices == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    price = ngx_array_push(lmcf->prices);
    if (price == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(price, sizeof(ngx_llm_cache_price_t));

    price->model = value[1];

    if (value[1].len == 0 || (value[1].len == 1 && value[1].data[0] == '~')) {
        return "has an empty model";
    }

    if (value[1].data[0] == '~') {
#if (NGX_PCRE)
        ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

        rc.pattern.data = value[1].data + 1;
        rc.pattern.len = value[1].len - 1;
        rc.pool = cf->pool;
        rc.err.len = NGX_MAX_CONF_ERRSTR;
        rc.err.data = errstr;

        if (ngx_regex_compile(&rc) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V", &rc.err);
            return NGX_CONF_ERROR;
        }

        price->regex = rc.regex;
#else
        return "needs PCRE for a regular expression";
#endif

    } else if (value[1].data[value[1].len - 1] == '*') {
        price->prefix = 1;
        price->model.len--;
    }

    /* dollars per 1M tokens, to the millionth: picodollars a token */

    for (i = 2; i < 4; i++) {
        n = ngx_atofp(value[i].data, value[i].len, 6);

        if (n == NGX_ERROR || n > 1000000000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid price \"%V\" in \"llm_cache_price\", "
                               "it must be dollars per 1M tokens, from 0 to "
                               "1000 with 6 decimals at most", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (i == 2) {
            price->input = (ngx_uint_t) n;

        } else {
            price->output = (ngx_uint_t) n;
        }
    }

    return NGX_CONF_OK;
}


/*
 * The model's slot; a label keeps visible ASCII but quotes and
 * backslashes, so that it needs no escaping in either format
 */

static ngx_uint_t
ngx_llm_cache_metrics_slot(ngx_slab_pool_t *shpool,
    ngx_llm_cache_metrics_shm_t *shm, ngx_uint_t limit, ngx_str_t *model)
{
    size_t      len;
    u_char      label[NGX_LLM_CACHE_METRICS_LABEL];
    ngx_uint_t  i, n;

    if (model->len == 0) {
        return NGX_LLM_CACHE_METRICS_NONE;
    }

    len = ngx_min(model->len, NGX_LLM_CACHE_METRICS_LABEL);

    for (i = 0; i < len; i++) {
        label[i] = model->data[i];

        if (label[i] <= 0x20 || label[i] >= 0x7f || label[i] == '"'
            || label[i] == '\\')
        {
            label[i] = '_';
        }
    }

    /*
     * models are only ever appended, and nmodels is published after the
     * name: a known model is found without the mutex, which is taken
     * only to add one
     */

    n = shm->nmodels;

    for (i = 0; i < n; i++) {
        if (shm->model_len[i] == len
            && ngx_memcmp(shm->model[i], label, len) == 0)
        {
            return i;
        }
    }

    ngx_shmtx_lock(&shpool->mutex);

    n = shm->nmodels;

    for (i = 0; i < n; i++) {
        if (shm->model_len[i] == len
            && ngx_memcmp(shm->model[i], label, len) == 0)
        {
            ngx_shmtx_unlock(&shpool->mutex);
            return i;
        }
    }

    if (n >= ngx_min(limit, NGX_LLM_CACHE_METRICS_MAX_MODELS)) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_LLM_CACHE_METRICS_OTHER;
    }

    ngx_memcpy(shm->model[n], label, len);
    shm->model_len[n] = (u_char) len;
    ngx_memory_barrier();
    shm->nmodels = n + 1;

    ngx_shmtx_unlock(&shpool->mutex);

    return n;
}


char *
ngx_llm_cache_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler) {
        return "is duplicate, or the location has another handler";
    }

    clcf->handler = ngx_llm_cache_metrics_handler;

    return NGX_CONF_OK;
}


/*
 * L1: the hits it answered (llm_cache_l1_hits_total) and, per zone, its
 * entries and whether its invalidation channel is up (gauges);
 * "l1":{"hits":N,"zones":{"name":{"entries":N,"up":1}}}, in JSON
 */

static ngx_uint_t
ngx_llm_cache_metrics_l1_zones(ngx_http_request_t *r)
{
    ngx_llm_cache_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_llm_cache_module);

    return lmcf->l1_zones ? lmcf->l1_zones->nelts : 0;
}


static u_char *
ngx_llm_cache_metrics_l1(u_char *p, ngx_llm_cache_metrics_out_t *out)
{
    size_t                      len;
    ngx_uint_t                  i, up, entries;
    ngx_llm_cache_l1_zone_t   **z;
    ngx_llm_cache_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(out->request, ngx_llm_cache_module);
    z = lmcf->l1_zones ? lmcf->l1_zones->elts : NULL;

    if (out->json) {
        p = ngx_sprintf(p, "\"l1\":{\"hits\":%uA,\"zones\":{",
                        out->shm->l1_hits);

        for (i = 0; z && i < lmcf->l1_zones->nelts; i++) {
            len = ngx_min(z[i]->shm_zone->shm.name.len,
                          NGX_LLM_CACHE_METRICS_LABEL);
            up = (z[i]->sh && z[i]->sh->up) ? 1 : 0;

            p = ngx_sprintf(p, "%s\"%*s\":{\"entries\":%ui,\"up\":%ui}",
                            i ? "," : "", len, z[i]->shm_zone->shm.name.data,
                            ngx_llm_cache_l1_entries(z[i]), up);
        }

        return ngx_cpymem(p, "}},", 3);
    }

    p = ngx_llm_cache_metrics_help(p, "llm_cache_l1_hits_total",
                                   "Hits answered from an L1 zone (also "
                                   "counted as HIT requests).", "counter");
    p = ngx_sprintf(p, "llm_cache_l1_hits_total %uA\n", out->shm->l1_hits);

    if (z == NULL) {
        return p;
    }

    for (up = 0; up < 2; up++) {
        p = ngx_llm_cache_metrics_help(p, up ? "llm_cache_l1_up"
                                             : "llm_cache_l1_entries",
                                       up ? "1 if the zone's invalidation "
                                            "channel is subscribed (L1 "
                                            "answers only then)."
                                          : "Entries in the L1 zone.",
                                       "gauge");

        for (i = 0; i < lmcf->l1_zones->nelts; i++) {
            len = ngx_min(z[i]->shm_zone->shm.name.len,
                          NGX_LLM_CACHE_METRICS_LABEL);
            entries = up ? (z[i]->sh && z[i]->sh->up)
                         : ngx_llm_cache_l1_entries(z[i]);

            p = ngx_sprintf(p, "%s{zone=\"%*s\"} %ui\n",
                            up ? "llm_cache_l1_up" : "llm_cache_l1_entries",
                            len, z[i]->shm_zone->shm.name.data, entries);
        }
    }

    return p;
}


static ngx_int_t
ngx_llm_cache_metrics_handler(ngx_http_request_t *r)
{
    size_t                        len;
    u_char                       *p;
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_uint_t                    i, nslots;
    ngx_chain_t                   out;
    ngx_llm_cache_metrics_out_t   o;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_llm_cache_metrics_zone == NULL
        || ngx_llm_cache_metrics_zone->data == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    o.request = r;
    o.shm = ngx_llm_cache_metrics_zone->data;
    o.json = ngx_llm_cache_metrics_wants_json(r);
    o.nmodels = ngx_min(o.shm->nmodels, NGX_LLM_CACHE_METRICS_MAX_MODELS);

    /* every line that can be written, at its longest */

    nslots = o.nmodels + 2;

    len = 64 * NGX_LLM_CACHE_METRICS_LINE
          + nslots * NGX_LLM_CACHE_METRICS_STATUSES
            * NGX_LLM_CACHE_METRICS_LINE;

    for (i = 0; i < 8; i++) {
        len += nslots * NGX_LLM_CACHE_METRICS_LINE;
    }

    len += ngx_llm_cache_metrics_l1_zones(r) * 4 * NGX_LLM_CACHE_METRICS_LINE;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = o.json ? ngx_llm_cache_metrics_json(b->last, &o)
               : ngx_llm_cache_metrics_prometheus(b->last, &o);

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    if (o.json) {
        ngx_str_set(&r->headers_out.content_type, "application/json");

    } else {
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* ?format=json, or an Accept naming application/json */

static ngx_uint_t
ngx_llm_cache_metrics_wants_json(ngx_http_request_t *r)
{
    ngx_str_t         value;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (ngx_http_arg(r, (u_char *) "format", 6, &value) == NGX_OK) {
        return (value.len == 4
                && ngx_strncasecmp(value.data, (u_char *) "json", 4) == 0);
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

        if (ngx_llm_cache_header_is(&h[i].key, "Accept")
            && ngx_strlcasestrn(h[i].value.data,
                                h[i].value.data + h[i].value.len,
                                (u_char *) "application/json", 16 - 1)
               != NULL)
        {
            return 1;
        }
    }

    return 0;
}


static void
ngx_llm_cache_metrics_label(ngx_llm_cache_metrics_out_t *out,
    ngx_uint_t slot, ngx_str_t *label)
{
    if (slot == NGX_LLM_CACHE_METRICS_OTHER) {
        ngx_str_set(label, "other");

    } else if (slot == NGX_LLM_CACHE_METRICS_NONE) {
        ngx_str_set(label, "");

    } else {
        label->data = out->shm->model[slot];
        label->len = out->shm->model_len[slot];
    }
}


/* the slots shown: the named models, then "other", then no model */

#define ngx_llm_cache_metrics_next(out, i)                                   \
    (((i) + 1 == (out)->nmodels) ? NGX_LLM_CACHE_METRICS_OTHER : (i) + 1)

#define ngx_llm_cache_metrics_first(out)                                     \
    ((out)->nmodels ? 0 : NGX_LLM_CACHE_METRICS_OTHER)


static u_char *
ngx_llm_cache_metrics_prometheus(u_char *p, ngx_llm_cache_metrics_out_t *out)
{
    ngx_str_t                      label;
    ngx_uint_t                     i, s;
    ngx_atomic_uint_t              v;
    ngx_llm_cache_metrics_slot_t  *slot;

    p = ngx_cpymem(p, "# HELP llm_cache_requests_total Requests to cached "
                   "locations by cache status and model.\n"
                   "# TYPE llm_cache_requests_total counter\n",
                   sizeof("# HELP llm_cache_requests_total Requests to "
                          "cached locations by cache status and model.\n"
                          "# TYPE llm_cache_requests_total counter\n") - 1);

    for (i = ngx_llm_cache_metrics_first(out);
         i < NGX_LLM_CACHE_METRICS_SLOTS;
         i = ngx_llm_cache_metrics_next(out, i))
    {
        slot = &out->shm->slot[i];
        ngx_llm_cache_metrics_label(out, i, &label);

        for (s = 1; s < NGX_LLM_CACHE_METRICS_STATUSES; s++) {
            v = slot->requests[s];

            if (v == 0) {
                continue;
            }

            p = ngx_sprintf(p, "llm_cache_requests_total{status=\"%V\","
                            "model=\"%V\"} %uA\n",
                            &ngx_llm_cache_metrics_status[s], &label, v);
        }
    }

    p = ngx_llm_cache_metrics_help(p, "llm_cache_tokens_saved_total",
                                   "Tokens that hits did not cost, as the "
                                   "stored answers' usage says.", "counter");

    for (i = ngx_llm_cache_metrics_first(out);
         i < NGX_LLM_CACHE_METRICS_SLOTS;
         i = ngx_llm_cache_metrics_next(out, i))
    {
        slot = &out->shm->slot[i];

        if (slot->prompt == 0 && slot->completion == 0) {
            continue;
        }

        ngx_llm_cache_metrics_label(out, i, &label);

        p = ngx_sprintf(p, "llm_cache_tokens_saved_total{kind=\"prompt\","
                        "model=\"%V\"} %uA\n"
                        "llm_cache_tokens_saved_total{kind=\"completion\","
                        "model=\"%V\"} %uA\n",
                        &label, slot->prompt, &label, slot->completion);
    }

    p = ngx_llm_cache_metrics_help(p, "llm_cache_cost_saved_dollars_total",
                                   "What hits did not cost, at "
                                   "llm_cache_price.", "counter");

    for (i = ngx_llm_cache_metrics_first(out);
         i < NGX_LLM_CACHE_METRICS_SLOTS;
         i = ngx_llm_cache_metrics_next(out, i))
    {
        v = out->shm->slot[i].cost;

        if (v == 0) {
            continue;
        }

        ngx_llm_cache_metrics_label(out, i, &label);

        p = ngx_sprintf(p, "llm_cache_cost_saved_dollars_total{model=\"%V\"}"
                        " %uA.%012uA\n", &label,
                        v / NGX_LLM_CACHE_METRICS_DOLLAR,
                        v % NGX_LLM_CACHE_METRICS_DOLLAR);
    }

    p = ngx_llm_cache_metrics_help(p,
                               "llm_cache_provider_time_saved_seconds_total",
                               "The provider's time for the answers that "
                               "hits replayed.", "counter");

    for (i = ngx_llm_cache_metrics_first(out);
         i < NGX_LLM_CACHE_METRICS_SLOTS;
         i = ngx_llm_cache_metrics_next(out, i))
    {
        v = out->shm->slot[i].time;

        if (v == 0) {
            continue;
        }

        ngx_llm_cache_metrics_label(out, i, &label);

        p = ngx_sprintf(p, "llm_cache_provider_time_saved_seconds_total"
                        "{model=\"%V\"} %uA.%03uA\n", &label,
                        v / 1000, v % 1000);
    }

    p = ngx_llm_cache_metrics_help(p, "llm_cache_semantic_total",
                                   "Semantic look-ups after an exact miss, "
                                   "by result (guard: the nearest entry was "
                                   "refused by a guard).", "counter");

    for (s = 1; s < NGX_LLM_CACHE_METRICS_SEMANTIC; s++) {
        p = ngx_sprintf(p, "llm_cache_semantic_total{result=\"%s\"} %uA\n",
                        ngx_llm_cache_metrics_semantic[s],
                        out->shm->semantic[s]);
    }

    p = ngx_llm_cache_metrics_help(p, "llm_cache_stores_total",
                                   "Provider answers sent to Redis to be "
                                   "stored.", "counter");

    p = ngx_sprintf(p, "llm_cache_stores_total %uA\n",
                    out->shm->store[NGX_LLM_CACHE_STORED]);

    p = ngx_llm_cache_metrics_help(p, "llm_cache_not_stored_total",
                                   "Provider answers to cacheable requests "
                                   "not stored, by reason.", "counter");

    for (s = NGX_LLM_CACHE_NOT_STORED_STATUS;
         s < NGX_LLM_CACHE_STORE_RESULTS;
         s++)
    {
        p = ngx_sprintf(p, "llm_cache_not_stored_total{reason=\"%s\"} %uA\n",
                        ngx_llm_cache_metrics_not_stored[s],
                        out->shm->store[s]);
    }

    v = out->shm->lock_wait_ms;

    p = ngx_llm_cache_metrics_help(p, "llm_cache_lock_waits_total",
                                   "Requests that waited on another's miss "
                                   "(llm_cache_lock).", "counter");
    p = ngx_sprintf(p, "llm_cache_lock_waits_total %uA\n",
                    out->shm->lock_waits);
    p = ngx_llm_cache_metrics_help(p, "llm_cache_lock_wait_seconds_total",
                                   "Time those requests waited.", "counter");
    p = ngx_sprintf(p, "llm_cache_lock_wait_seconds_total %uA.%03uA\n",
                    v / 1000, v % 1000);

    p = ngx_llm_cache_metrics_l1(p, out);

    p = ngx_llm_cache_metrics_help(p, "llm_cache_redis_up",
                                   "1 if the server's last event (a reply, "
                                   "a connection, a failure) was a success.",
                                   "gauge");
    p = ngx_llm_cache_metrics_redis_lines(p, out, "llm_cache_redis_up", 0);

    p = ngx_llm_cache_metrics_help(p, "llm_cache_redis_breakers_open",
                                   "Workers whose circuit breaker for the "
                                   "server is open.", "gauge");
    p = ngx_llm_cache_metrics_redis_lines(p, out,
                                          "llm_cache_redis_breakers_open", 1);

    p = ngx_llm_cache_metrics_help(p, "llm_cache_redis_connects_total",
                                   "Connections set up (reconnects "
                                   "included).", "counter");
    p = ngx_llm_cache_metrics_redis_lines(p, out,
                                          "llm_cache_redis_connects_total", 2);

    p = ngx_llm_cache_metrics_help(p, "llm_cache_redis_failures_total",
                                   "Connections failed or lost, commands "
                                   "timed out.", "counter");
    p = ngx_llm_cache_metrics_redis_lines(p, out,
                                          "llm_cache_redis_failures_total", 3);

    p = ngx_llm_cache_metrics_help(p,
                                   "llm_cache_redis_command_duration_seconds",
                                   "Time from sending a command to its "
                                   "reply, for replies in time.",
                                   "histogram");

    for (s = 0, v = 0; s < NGX_LLM_CACHE_METRICS_BUCKETS; s++) {
        v += out->shm->redis_bucket[s];
        p = ngx_sprintf(p, "llm_cache_redis_command_duration_seconds_bucket"
                        "{le=\"%s\"} %uA\n",
                        ngx_llm_cache_metrics_bucket_le[s], v);
    }

    v = out->shm->redis_reply_ms;

    p = ngx_sprintf(p, "llm_cache_redis_command_duration_seconds_sum "
                    "%uA.%03uA\n"
                    "llm_cache_redis_command_duration_seconds_count %uA\n",
                    v / 1000, v % 1000, out->shm->redis_replies);

    return p;
}


/* one line per server: up, breakers open, connects, failures */

static u_char *
ngx_llm_cache_metrics_redis_lines(u_char *p, ngx_llm_cache_metrics_out_t *out,
    char *metric, ngx_uint_t field)
{
    ngx_uint_t                      i;
    ngx_atomic_int_t                v;
    ngx_llm_cache_metrics_redis_t  *mr;

    for (i = 0; i < NGX_LLM_CACHE_METRICS_REDIS; i++) {
        mr = &out->shm->redis[i];

        if (mr->name_len == 0) {
            continue;
        }

        switch (field) {
        case 0:
            v = mr->ok;
            break;
        case 1:
            v = ngx_max((ngx_atomic_int_t) mr->breakers, 0);
            break;
        case 2:
            v = mr->connects;
            break;
        default:
            v = mr->failures;
            break;
        }

        p = ngx_sprintf(p, "%s{server=\"%*s\"} %A\n", metric,
                        (size_t) mr->name_len, mr->name, v);
    }

    return p;
}


static u_char *
ngx_llm_cache_metrics_help(u_char *p, char *name, char *help, char *type)
{
    return ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n",
                       name, help, name, type);
}


static u_char *
ngx_llm_cache_metrics_json(u_char *p, ngx_llm_cache_metrics_out_t *out)
{
    ngx_str_t                       label;
    ngx_uint_t                      i, s, first, first_model;
    ngx_atomic_uint_t               v;
    ngx_llm_cache_metrics_slot_t   *slot;
    ngx_llm_cache_metrics_redis_t  *mr;

    /* {"requests":{"HIT":{"gpt-4.1-mini":3,...},...}} */

    p = ngx_cpymem(p, "{\"requests\":{", sizeof("{\"requests\":{") - 1);

    for (s = 1, first = 1; s < NGX_LLM_CACHE_METRICS_STATUSES; s++) {
        p = ngx_sprintf(p, "%s\"%V\":{", first ? "" : ",",
                        &ngx_llm_cache_metrics_status[s]);
        first = 0;

        for (i = ngx_llm_cache_metrics_first(out), first_model = 1;
             i < NGX_LLM_CACHE_METRICS_SLOTS;
             i = ngx_llm_cache_metrics_next(out, i))
        {
            v = out->shm->slot[i].requests[s];

            if (v == 0) {
                continue;
            }

            ngx_llm_cache_metrics_label(out, i, &label);

            p = ngx_sprintf(p, "%s\"%V\":%uA", first_model ? "" : ",",
                            &label, v);
            first_model = 0;
        }

        *p++ = '}';
    }

    /* "tokens_saved":{"model":{"prompt":N,"completion":N}}, ... */

    p = ngx_cpymem(p, "},\"tokens_saved\":{",
                   sizeof("},\"tokens_saved\":{") - 1);

    for (i = ngx_llm_cache_metrics_first(out), first = 1;
         i < NGX_LLM_CACHE_METRICS_SLOTS;
         i = ngx_llm_cache_metrics_next(out, i))
    {
        slot = &out->shm->slot[i];

        if (slot->prompt == 0 && slot->completion == 0) {
            continue;
        }

        ngx_llm_cache_metrics_label(out, i, &label);

        p = ngx_sprintf(p, "%s\"%V\":{\"prompt\":%uA,\"completion\":%uA}",
                        first ? "" : ",", &label, slot->prompt,
                        slot->completion);
        first = 0;
    }

    p = ngx_cpymem(p, "},\"cost_saved_dollars\":{",
                   sizeof("},\"cost_saved_dollars\":{") - 1);

    for (i = ngx_llm_cache_metrics_first(out), first = 1;
         i < NGX_LLM_CACHE_METRICS_SLOTS;
         i = ngx_llm_cache_metrics_next(out, i))
    {
        v = out->shm->slot[i].cost;

        if (v == 0) {
            continue;
        }

        ngx_llm_cache_metrics_label(out, i, &label);

        p = ngx_sprintf(p, "%s\"%V\":%uA.%012uA", first ? "" : ",", &label,
                        v / NGX_LLM_CACHE_METRICS_DOLLAR,
                        v % NGX_LLM_CACHE_METRICS_DOLLAR);
        first = 0;
    }

    p = ngx_cpymem(p, "},\"provider_time_saved_seconds\":{",
                   sizeof("},\"provider_time_saved_seconds\":{") - 1);

    for (i = ngx_llm_cache_metrics_first(out), first = 1;
         i < NGX_LLM_CACHE_METRICS_SLOTS;
         i = ngx_llm_cache_metrics_next(out, i))
    {
        v = out->shm->slot[i].time;

        if (v == 0) {
            continue;
        }

        ngx_llm_cache_metrics_label(out, i, &label);

        p = ngx_sprintf(p, "%s\"%V\":%uA.%03uA", first ? "" : ",", &label,
                        v / 1000, v % 1000);
        first = 0;
    }

    p = ngx_sprintf(p, "},\"stores\":%uA,\"not_stored\":{",
                    out->shm->store[NGX_LLM_CACHE_STORED]);

    for (s = NGX_LLM_CACHE_NOT_STORED_STATUS;
         s < NGX_LLM_CACHE_STORE_RESULTS;
         s++)
    {
        p = ngx_sprintf(p, "%s\"%s\":%uA",
                        s == NGX_LLM_CACHE_NOT_STORED_STATUS ? "" : ",",
                        ngx_llm_cache_metrics_not_stored[s],
                        out->shm->store[s]);
    }

    p = ngx_cpymem(p, "},\"semantic\":{", sizeof("},\"semantic\":{") - 1);

    for (s = 1; s < NGX_LLM_CACHE_METRICS_SEMANTIC; s++) {
        p = ngx_sprintf(p, "%s\"%s\":%uA", s == 1 ? "" : ",",
                        ngx_llm_cache_metrics_semantic[s],
                        out->shm->semantic[s]);
    }

    v = out->shm->lock_wait_ms;

    p = ngx_sprintf(p, "},\"lock\":{\"waits\":%uA,\"wait_seconds\":"
                    "%uA.%03uA},", out->shm->lock_waits, v / 1000, v % 1000);

    p = ngx_llm_cache_metrics_l1(p, out);

    p = ngx_cpymem(p, "\"redis\":{\"servers\":{",
                   sizeof("\"redis\":{\"servers\":{") - 1);

    for (i = 0, first = 1; i < NGX_LLM_CACHE_METRICS_REDIS; i++) {
        mr = &out->shm->redis[i];

        if (mr->name_len == 0) {
            continue;
        }

        p = ngx_sprintf(p, "%s\"%*s\":{\"up\":%uA,\"breakers_open\":%A,"
                        "\"connects\":%uA,\"failures\":%uA}",
                        first ? "" : ",", (size_t) mr->name_len, mr->name,
                        mr->ok,
                        ngx_max((ngx_atomic_int_t) mr->breakers, 0),
                        mr->connects, mr->failures);
        first = 0;
    }

    p = ngx_cpymem(p, "},\"command_duration_seconds\":{\"buckets\":{",
                   sizeof("},\"command_duration_seconds\":{\"buckets\":{")
                   - 1);

    for (s = 0, v = 0; s < NGX_LLM_CACHE_METRICS_BUCKETS; s++) {
        v += out->shm->redis_bucket[s];
        p = ngx_sprintf(p, "%s\"%s\":%uA", s ? "," : "",
                        ngx_llm_cache_metrics_bucket_le[s], v);
    }

    v = out->shm->redis_reply_ms;

    p = ngx_sprintf(p, "},\"sum\":%uA.%03uA,\"count\":%uA}}}\n",
                    v / 1000, v % 1000, out->shm->redis_replies);

    return p;
}
