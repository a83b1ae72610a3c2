#ifndef SCTRIAL_COPENSSL_SHIM_H
#define SCTRIAL_COPENSSL_SHIM_H
/* SHA-256 for part checksums and input fingerprints, from libcrypto's EVP interface. */
#include <openssl/evp.h>
#endif
