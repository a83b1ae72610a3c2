#ifndef SCTRIAL_CLZF_SHIM_H
#define SCTRIAL_CLZF_SHIM_H
/* liblzf (Debian: liblzf-dev), the decoder behind h5py's "lzf" compression (HDF5 filter 32000). */
#include <lzf.h>
#include <errno.h>
static inline int sc_errno(void) { return errno; }
static inline void sc_clear_errno(void) { errno = 0; }
#endif
