
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


#ifndef _NGX_LLM_CACHE_SEMANTIC_H_INCLUDED_
#define _NGX_LLM_CACHE_SEMANTIC_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * The semantic layer's pure parts (ngx_llm_cache_semantic_index.c, no
 * request, no Redis): embedding replies, SimHash signatures, the Hamming
 * prefilter, exact cosine, guards, and the stored formats.  The request
 * side is ngx_llm_cache_semantic.c.
 */


#define NGX_LLM_CACHE_SEM_SIG_BYTES     32      /* 256-bit SimHash */
#define NGX_LLM_CACHE_SEM_SIG_BITS      256
#define NGX_LLM_CACHE_SEM_ID_BYTES      16
#define NGX_LLM_CACHE_SEM_GUARD_BYTES   16      /* 4 guards x 4 bytes */

/* a ZSET member: id, signature, guard digests, all binary */
#define NGX_LLM_CACHE_SEM_MEMBER_LEN                                          \
    (NGX_LLM_CACHE_SEM_ID_BYTES + NGX_LLM_CACHE_SEM_SIG_BYTES                 \
     + NGX_LLM_CACHE_SEM_GUARD_BYTES)

#define NGX_LLM_CACHE_SEM_MAX_DIMS      8192

/*
 * vectors fetched and compared exactly per look-up, at most: 16 ranked by
 * weights find 99% of what brute force finds (t/019-semantic-core.t)
 */
#define NGX_LLM_CACHE_SEM_CANDIDATES    16

/* the version of the signature planes and formats, part of a partition */
#define NGX_LLM_CACHE_SEM_VERSION       "s1"


/* llm_cache_semantic_guard (a bitmask; 0x0001 is NGX_CONF_BITMASK_SET) */
#define NGX_LLM_CACHE_SEM_GUARD_OFF        0x0002
#define NGX_LLM_CACHE_SEM_GUARD_NUMBERS    0x0004
#define NGX_LLM_CACHE_SEM_GUARD_NEGATION   0x0008
#define NGX_LLM_CACHE_SEM_GUARD_ENTITIES   0x0010
#define NGX_LLM_CACHE_SEM_GUARD_STRICT     0x0020


typedef struct {
    ngx_uint_t                     dims;
    float                         *v;        /* unit length */
} ngx_llm_cache_sem_vector_t;


typedef struct {
    u_char                         id[NGX_LLM_CACHE_SEM_ID_BYTES];
    u_char                         sig[NGX_LLM_CACHE_SEM_SIG_BYTES];
    u_char                         guard[NGX_LLM_CACHE_SEM_GUARD_BYTES];
} ngx_llm_cache_sem_member_t;


/*
 * An OpenAI-compatible /v1/embeddings reply: data[0].embedding, an array
 * of numbers or (encoding_format "base64") little-endian float32s.
 * NGX_OK with a unit vector in pool memory; NGX_DECLINED with the reason
 * in error for a reply that is not one (malformed, an error object, no
 * data, non-finite or all-zero values, more than NGX_LLM_CACHE_SEM_MAX_DIMS,
 * or not dims values when dims is not 0); NGX_ERROR on no memory.
 */
ngx_int_t ngx_llm_cache_sem_parse_embedding(ngx_pool_t *pool, u_char *p,
    size_t len, ngx_uint_t dims, ngx_llm_cache_sem_vector_t *vec,
    ngx_str_t *error);

/*
 * The 256-bit random-hyperplane signature (Charikar): bit i is the sign
 * of the dot product with plane i.  The planes are a pure function of
 * (NGX_LLM_CACHE_SEM_VERSION, dims), the same in every worker and every
 * nginx, generated once per dims and kept for the worker's life.
 */
ngx_int_t ngx_llm_cache_sem_signature(ngx_llm_cache_sem_vector_t *vec,
    u_char *sig);

/*
 * The same, and the query's weights for the ranking of candidates
 * (NGX_LLM_CACHE_SEM_SIG_BITS floats: how far the vector is from each
 * plane)
 */
ngx_int_t ngx_llm_cache_sem_signature_weights(ngx_llm_cache_sem_vector_t *vec,
    u_char *sig, float *weights);

ngx_uint_t ngx_llm_cache_sem_hamming(u_char *a, u_char *b);

/*
 * The largest Hamming distance kept by the prefilter for a similarity
 * threshold: a pair at exactly the threshold passes with probability at
 * least 0.999, so the prefilter costs misses only, never false hits
 */
ngx_uint_t ngx_llm_cache_sem_max_hamming(double threshold);

double ngx_llm_cache_sem_cosine(float *a, float *b, ngx_uint_t dims);

/*
 * The guard digests of a text (NGX_LLM_CACHE_SEM_GUARD_BYTES): 4 bytes
 * each for its numbers, negations/polarity words, entities and content
 * words, each the hash of a sorted, case-folded multiset, always all four
 * (so that changing llm_cache_semantic_guard needs no re-indexing).
 * English only; they only fail safe: a difference is a miss.
 */
void ngx_llm_cache_sem_guard_digest(u_char *text, size_t len,
    u_char *digest);

/* the guards of the mask (NGX_LLM_CACHE_SEM_GUARD_*) that differ, or 0 */
ngx_uint_t ngx_llm_cache_sem_guard_differ(u_char *a, u_char *b,
    ngx_uint_t guards);

/* NGX_LLM_CACHE_SEM_MEMBER_LEN bytes; decode: NGX_OK or NGX_DECLINED */
void ngx_llm_cache_sem_member_encode(ngx_llm_cache_sem_member_t *m,
    u_char *out);
ngx_int_t ngx_llm_cache_sem_member_decode(u_char *p, size_t len,
    ngx_llm_cache_sem_member_t *m);

/*
 * The prefilter: of the n members (ZSET members as Redis returned them,
 * malformed ones skipped), the indices of at most max_out (64 at most)
 * whose signature is within max_hamming of sig, nearest first.  Guards are
 * not looked at here: the caller tells a guard rejection from a plain miss.
 */
ngx_uint_t ngx_llm_cache_sem_candidates(u_char *sig, ngx_str_t *members,
    ngx_uint_t n, ngx_uint_t max_hamming, ngx_uint_t *out,
    ngx_uint_t max_out);

/*
 * The same filter (Hamming distance within max_hamming), the candidates
 * ranked by the query's weights (ngx_llm_cache_sem_signature_weights()):
 * the sum of the weights of the bits that differ.  Where many stored
 * vectors crowd around the threshold, 8 candidates by Hamming distance
 * find 96-99% of what brute force finds, 16 ranked so 99% and more
 * (t/019-semantic-core.t)
 */
ngx_uint_t ngx_llm_cache_sem_candidates_weighted(u_char *sig, float *weights,
    ngx_str_t *members, ngx_uint_t n, ngx_uint_t max_hamming,
    ngx_uint_t *out, ngx_uint_t max_out);

/*
 * A vector entry (the value under P{pid}:e:<id>): the exact-layer key it
 * answers from and the vector as float32s: "LLMS1 <dims> <key length>\n",
 * the key, dims little-endian float32s.  Decode checks the format and
 * that the entry has dims values (any number when dims is 0), all finite;
 * the vector is copied into pool memory (alignment) and the key points
 * into p.  Encode: NGX_OK or NGX_ERROR; decode: NGX_OK, NGX_DECLINED (not
 * an entry) or NGX_ERROR (no memory).
 */
ngx_int_t ngx_llm_cache_sem_entry_encode(ngx_pool_t *pool,
    ngx_llm_cache_sem_vector_t *vec, ngx_str_t *key, ngx_str_t *out);
ngx_int_t ngx_llm_cache_sem_entry_decode(ngx_pool_t *pool, u_char *p,
    size_t len, ngx_uint_t dims, ngx_str_t *key,
    ngx_llm_cache_sem_vector_t *vec);


#endif /* _NGX_LLM_CACHE_SEMANTIC_H_INCLUDED_ */
