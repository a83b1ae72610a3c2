import CHDF5
import CLZF
import Foundation

/// The decoder of h5py's `compression="lzf"` (HDF5 filter 32000), registered with libhdf5 at
/// start-up: anndata writes it when asked, and libhdf5 ships no such filter.
///
/// h5py's layout, checked on files it wrote (`H5Dread_chunk` of the raw chunks): a chunk is one
/// plain LZF stream of the whole chunk, no header; the filter's client data are
/// `[filter version, LZF version, chunk size in bytes]`. h5py adds the filter as optional, so a
/// chunk LZF could not shrink is stored as it was, with the filter's bit set in the chunk's
/// filter mask: libhdf5 then never calls us for it.
enum LZFFilter {
    static let id: H5Z_filter_t = 32000

    /// Registers the decoder once per process; files compressed with lzf then read like gzip ones.
    static let registered: Bool = {
        var filterClass = H5Z_class2_t(
            version: Int32(H5Z_CLASS_T_VERS), id: id, encoder_present: 0, decoder_present: 1,
            name: UnsafePointer(strdup("lzf (h5py layout, decoded with liblzf)")),
            can_apply: nil, set_local: nil, filter: { flags, count, values, bytes, bufferSize, buffer in
                LZFFilter.decode(flags: flags, configuration: count >= 3 ? values?[2] : nil,
                                 bytes: bytes, bufferSize: bufferSize, buffer: buffer)
            })
        return H5Zregister(&filterClass) >= 0
    }()

    /// One chunk: decompress `bytes` bytes of `*buffer` into a new buffer of the chunk's size
    /// (from the client data, or doubled until the stream fits when a writer left it 0), which
    /// replaces `*buffer`. Returns the decoded size, 0 on failure (libhdf5 then fails the read).
    static func decode(flags: UInt32, configuration chunkBytes: UInt32?, bytes: Int,
                       bufferSize: UnsafeMutablePointer<Int>?, buffer: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int {
        // Read-only: we never write lzf.
        guard flags & UInt32(H5Z_FLAG_REVERSE) != 0, let bufferSize, let buffer, let input = buffer.pointee,
              bytes <= Int(UInt32.max) else { return 0 }
        var capacity = Int(chunkBytes ?? 0)
        if capacity == 0 { capacity = max(bufferSize.pointee, 2 * bytes, 64) }
        // A 4 GB chunk is libhdf5's own limit; past it the stream is corrupt.
        while capacity <= Int(UInt32.max) {
            guard let output = malloc(capacity) else { return 0 }
            sc_clear_errno()
            let decoded = Int(lzf_decompress(input, UInt32(bytes), output, UInt32(capacity)))
            if decoded > 0 {
                free(input)
                buffer.pointee = output
                bufferSize.pointee = capacity
                return decoded
            }
            free(output)
            guard sc_errno() == E2BIG else { return 0 }
            capacity *= 2
        }
        return 0
    }
}
