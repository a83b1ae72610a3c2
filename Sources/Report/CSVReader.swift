import Foundation
import Orchestration

/// Reads a CSV file once, front to back, through a fixed buffer: a 2.3 GB results.csv never sits
/// in memory. Fields follow RFC 4180 as `CSVText` writes them (quoted only when they hold a comma,
/// quote or newline; `""` inside quotes); rows end in LF or CRLF.
final class CSVReader {
    /// A field's bytes `[start, end)` in the buffer; `quoted` when the bytes are inside quotes
    /// (and may hold `""`).
    struct Span {
        var start: Int
        var end: Int
        var quoted: Bool
    }

    /// One row, valid only during the callback that receives it.
    struct Row {
        let bytes: UnsafeMutablePointer<UInt8>
        let spans: UnsafeBufferPointer<Span>

        var count: Int { spans.count }

        /// The field as a number: empty is NaN (how pandas writes NaN), otherwise what strtod
        /// reads (`nan`, `inf` included); NaN when it is not a number.
        func double(_ index: Int) -> Double {
            guard index < spans.count else { return .nan }
            let span = spans[index]
            guard span.end > span.start else { return .nan }
            if span.quoted { return Double(string(index)) ?? .nan }
            // The byte after every field is a delimiter or the buffer's NUL sentinel: strtod stops there.
            var stop: UnsafeMutablePointer<CChar>?
            let start = UnsafeMutableRawPointer(bytes + span.start).assumingMemoryBound(to: CChar.self)
            let value = strtod(start, &stop)
            return stop == start + (span.end - span.start) ? value : .nan
        }

        func string(_ index: Int) -> String {
            guard index < spans.count else { return "" }
            let span = spans[index]
            let text = String(decoding: UnsafeBufferPointer(start: bytes + span.start, count: span.end - span.start), as: UTF8.self)
            return span.quoted ? text.replacingOccurrences(of: "\"\"", with: "\"") : text
        }

        /// Whether the field's raw bytes equal `other` (cheap: no String is made).
        func fieldEquals(_ index: Int, _ other: [UInt8]) -> Bool {
            guard index < spans.count else { return false }
            let span = spans[index]
            guard span.end - span.start == other.count else { return false }
            return other.withUnsafeBufferPointer { memcmp(bytes + span.start, $0.baseAddress!, other.count) == 0 }
        }

        func fieldBytes(_ index: Int) -> [UInt8] {
            guard index < spans.count else { return [] }
            let span = spans[index]
            return Array(UnsafeBufferPointer(start: bytes + span.start, count: span.end - span.start))
        }
    }

    let path: String
    private let fd: Int32
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Valid bytes are `[position, filled)`.
    private var position = 0
    private var filled = 0
    private var atEnd = false
    private var spans: [Span] = []
    /// Bytes of the file consumed so far (for progress).
    private(set) var consumed = 0
    let size: Int

    init(path: String, bufferBytes: Int = 4 << 20) throws {
        self.path = path
        fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw OrchestrationError("\(path): cannot open: \(String(cString: strerror(errno)))") }
        var status = stat()
        size = fstat(fd, &status) == 0 ? Int(status.st_size) : 0
        capacity = bufferBytes
        buffer = .allocate(capacity: capacity + 1)
    }

    deinit {
        close(fd)
        buffer.deallocate()
    }

    /// Calls `body` with every row, the header first; rows may have any number of fields.
    func forEachRow(_ body: (Row) throws -> Void) throws {
        while let length = try nextRow() {
            try spans.withUnsafeBufferPointer { try body(Row(bytes: buffer, spans: $0)) }
            position += length
            consumed += length
        }
    }

    /// Splits the row at `position` into `spans`; returns its length including the line end, or
    /// nil at the end of the file. Refills the buffer when the row runs past what is read.
    private func nextRow() throws -> Int? {
        while true {
            if let length = parseRow() { return length }
            if atEnd {
                guard position < filled else { return nil }
                // A last row without a line end: parse it up to the end of the data.
                return parseRow(final: true)
            }
            try refill()
        }
    }

    /// The row at `position`, or nil when the data stops before its line end (unless `final`).
    /// Works on a local copy of the spans (moved out and back, not copied): appending to the
    /// stored array would check exclusive access on every field.
    private func parseRow(final: Bool = false) -> Int? {
        var spans: [Span] = []
        swap(&spans, &self.spans)
        defer { swap(&spans, &self.spans) }
        spans.removeAll(keepingCapacity: true)
        let buffer = self.buffer
        let start = position
        var i = start
        let end = filled
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), newline = UInt8(ascii: "\n"), ret = UInt8(ascii: "\r")
        while true {
            if i < end && buffer[i] == quote {
                var j = i + 1
                while true {
                    guard j < end else {
                        guard final else { return nil }
                        spans.append(Span(start: i + 1, end: end, quoted: true))
                        return end - start
                    }
                    if buffer[j] == quote {
                        if j + 1 < end && buffer[j + 1] == quote { j += 2; continue }
                        if j + 1 == end && !final { return nil }
                        break
                    }
                    j += 1
                }
                spans.append(Span(start: i + 1, end: j, quoted: true))
                i = j + 1
            } else {
                var j = i
                while j < end && buffer[j] != comma && buffer[j] != newline { j += 1 }
                var fieldEnd = j
                if j < end && buffer[j] == newline && fieldEnd > i && buffer[fieldEnd - 1] == ret { fieldEnd -= 1 }
                if j == end && !final { return nil }
                spans.append(Span(start: i, end: fieldEnd, quoted: false))
                i = j
            }
            // After a field: a comma (next field), a line end (row done) or the end of the data.
            if i >= end { return final ? end - start : nil }
            if buffer[i] == comma { i += 1; continue }
            if buffer[i] == ret, i + 1 < end, buffer[i + 1] == newline { i += 1 }
            if buffer[i] == newline || buffer[i] == ret { return i + 1 - start }
            // Bytes after a closing quote: keep them in the field, as lenient readers do.
            i += 1
        }
    }

    /// Moves the unread bytes to the front (growing the buffer for a row longer than it) and reads more.
    private func refill() throws {
        let pending = filled - position
        if position > 0 {
            memmove(buffer, buffer + position, pending)
            position = 0
            filled = pending
        }
        if filled == capacity {
            capacity *= 2
            let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity + 1)
            grown.update(from: buffer, count: filled)
            buffer.deallocate()
            buffer = grown
        }
        while filled < capacity {
            let got = read(fd, buffer + filled, capacity - filled)
            if got < 0 {
                if errno == EINTR { continue }
                throw OrchestrationError("\(path): cannot read: \(String(cString: strerror(errno)))")
            }
            if got == 0 { atEnd = true; break }
            filled += got
        }
        // The NUL sentinel keeps strtod inside the data.
        buffer[filled] = 0
    }
}
