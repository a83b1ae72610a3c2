#ifndef SCTRIAL_CLINUX_SHIM_H
#define SCTRIAL_CLINUX_SHIM_H
/* Linux calls Glibc's Swift module leaves out: the filesystem type behind a descriptor, and
   O_DIRECT (a _GNU_SOURCE macro). */
#include <sys/vfs.h>
#include <fcntl.h>

static inline long sc_filesystem_type(int fd) {
    struct statfs info;
    return fstatfs(fd, &info) == 0 ? (long)info.f_type : -1;
}

#if defined(__aarch64__)
static const int sc_o_direct = 0200000;
#else
static const int sc_o_direct = 040000;
#endif
#endif
