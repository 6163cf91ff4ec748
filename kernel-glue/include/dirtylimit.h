/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * dirtylimit.h - C interface of the dirtylimit core (a Rust object built by the
 * dirtylimit project's kernel-glue/ffi).
 *
 * A domain splits a dirty threshold among devices (backing devices, FUSE connections) in
 * proportion to their recent writeback completions, aged in periods, within per-device floors
 * and caps, the way __wb_calc_thresh() does; with DIRTYLIMIT_POLICY_REDISTRIBUTE the share that
 * the caps clip off goes to the uncapped devices (weighted water-filling) instead of nobody.
 *
 * Memory and locking belong to the caller: allocate nr slots of dirtylimit_slot_size() bytes
 * (aligned to dirtylimit_slot_align()) and one struct dirtylimit_domain of
 * dirtylimit_domain_size() bytes (aligned to dirtylimit_domain_align()), call dirtylimit_init()
 * once, then make every other call with the caller's lock held. Nothing here allocates, sleeps,
 * takes a lock or can panic; every call is O(1) except dirtylimit_tick() on a period boundary,
 * settings changes, add/remove and a changed dirtylimit_update_dirty_limit(), which are O(n) in
 * the number of live devices.
 */
#ifndef DIRTYLIMIT_H
#define DIRTYLIMIT_H

#include <linux/types.h>

#define DIRTYLIMIT_ABI_VERSION 2

/* Policies for dirtylimit_init(). */
#define DIRTYLIMIT_POLICY_LINUX		0
#define DIRTYLIMIT_POLICY_REDISTRIBUTE	1

/* Opaque: dirtylimit_domain_size() bytes owned by the caller. */
struct dirtylimit_domain;

u32 dirtylimit_abi_version(void);
size_t dirtylimit_domain_size(void);
size_t dirtylimit_domain_align(void);
size_t dirtylimit_slot_size(void);
size_t dirtylimit_slot_align(void);

/*
 * 0, or -EINVAL (null/misaligned pointer, zero period, unknown policy; nothing written).
 * period_len is in the unit of "now". Both policies apply the idle-device floor.
 */
int dirtylimit_init(struct dirtylimit_domain *dom, void *slots, size_t nr, u64 period_len,
		    u32 policy);

/* Connection id (>= 0), or -ENOSPC when every slot is in use. */
int dirtylimit_add(struct dirtylimit_domain *dom);
/* 0, or -ENOENT. */
int dirtylimit_remove(struct dirtylimit_domain *dom, u32 id);

/*
 * Floor / cap in percent of the domain threshold: 0, -EINVAL (out of range, min above max,
 * floors summing to 100% or more; the domain is left unchanged), or -ENOENT.
 */
int dirtylimit_set_min_ratio(struct dirtylimit_domain *dom, u32 id, u32 percent);
int dirtylimit_set_max_ratio(struct dirtylimit_domain *dom, u32 id, u32 percent);
/* The same in parts per million (min_ratio_fine / max_ratio_fine). */
int dirtylimit_set_min_ratio_fine(struct dirtylimit_domain *dom, u32 id, u32 ppm);
int dirtylimit_set_max_ratio_fine(struct dirtylimit_domain *dom, u32 id, u32 ppm);
/* bdi_set_strict_limit(): idle floor (thresh - dirty) / 100 instead of / 8. 0, or -ENOENT. */
int dirtylimit_set_strict_limit(struct dirtylimit_domain *dom, u32 id, bool on);
/* In parts per million (>= 0), or a negative errno. */
s64 dirtylimit_min_ratio_fine(const struct dirtylimit_domain *dom, u32 id);
s64 dirtylimit_max_ratio_fine(const struct dirtylimit_domain *dom, u32 id);

/* nr pages of connection id finished writeback at time now. O(1). */
void dirtylimit_writeout_inc(struct dirtylimit_domain *dom, u32 id, u64 nr, u64 now);
/* Declares the aging periods that ended by now; returns how many. */
u32 dirtylimit_tick(struct dirtylimit_domain *dom, u64 now);
/* The domain threshold (pages) the water level is computed for. */
void dirtylimit_update_dirty_limit(struct dirtylimit_domain *dom, u64 thresh);
/* Connection id's threshold in pages, domain threshold thresh, dirty pages in the domain. */
u64 dirtylimit_wb_thresh(const struct dirtylimit_domain *dom, u32 id, u64 thresh, u64 dirty);

/*
 * Global dirty threshold in pages (domain_dirty_limits() of global_dirtyable_memory()) from
 * free pages, totalreserve_pages, file LRU pages and vm.dirty_ratio / vm.dirty_bytes
 * (dirty_bytes wins when non-zero). 0 for out-of-range settings.
 */
u64 dirtylimit_global_thresh(u64 free, u64 totalreserve, u64 file_lru, u32 dirty_ratio,
			     u64 dirty_bytes);

/* The core's known-answer cases: number passed (> 0), or -1 with the failing name in buf. */
int dirtylimit_selftest(char *buf, size_t len);

#endif /* DIRTYLIMIT_H */
