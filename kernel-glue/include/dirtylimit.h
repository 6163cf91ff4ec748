/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * dirtylimit.h - C view of the dirtylimit core (kernel-glue/ffi, Rust).
 *
 * Memory and locking belong to the caller: allocate nr slots of dirtylimit_slot_size() bytes
 * (aligned to dirtylimit_slot_align()) and one blob of dirtylimit_domain_size() bytes (aligned
 * to dirtylimit_domain_align()), call dirtylimit_init() once, then make every other call with
 * the caller's lock held. Nothing here allocates, sleeps or takes a lock; every call is O(1)
 * except dirtylimit_tick() on a period boundary, settings changes, add/remove and a changed
 * dirtylimit_update_dirty_limit(), which are O(n) in the number of live connections.
 *
 * The domain uses the core's Redistribute policy (weighted water-filling of the share left
 * by capped connections) with the idle-connection floor.
 */
#ifndef DIRTYLIMIT_H
#define DIRTYLIMIT_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stddef.h>
#include <stdint.h>
#endif

#define DIRTYLIMIT_ABI_VERSION 1

uint32_t dirtylimit_abi_version(void);
size_t dirtylimit_domain_size(void);
size_t dirtylimit_domain_align(void);
size_t dirtylimit_slot_size(void);
size_t dirtylimit_slot_align(void);

/* 0, or -EINVAL (null/misaligned pointer, zero period). period_len is in the unit of "now". */
int dirtylimit_init(void *dom, void *slots, size_t nr, uint64_t period_len);

/* Connection id (>= 0), or -ENOSPC when every slot is in use. */
int dirtylimit_add(void *dom);
/* 0, or -ENOENT. */
int dirtylimit_remove(void *dom, uint32_t id);

/*
 * Floor / cap in percent of the domain threshold: 0, -EINVAL (out of range, min above max,
 * floors summing to 100% or more; the domain is left unchanged), or -ENOENT.
 */
int dirtylimit_set_min_ratio(void *dom, uint32_t id, uint32_t percent);
int dirtylimit_set_max_ratio(void *dom, uint32_t id, uint32_t percent);
/* In parts per million (>= 0), or a negative errno. */
int64_t dirtylimit_min_ratio_fine(const void *dom, uint32_t id);
int64_t dirtylimit_max_ratio_fine(const void *dom, uint32_t id);

/* nr pages of connection id finished writeback at time now. O(1). */
void dirtylimit_writeout_inc(void *dom, uint32_t id, uint64_t nr, uint64_t now);
/* Declares the aging periods that ended by now; returns how many. */
uint32_t dirtylimit_tick(void *dom, uint64_t now);
/* The domain threshold (pages) the water level is computed for. */
void dirtylimit_update_dirty_limit(void *dom, uint64_t thresh);
/* Connection id's threshold in pages, domain threshold thresh, dirty pages in the domain. */
uint64_t dirtylimit_wb_thresh(const void *dom, uint32_t id, uint64_t thresh, uint64_t dirty);

/*
 * Global dirty threshold in pages (domain_dirty_limits() of global_dirtyable_memory()) from
 * free pages, totalreserve_pages, file LRU pages and vm.dirty_ratio / vm.dirty_bytes
 * (dirty_bytes wins when non-zero). 0 for out-of-range settings.
 */
uint64_t dirtylimit_global_thresh(uint64_t free, uint64_t totalreserve, uint64_t file_lru,
				  uint32_t dirty_ratio, uint64_t dirty_bytes);

/* The core's known-answer cases: number passed (> 0), or -1 with the failing name in buf. */
int dirtylimit_selftest(char *buf, size_t len);

/* Provided by the caller: a Rust panic happened at file:line. Must not return. */
void dirtylimit_panic_hook(const char *file, size_t len, uint32_t line) __attribute__((noreturn));

#endif /* DIRTYLIMIT_H */
