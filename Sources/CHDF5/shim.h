#ifndef SCTRIAL_CHDF5_SHIM_H
#define SCTRIAL_CHDF5_SHIM_H
#include <hdf5.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* HDF5's native type ids and a few constants are macros that call H5open(); Swift cannot import
   them, so they are re-exported as functions. */
static inline hid_t sc_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t sc_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t sc_h5t_native_int8(void) { return H5T_NATIVE_INT8; }
static inline hid_t sc_h5t_native_int16(void) { return H5T_NATIVE_INT16; }
static inline hid_t sc_h5t_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t sc_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t sc_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t sc_h5t_native_uint16(void) { return H5T_NATIVE_UINT16; }
static inline hid_t sc_h5t_native_uint32(void) { return H5T_NATIVE_UINT32; }
static inline hid_t sc_h5t_native_uint64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t sc_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t sc_h5t_std_ref_obj(void) { return H5T_STD_REF_OBJ; }
static inline hid_t sc_h5p_dataset_access(void) { return H5P_DATASET_ACCESS; }
static inline unsigned sc_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline hid_t sc_h5e_default(void) { return H5E_DEFAULT; }
static inline hid_t sc_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t sc_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t sc_h5s_all(void) { return H5S_ALL; }
static inline size_t sc_h5t_variable(void) { return H5T_VARIABLE; }

/* The streaming reader allocates ~16 MB blocks over and over. glibc would serve each from a fresh
   mmap that the kernel zero-fills; keeping them on the heap lets freed blocks be reused. */
static inline void sc_reuse_freed_blocks(void) {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

/* Writing the staged gene-major copy (GeneMajorCopy.swift, H5Writer.swift). */
static inline unsigned sc_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline hid_t sc_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline haddr_t sc_haddr_undef(void) { return HADDR_UNDEF; }

/* The whole-file walk of `validate --all` (Probe.swift). */
static inline unsigned sc_h5o_info_all(void) { return H5O_INFO_ALL; }
static inline unsigned sc_h5o_info_basic(void) { return H5O_INFO_BASIC; }

#endif
