/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* The kernel types <linux/dirtylimit.h> uses, for the host-side check. */
#ifndef HOSTCHECK_LINUX_TYPES_H
#define HOSTCHECK_LINUX_TYPES_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
typedef uint32_t u32;
typedef uint64_t u64;
typedef int64_t s64;
#endif
