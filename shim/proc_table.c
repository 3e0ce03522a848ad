/*
 * proc_table.c - the table cuGetProcAddress searches: every driver entry
 * point the shim exports, by base name, minimum CUDA version and stream
 * variant (shim/generated/driver_entry_points.inc, made by
 * tools/gen_driver_table.py), and the search itself.
 *
 * The entries name the exported symbols directly, so this file declares
 * each as "void sym(void)" and must not include cuda.h (whose prototypes
 * would clash).  The API rules (flags, symbolStatus, return codes) live in
 * proc_address.c.
 */
#include <stddef.h>
#include <string.h>

enum proc_kind {
	PROC_PLAIN,
	PROC_PER_THREAD,	/* a _ptds or _ptsz variant */
};

#define KIND_PLAIN PROC_PLAIN
#define KIND_PTDS PROC_PER_THREAD
#define KIND_PTSZ PROC_PER_THREAD

struct proc_entry {
	const char *name;	/* base name, e.g. "cuMemAlloc" */
	void (*fn)(void);	/* the exported symbol, e.g. cuMemAlloc_v2 */
	int version;		/* first CUDA version it answers for */
	int kind;		/* enum proc_kind */
};

#define ENTRY(base, ver, kind, sym) extern void sym(void);
#include "generated/driver_entry_points.inc"
#undef ENTRY

static const struct proc_entry proc_table[] = {
#define ENTRY(base, ver, kind, sym) { #base, sym, ver, KIND_##kind },
#include "generated/driver_entry_points.inc"
#undef ENTRY
};

#define PROC_TABLE_LEN (sizeof(proc_table) / sizeof(proc_table[0]))

/* Results of shim_proc_lookup(); proc_address.c has the same values. */
#define SHIM_PROC_FOUND 0
#define SHIM_PROC_UNKNOWN 1	/* no such base name */
#define SHIM_PROC_TOO_OLD 2	/* name known, but not at that version */

int shim_proc_lookup(const char *name, int version, int per_thread,
		     void **fn);
int shim_proc_table_check(void);

/*
 * shim_proc_lookup - find the variant of @name that answers at @version.
 *
 * The plain candidate is the newest plain entry not newer than @version.
 * With @per_thread, the newest per-thread entry not newer than @version
 * replaces it unless the plain one is newer still (a per-thread variant
 * is only ever the same ABI as the plain symbol it extends).  On
 * SHIM_PROC_FOUND, *@fn is the symbol's address.
 */
int shim_proc_lookup(const char *name, int version, int per_thread,
		     void **fn)
{
	const struct proc_entry *plain = NULL, *pt = NULL, *e;
	size_t lo = 0, hi = PROC_TABLE_LEN, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(proc_table[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == PROC_TABLE_LEN || strcmp(proc_table[lo].name, name) != 0)
		return SHIM_PROC_UNKNOWN;

	/* Entries of one name are sorted by version: keep the last fit. */
	for (e = &proc_table[lo];
	     e < proc_table + PROC_TABLE_LEN && strcmp(e->name, name) == 0;
	     e++) {
		if (e->version > version)
			break;
		if (e->kind == PROC_PLAIN)
			plain = e;
		else
			pt = e;
	}
	if (per_thread && pt && (!plain || pt->version >= plain->version))
		plain = pt;
	if (!plain)
		return SHIM_PROC_TOO_OLD;
	*fn = (void *)plain->fn;
	return SHIM_PROC_FOUND;
}

/*
 * shim_proc_table_check - verify the order binary search relies on
 * (name, then version, plain before per-thread) and that every entry
 * resolved.  Returns the number of entries, or -1 - index of the first
 * bad one.  For the unit test.
 */
int shim_proc_table_check(void)
{
	const struct proc_entry *a, *b;
	size_t i;
	int c;

	for (i = 0; i < PROC_TABLE_LEN; i++) {
		b = &proc_table[i];
		if (!b->fn || !b->name[0])
			return -1 - (int)i;
		if (i == 0)
			continue;
		a = &proc_table[i - 1];
		c = strcmp(a->name, b->name);
		if (c > 0)
			return -1 - (int)i;
		if (c == 0 && a->version > b->version)
			return -1 - (int)i;
		if (c == 0 && a->version == b->version && a->kind >= b->kind)
			return -1 - (int)i;
	}
	return (int)PROC_TABLE_LEN;
}
