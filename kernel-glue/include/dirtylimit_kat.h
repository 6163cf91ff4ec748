/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * dirtylimit_kat.h - known-answer cases of the dirtylimit C ABI, run by the host-side C check
 * (kernel-glue/hostcheck) against the host build of the same Rust code the kernel links; the
 * kernel itself runs the core's known-answer self-test at boot (lib/dirtylimit).
 *
 * The caller provides dom (dirtylimit_domain_size() bytes) and slots (3 slots), both aligned
 * and exclusively owned for the duration of the call. Returns the number of cases passed, or
 * -1 with *failed set to the name of the first failing case.
 */
#ifndef DIRTYLIMIT_KAT_H
#define DIRTYLIMIT_KAT_H

#include "dirtylimit.h"

#define DL_KAT_SLOTS 3
#define DL_KAT_CHECK(cond, name)                                                               \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			*failed = (name);                                                      \
			return -1;                                                             \
		}                                                                              \
		n++;                                                                           \
	} while (0)

static inline int dirtylimit_kat(void *dom, void *slots, const char **failed)
{
	int n = 0;
	uint64_t t0, t1, t2;
	const uint64_t period = 750; /* 3 s at HZ=250 */
	const uint32_t rd = DIRTYLIMIT_POLICY_REDISTRIBUTE;

	DL_KAT_CHECK(dirtylimit_abi_version() == DIRTYLIMIT_ABI_VERSION, "abi version");
	DL_KAT_CHECK(dirtylimit_domain_size() > 0 && dirtylimit_slot_size() > 0, "sizes");
	DL_KAT_CHECK((dirtylimit_domain_align() & (dirtylimit_domain_align() - 1)) == 0 &&
			     (dirtylimit_slot_align() & (dirtylimit_slot_align() - 1)) == 0,
		     "alignments are powers of two");
	DL_KAT_CHECK(dirtylimit_init((void *)0, slots, DL_KAT_SLOTS, period, rd) == -EINVAL,
		     "init rejects a null domain");
	DL_KAT_CHECK(dirtylimit_init(dom, slots, DL_KAT_SLOTS, 0, rd) == -EINVAL,
		     "init rejects a zero period");
	DL_KAT_CHECK(dirtylimit_init(dom, slots, DL_KAT_SLOTS, period, 2) == -EINVAL,
		     "init rejects an unknown policy");
	DL_KAT_CHECK(dirtylimit_init(dom, slots, DL_KAT_SLOTS, period, rd) == 0, "init");

	/* add/remove: ids are slots, a full domain says -ENOSPC */
	DL_KAT_CHECK(dirtylimit_add(dom) == 0 && dirtylimit_add(dom) == 1 && dirtylimit_add(dom) == 2,
		     "add three");
	DL_KAT_CHECK(dirtylimit_add(dom) == -ENOSPC, "add to a full domain");

	/* invalid settings: -EINVAL, nothing changed */
	DL_KAT_CHECK(dirtylimit_set_max_ratio(dom, 0, 101) == -EINVAL &&
			     dirtylimit_max_ratio_fine(dom, 0) == 1000000,
		     "max_ratio 101 rejected, cap unchanged");
	DL_KAT_CHECK(dirtylimit_set_min_ratio(dom, 0, 60) == 0 &&
			     dirtylimit_min_ratio_fine(dom, 0) == 600000,
		     "min_ratio 60");
	DL_KAT_CHECK(dirtylimit_set_min_ratio(dom, 1, 40) == -EINVAL &&
			     dirtylimit_min_ratio_fine(dom, 1) == 0,
		     "floors summing to 100% rejected");
	DL_KAT_CHECK(dirtylimit_set_max_ratio(dom, 0, 50) == -EINVAL &&
			     dirtylimit_max_ratio_fine(dom, 0) == 1000000,
		     "cap below floor rejected");
	DL_KAT_CHECK(dirtylimit_set_max_ratio_fine(dom, 0, 1000001) == -EINVAL &&
			     dirtylimit_max_ratio_fine(dom, 0) == 1000000,
		     "max_ratio_fine above 10^6 rejected, cap unchanged");
	DL_KAT_CHECK(dirtylimit_set_strict_limit(dom, 7, true) == -ENOENT,
		     "strict_limit of an unknown id");
	DL_KAT_CHECK(dirtylimit_set_min_ratio(dom, 0, 0) == 0, "floor back to 0");
	DL_KAT_CHECK(dirtylimit_set_min_ratio(dom, 7, 1) == -ENOENT &&
			     dirtylimit_set_max_ratio(dom, 7, 1) == -ENOENT,
		     "unknown id");

	/* proportional split: completions 300:100 of T = 1000 pages -> 750:250 */
	dirtylimit_writeout_inc(dom, 0, 300, 10);
	dirtylimit_writeout_inc(dom, 1, 100, 10);
	dirtylimit_update_dirty_limit(dom, 1000);
	t0 = dirtylimit_wb_thresh(dom, 0, 1000, 1000);
	t1 = dirtylimit_wb_thresh(dom, 1, 1000, 1000);
	DL_KAT_CHECK(t0 >= 747 && t0 <= 750 && t1 >= 248 && t1 <= 250, "3:1 split of 1000 pages");

	/* Redistribute: capping id 0 at 50% hands the rest to id 1 (Linux would leave it at 250) */
	DL_KAT_CHECK(dirtylimit_set_max_ratio(dom, 0, 50) == 0, "cap 50%");
	t0 = dirtylimit_wb_thresh(dom, 0, 1000, 1000);
	t1 = dirtylimit_wb_thresh(dom, 1, 1000, 1000);
	DL_KAT_CHECK(t0 >= 498 && t0 <= 500, "capped connection at its cap");
	DL_KAT_CHECK(t1 >= 497 && t0 + t1 <= 1000, "capped share redistributed");

	/* idle floor: no completions, (T - dirty) / 8 while the domain is below T */
	t2 = dirtylimit_wb_thresh(dom, 2, 1000, 200);
	DL_KAT_CHECK(t2 == 100, "idle floor (1000 - 200) / 8");
	DL_KAT_CHECK(dirtylimit_wb_thresh(dom, 2, 1000, 1000) == 0, "no floor at the limit");

	/* aging: periods are declared from the caller's clock */
	DL_KAT_CHECK(dirtylimit_tick(dom, 10 + 5 * period) >= 1, "tick declares passed periods");

	/* remove: the slot is freed and reused */
	DL_KAT_CHECK(dirtylimit_remove(dom, 1) == 0 && dirtylimit_remove(dom, 1) == -ENOENT,
		     "remove once");
	DL_KAT_CHECK(dirtylimit_wb_thresh(dom, 1, 1000, 1000) == 0, "removed id has no threshold");
	DL_KAT_CHECK(dirtylimit_add(dom) == 1, "freed slot reused");

	/* global threshold: 20% of 100001 dirtyable pages in parts per PAGE_SIZE */
	DL_KAT_CHECK(dirtylimit_global_thresh(100000, 0, 0, 20, 0) == 19995, "global thresh 20%");
	DL_KAT_CHECK(dirtylimit_global_thresh(100000, 200000, 50000, 10, 0) == 4992,
		     "reserve above free counts as 0");
	DL_KAT_CHECK(dirtylimit_global_thresh(100000, 0, 0, 20, 4096 * 1000) == 1000,
		     "dirty_bytes wins");
	DL_KAT_CHECK(dirtylimit_global_thresh(100000, 0, 0, 101, 0) == 0, "dirty_ratio 101 rejected");

	/* Linux policy: the share a cap clips off goes to nobody */
	DL_KAT_CHECK(dirtylimit_init(dom, slots, DL_KAT_SLOTS, period, DIRTYLIMIT_POLICY_LINUX) == 0 &&
			     dirtylimit_add(dom) == 0 && dirtylimit_add(dom) == 1,
		     "init with the Linux policy");
	dirtylimit_writeout_inc(dom, 0, 300, 10);
	dirtylimit_writeout_inc(dom, 1, 100, 10);
	dirtylimit_update_dirty_limit(dom, 1000);
	DL_KAT_CHECK(dirtylimit_set_max_ratio(dom, 0, 50) == 0, "Linux: cap 50%");
	t0 = dirtylimit_wb_thresh(dom, 0, 1000, 1000);
	t1 = dirtylimit_wb_thresh(dom, 1, 1000, 1000);
	DL_KAT_CHECK(t0 >= 498 && t0 <= 500 && t1 >= 248 && t1 <= 250,
		     "Linux: capped share allocated to nobody");
	return n;
}

#endif /* DIRTYLIMIT_KAT_H */
