/*
 * etc_files.h - which of the host's /etc a function sees.
 *
 * One choice for both ways of isolating an executor: the built-in sandbox
 * (sandbox/rootfs.c) and the root that OCI mode builds (daemon/oci.c).
 * Files that programs read and that say nothing about the node: the
 * loader's cache, the time zone, TLS roots, name-service rules, the Python
 * interpreters' site configuration; resolv.conf only for a function with
 * network.  passwd, group, hosts and hostname are written fresh.
 */
#ifndef MIG_ETC_FILES_H
#define MIG_ETC_FILES_H

#include <stdbool.h>
#include <string.h>

static inline bool mig_etc_wanted(const char *name, bool network)
{
	static const char *const keep[] = {
		"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime",
		"timezone", "nsswitch.conf", "host.conf", "gai.conf",
		"protocols", "services", "ssl", "ca-certificates",
		"ca-certificates.conf", "alternatives", "mime.types",
		"os-release", "lsb-release", "debian_version", NULL,
	};

	if (!strncmp(name, "python", 6))
		return true;
	if (network && !strcmp(name, "resolv.conf"))
		return true;
	for (int i = 0; keep[i]; i++)
		if (!strcmp(name, keep[i]))
			return true;
	return false;
}

#endif /* MIG_ETC_FILES_H */
