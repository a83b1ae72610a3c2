#ifndef SCTRIAL_COPENBLAS_SHIM_H
#define SCTRIAL_COPENBLAS_SHIM_H
#include <cblas.h>

/* OpenBLAS bundles LAPACK; Debian ships no lapack.h with libopenblas-dev, so the Fortran entry
   points we use are declared here (column-major, all arguments by reference). */
void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s,
             double *u, const int *ldu, double *vt, const int *ldvt, double *work,
             const int *lwork, int *iwork, int *info);
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info);
/* Stops the thread pool OpenBLAS starts when it loads (exported for its fork handling); it is
   started again if a call ever asks for more than one thread. */
int blas_thread_shutdown_(void);
#endif
