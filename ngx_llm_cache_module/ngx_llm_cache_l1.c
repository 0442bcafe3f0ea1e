
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * L1: the entries Redis gave or took lately, kept in a shared memory zone
 * that every worker of this nginx reads (a slab pool, an rbtree keyed by
 * a murmur hash of the cache key with the whole key compared, an LRU
 * queue: the layout of nginx's own cache keys zone).  An entry holds the bytes
 * Redis holds, so an L1 hit is answered by the very code of a Redis hit.
 * It dies with the Redis entry's ttl (created + ttl, capped by the zone's
 * ttl=), and at once when Redis says the key changed
 * (ngx_llm_cache_l1_tracking.c); while that channel is down L1 answers
 * nothing.  A full zone evicts from the LRU tail; a zone that still has
 * no room skips the fill: L1 never fails a request.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_module.h"
#include "ngx_llm_cache_l1.h"


/* how many LRU entries a fill may evict before it gives up */
#define NGX_LLM_CACHE_L1_EVICT_TRIES  8


static ngx_int_t ngx_llm_cache_l1_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_llm_cache_l1_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_llm_cache_l1_node_t *ngx_llm_cache_l1_find(
    ngx_llm_cache_l1_sh_t *sh, uint32_t hash, u_char *key, size_t len);
static void ngx_llm_cache_l1_free_node(ngx_llm_cache_l1_zone_t *z,
    ngx_llm_cache_l1_node_t *n);


/*
 * NGX_DECLINED: not in L1 (or L1 is not answering), the look-up goes on
 * to Redis; else the request's final code, the entry sent as a HIT.
 */

ngx_int_t
ngx_llm_cache_l1_lookup(ngx_http_request_t *r, void *data)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    uint32_t                   hash;
    ngx_int_t                  rc;
    ngx_str_t                  value;
    ngx_llm_cache_l1_sh_t     *sh;
    ngx_llm_cache_l1_node_t   *n;
    ngx_llm_cache_l1_zone_t   *z;
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);
    z = lcf->l1;
    sh = z->sh;

    hash = ngx_murmur_hash2(ctx->key.data, ctx->key.len);

    value.data = NULL;
    value.len = 0;

    ngx_shmtx_lock(&z->shpool->mutex);

    /* a fill after this look-up is only good if nothing changed since */

    ctx->l1_seq = sh->seq[hash % NGX_LLM_CACHE_L1_BUCKETS];
    ctx->l1_fill = sh->up;

    n = sh->up ? ngx_llm_cache_l1_find(sh, hash, ctx->key.data, ctx->key.len)
               : NULL;

    if (n) {
        if (n->expire <= ngx_time()) {
            ngx_llm_cache_l1_free_node(z, n);
            n = NULL;

        } else {
            ngx_queue_remove(&n->queue);
            ngx_queue_insert_head(&sh->lru, &n->queue);

            value.data = ngx_pnalloc(r->pool, n->value_len);

            if (value.data) {
                value.len = n->value_len;
                ngx_memcpy(value.data, n->data + n->key_len, n->value_len);
            }
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    if (value.data == NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "llm_cache: l1 miss \"%V\"", &ctx->key);
        return NGX_DECLINED;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llm_cache: l1 hit \"%V\"", &ctx->key);

    ctx->tier = NGX_LLM_CACHE_TIER_L1;

    rc = ngx_llm_cache_send_entry(r, ctx, &value, NGX_LLM_CACHE_STATUS_HIT);

    if (rc == NGX_DECLINED) {
        /* never stored so: Redis decides what to do with it */
        ctx->tier = NGX_LLM_CACHE_TIER_NONE;
        ctx->l1_fill = 0;
        ngx_llm_cache_l1_remove(z, ctx->key.data, ctx->key.len);
        return NGX_DECLINED;
    }

    return rc;
}


/* before a store: the fill that follows it needs the bucket's count */

void
ngx_llm_cache_l1_snapshot(ngx_http_request_t *r, void *data)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    uint32_t                   hash;
    ngx_llm_cache_l1_zone_t   *z;
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);
    z = lcf->l1;

    if (z == NULL) {
        return;
    }

    hash = ngx_murmur_hash2(ctx->key.data, ctx->key.len);

    ngx_shmtx_lock(&z->shpool->mutex);
    ctx->l1_seq = z->sh->seq[hash % NGX_LLM_CACHE_L1_BUCKETS];
    ctx->l1_fill = z->sh->up;
    ngx_shmtx_unlock(&z->shpool->mutex);
}


/*
 * An entry Redis gave (or was given) goes into L1, unless an invalidation
 * for its bucket came after the look-up began (the value may be older
 * than what Redis has now), it is over max_entry, or it is expired.
 */

void
ngx_llm_cache_l1_fill(ngx_http_request_t *r, void *data, ngx_str_t *value)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    size_t                     size;
    time_t                     created, ttl, expire, now;
    uint32_t                   hash;
    ngx_uint_t                 i;
    ngx_llm_cache_entry_t      e;
    ngx_llm_cache_l1_sh_t     *sh;
    ngx_llm_cache_l1_node_t   *n;
    ngx_llm_cache_l1_zone_t   *z;
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);
    z = lcf->l1;

    if (z == NULL || !ctx->l1_fill || ctx->key.len == 0) {
        return;
    }

    ctx->l1_fill = 0;

    if (value->len > z->max_entry) {
        return;
    }

    if (ngx_llm_cache_entry_parse(value->data, value->len, &e) != NGX_OK) {
        return;
    }

    created = e.created;
    ttl = e.ttl;

    now = ngx_time();
    expire = now + z->ttl;

    /* no ttl in the entry (LLMC1, LLMC2): the zone's ttl= alone */

    if (ttl && created + ttl < expire) {
        expire = created + ttl;
    }

    if (expire <= now) {
        return;
    }

    hash = ngx_murmur_hash2(ctx->key.data, ctx->key.len);
    size = offsetof(ngx_llm_cache_l1_node_t, data) + ctx->key.len
           + value->len;

    sh = z->sh;

    ngx_shmtx_lock(&z->shpool->mutex);

    if (!sh->up || sh->seq[hash % NGX_LLM_CACHE_L1_BUCKETS] != ctx->l1_seq) {
        ngx_shmtx_unlock(&z->shpool->mutex);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "llm_cache: l1 fill of \"%V\" dropped: changed",
                       &ctx->key);
        return;
    }

    n = ngx_llm_cache_l1_find(sh, hash, ctx->key.data, ctx->key.len);
    if (n) {
        ngx_llm_cache_l1_free_node(z, n);
    }

    n = ngx_slab_alloc_locked(z->shpool, size);

    for (i = 0; n == NULL && i < NGX_LLM_CACHE_L1_EVICT_TRIES; i++) {

        if (ngx_queue_empty(&sh->lru)) {
            break;
        }

        ngx_llm_cache_l1_free_node(z,
            ngx_queue_data(ngx_queue_last(&sh->lru), ngx_llm_cache_l1_node_t,
                           queue));

        n = ngx_slab_alloc_locked(z->shpool, size);
    }

    if (n == NULL) {
        ngx_shmtx_unlock(&z->shpool->mutex);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "llm_cache: l1 has no room for \"%V\", %uz bytes",
                       &ctx->key, size);
        return;
    }

    n->node.key = hash;
    n->expire = expire;
    n->key_len = ctx->key.len;
    n->value_len = value->len;
    ngx_memcpy(n->data, ctx->key.data, ctx->key.len);
    ngx_memcpy(n->data + ctx->key.len, value->data, value->len);

    ngx_rbtree_insert(&sh->rbtree, &n->node);
    ngx_queue_insert_head(&sh->lru, &n->queue);
    sh->entries++;

    ngx_shmtx_unlock(&z->shpool->mutex);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llm_cache: l1 fill \"%V\" for %T s", &ctx->key,
                   expire - now);
}


/* Redis said the key changed (the channel's worker) */

void
ngx_llm_cache_l1_remove(ngx_llm_cache_l1_zone_t *z, u_char *key, size_t len)
{
    uint32_t                  hash;
    ngx_llm_cache_l1_node_t  *n;

    hash = ngx_murmur_hash2(key, len);

    ngx_shmtx_lock(&z->shpool->mutex);

    z->sh->seq[hash % NGX_LLM_CACHE_L1_BUCKETS]++;

    n = ngx_llm_cache_l1_find(z->sh, hash, key, len);
    if (n) {
        ngx_llm_cache_l1_free_node(z, n);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


/* everything goes, and L1 answers again only if the channel is up */

void
ngx_llm_cache_l1_flush(ngx_llm_cache_l1_zone_t *z, ngx_uint_t up)
{
    ngx_uint_t              i;
    ngx_queue_t            *q;
    ngx_llm_cache_l1_sh_t  *sh;

    sh = z->sh;

    ngx_shmtx_lock(&z->shpool->mutex);

    while (!ngx_queue_empty(&sh->lru)) {
        q = ngx_queue_last(&sh->lru);
        ngx_llm_cache_l1_free_node(z,
            ngx_queue_data(q, ngx_llm_cache_l1_node_t, queue));
    }

    /* the look-ups under way when it changed must not fill */

    for (i = 0; i < NGX_LLM_CACHE_L1_BUCKETS; i++) {
        sh->seq[i]++;
    }

    sh->up = up;

    ngx_shmtx_unlock(&z->shpool->mutex);
}


ngx_uint_t
ngx_llm_cache_l1_entries(ngx_llm_cache_l1_zone_t *z)
{
    return z->sh ? z->sh->entries : 0;
}


static ngx_llm_cache_l1_node_t *
ngx_llm_cache_l1_find(ngx_llm_cache_l1_sh_t *sh, uint32_t hash, u_char *key,
    size_t len)
{
    ngx_int_t                 rc;
    ngx_rbtree_node_t        *node, *sentinel;
    ngx_llm_cache_l1_node_t  *n;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        n = (ngx_llm_cache_l1_node_t *) node;

        rc = ngx_memn2cmp(key, n->data, len, n->key_len);

        if (rc == 0) {
            return n;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_llm_cache_l1_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t        **p;
    ngx_llm_cache_l1_node_t   *n, *t;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            n = (ngx_llm_cache_l1_node_t *) node;
            t = (ngx_llm_cache_l1_node_t *) temp;

            p = (ngx_memn2cmp(n->data, t->data, n->key_len, t->key_len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static void
ngx_llm_cache_l1_free_node(ngx_llm_cache_l1_zone_t *z,
    ngx_llm_cache_l1_node_t *n)
{
    ngx_queue_remove(&n->queue);
    ngx_rbtree_delete(&z->sh->rbtree, &n->node);
    ngx_slab_free_locked(z->shpool, n);
    z->sh->entries--;
}


static ngx_int_t
ngx_llm_cache_l1_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_llm_cache_l1_zone_t  *ozone = data;

    size_t                    len;
    ngx_llm_cache_l1_zone_t  *z;

    z = shm_zone->data;

    if (ozone) {
        /* a reload: the entries stay, the channel too */
        z->sh = ozone->sh;
        z->shpool = ozone->shpool;
        return NGX_OK;
    }

    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        z->sh = z->shpool->data;
        return NGX_OK;
    }

    z->sh = ngx_slab_calloc(z->shpool, sizeof(ngx_llm_cache_l1_sh_t));
    if (z->sh == NULL) {
        return NGX_ERROR;
    }

    z->shpool->data = z->sh;

    ngx_rbtree_init(&z->sh->rbtree, &z->sh->sentinel,
                    ngx_llm_cache_l1_rbtree_insert);
    ngx_queue_init(&z->sh->lru);

    len = sizeof(" in llm_cache_l1_zone \"\"") + shm_zone->shm.name.len;

    z->shpool->log_ctx = ngx_slab_alloc(z->shpool, len);
    if (z->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(z->shpool->log_ctx, " in llm_cache_l1_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is normal: eviction, not an [alert] */
    z->shpool->log_nomem = 0;

    return NGX_OK;
}


/* llm_cache_l1_zone name:size [max_entry=size] [ttl=time] */

char *
ngx_llm_cache_l1_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_llm_cache_main_conf_t *lmcf = conf;

    u_char                    *p;
    size_t                     size, max_entry;
    time_t                     ttl;
    ngx_str_t                 *value, name, s;
    ngx_uint_t                 i;
    ngx_shm_zone_t            *shm_zone;
    ngx_llm_cache_l1_zone_t   *z, **zp;

    value = cf->args->elts;

    p = (u_char *) ngx_strchr(value[1].data, ':');

    if (p == NULL || p == value[1].data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\", expected name:size",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - value[1].data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == (size_t) NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < 8 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small", &value[1]);
        return NGX_CONF_ERROR;
    }

    max_entry = 256 * 1024;
    ttl = 3600;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "max_entry=", 10) == 0) {
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;

            max_entry = ngx_parse_size(&s);

            if (max_entry == (size_t) NGX_ERROR || max_entry == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid max_entry \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            ttl = ngx_parse_time(&s, 1);

            if (ttl == (time_t) NGX_ERROR || ttl == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid ttl \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size, &ngx_llm_cache_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    z = ngx_pcalloc(cf->pool, sizeof(ngx_llm_cache_l1_zone_t));
    if (z == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_array_init(&z->prefixes, cf->pool, 2, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    z->shm_zone = shm_zone;
    z->max_entry = max_entry;
    z->ttl = ttl;

    shm_zone->init = ngx_llm_cache_l1_init_zone;
    shm_zone->data = z;

    if (lmcf->l1_zones == NULL) {
        lmcf->l1_zones = ngx_array_create(cf->pool, 2,
                                          sizeof(ngx_llm_cache_l1_zone_t *));
        if (lmcf->l1_zones == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    zp = ngx_array_push(lmcf->l1_zones);
    if (zp == NULL) {
        return NGX_CONF_ERROR;
    }

    *zp = z;

    return NGX_CONF_OK;
}


/* llm_cache_l1 name | off: the zone is looked up when merged */

char *
ngx_llm_cache_l1_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_llm_cache_loc_conf_t *lcf = conf;

    ngx_str_t  *value;

    if (lcf->l1 != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        lcf->l1 = NULL;
        return NGX_CONF_OK;
    }

    lcf->l1_name = value[1];

    /* a reference: the zone may be declared further down */

    lcf->l1 = ngx_shared_memory_add(cf, &value[1], 0, &ngx_llm_cache_module);
    if (lcf->l1 == NULL) {
        return NGX_CONF_ERROR;
    }

    lcf->l1_ref = 1;

    return NGX_CONF_OK;
}


/* the location's zone, its Redis and its key prefix */

char *
ngx_llm_cache_l1_merge(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_llm_cache_loc_conf_t *prev = parent;
    ngx_llm_cache_loc_conf_t *conf = child;

    ngx_str_t                *pfx;
    ngx_uint_t                i;
    ngx_shm_zone_t           *shm_zone;
    ngx_llm_cache_l1_zone_t  *z;

    if (conf->l1 == NGX_CONF_UNSET_PTR) {
        conf->l1 = prev->l1;
        conf->l1_name = prev->l1_name;
        conf->l1_ref = prev->l1_ref;
    }

    if (conf->l1 == NGX_CONF_UNSET_PTR) {
        conf->l1 = NULL;
    }

    if (conf->l1 == NULL) {
        return NGX_CONF_OK;
    }

    if (conf->l1_ref) {
        /* still the shm zone: the whole http block is parsed by now */

        shm_zone = conf->l1;

        if (shm_zone->data == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown llm_cache_l1_zone \"%V\"",
                               &conf->l1_name);
            return NGX_CONF_ERROR;
        }

        conf->l1 = shm_zone->data;
        conf->l1_ref = 0;

        if (prev->l1 == shm_zone) {
            prev->l1 = conf->l1;
            prev->l1_ref = 0;
        }
    }

    if (conf->redis == NULL || !conf->enable) {
        return NGX_CONF_OK;
    }

    z = conf->l1;

    if (z->redis && z->redis != conf->redis) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "llm_cache_l1_zone \"%V\" is used with two "
                           "different llm_cache_redis servers",
                           &z->shm_zone->shm.name);
        return NGX_CONF_ERROR;
    }

    z->redis = conf->redis;

    pfx = z->prefixes.elts;

    for (i = 0; i < z->prefixes.nelts; i++) {
        if (pfx[i].len == conf->key_prefix.len
            && ngx_strncmp(pfx[i].data, conf->key_prefix.data,
                           pfx[i].len) == 0)
        {
            return NGX_CONF_OK;
        }
    }

    pfx = ngx_array_push(&z->prefixes);
    if (pfx == NULL) {
        return NGX_CONF_ERROR;
    }

    *pfx = conf->key_prefix;

    return NGX_CONF_OK;
}
