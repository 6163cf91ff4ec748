// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Host-side check of the dirtylimit C ABI: the core's known-answer self-test (which the kernel
 * runs at boot) and the ABI cases of dirtylimit_kat.h, linked against the ffi crate built for
 * the host.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dirtylimit.h"
#include "dirtylimit_kat.h"

/* Called by the host build's Rust panic handler (the kernel object has no panic path). */
void dirtylimit_panic_hook(const char *file, size_t len, uint32_t line) __attribute__((noreturn));

void dirtylimit_panic_hook(const char *file, size_t len, uint32_t line)
{
	fprintf(stderr, "hostcheck: Rust panic at %.*s:%u\n", (int)len, file, line);
	abort();
}

static void *alloc_aligned(size_t size, size_t align)
{
	void *p = NULL;

	if (align < sizeof(void *))
		align = sizeof(void *);
	if (posix_memalign(&p, align, size ? size : 1))
		return NULL;
	memset(p, 0xa5, size); /* init must not rely on zeroed memory */
	return p;
}

int main(void)
{
	char name[64] = "";
	const char *failed = "";
	void *dom = alloc_aligned(dirtylimit_domain_size(), dirtylimit_domain_align());
	void *slots = alloc_aligned(DL_KAT_SLOTS * dirtylimit_slot_size(), dirtylimit_slot_align());
	int core, abi;

	if (!dom || !slots) {
		printf("DLTEST FAIL hostcheck: out of memory\n");
		return 1;
	}
	core = dirtylimit_selftest(name, sizeof(name));
	abi = dirtylimit_kat(dom, slots, &failed);
	printf("hostcheck: domain %zu bytes (align %zu), slot %zu bytes (align %zu)\n",
	       dirtylimit_domain_size(), dirtylimit_domain_align(), dirtylimit_slot_size(),
	       dirtylimit_slot_align());
	if (core > 0)
		printf("DLTEST PASS hostcheck-core-selftest: %d core known-answer groups\n", core);
	else
		printf("DLTEST FAIL hostcheck-core-selftest: %s\n", name);
	if (abi > 0)
		printf("DLTEST PASS hostcheck-abi-kat: %d ABI known-answer cases\n", abi);
	else
		printf("DLTEST FAIL hostcheck-abi-kat: %s\n", failed);
	printf("%d passed, %d failed\n", (core > 0) + (abi > 0), (core <= 0) + (abi <= 0));
	free(dom);
	free(slots);
	return core > 0 && abi > 0 ? 0 : 1;
}
