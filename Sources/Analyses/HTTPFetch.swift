import CCurl
import Foundation

/// Downloads small text resources (gene-set files) over http(s) with libcurl's easy API:
/// redirects followed, one overall timeout, and every failure said in one line that names the URL.
public enum HTTPFetch {
    /// Responses larger than this are refused rather than held in memory.
    public static let maximumBytes = 256 << 20

    /// True for `http://` and `https://` locations (case-insensitive scheme).
    public static func isURL(_ location: String) -> Bool {
        let lower = location.prefix(8).lowercased()
        return lower.hasPrefix("http://") || lower.hasPrefix("https://")
    }

    /// The body of a GET to `url`. Fails on HTTP status ≥ 400, on DNS, connection and TLS errors
    /// and when the whole transfer (redirects included) takes longer than `timeoutSeconds`.
    public static func get(_ url: String, timeoutSeconds: Int = 30) throws(AnalysisError) -> [UInt8] {
        guard isURL(url) else {
            throw AnalysisError("\(url): not an http(s) URL")
        }
        guard globalInit == CURLE_OK else {
            throw AnalysisError("\(url): libcurl could not be initialised")
        }
        // Outlives the handle (declared first, so released last): libcurl writes messages into it.
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        defer { errorBuffer.deallocate() }
        guard let handle = curl_easy_init() else {
            throw AnalysisError("\(url): libcurl could not create a transfer handle")
        }
        defer { curl_easy_cleanup(handle) }

        let sink = Sink()
        let code: CURLcode = {
            let options: [(CURLoption, Int)] = [
                (CURLOPT_FOLLOWLOCATION, 1),
                (CURLOPT_MAXREDIRS, 10),
                (CURLOPT_TIMEOUT, max(1, timeoutSeconds)),
                (CURLOPT_CONNECTTIMEOUT, max(1, timeoutSeconds)),
                // No signals: safe from any thread, and DNS timeouts still apply with the threaded resolver.
                (CURLOPT_NOSIGNAL, 1),
            ]
            for (option, value) in options {
                let status = sc_curl_setopt_long(handle, option, value)
                guard status == CURLE_OK else { return status }
            }
            var status = url.withCString { sc_curl_setopt_string(handle, CURLOPT_URL, $0) }
            guard status == CURLE_OK else { return status }
            status = "sctrial-plan".withCString { sc_curl_setopt_string(handle, CURLOPT_USERAGENT, $0) }
            guard status == CURLE_OK else { return status }
            // The loopback never goes through a proxy (whatever http_proxy says); other hosts keep the
            // user's proxy settings.
            status = noProxy.withCString { sc_curl_setopt_string(handle, CURLOPT_NOPROXY, $0) }
            guard status == CURLE_OK else { return status }
            status = sc_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))
            guard status == CURLE_OK else { return status }
            status = sc_curl_setopt_write_function(handle, writeCallback)
            guard status == CURLE_OK else { return status }
            status = sc_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, Unmanaged.passUnretained(sink).toOpaque())
            guard status == CURLE_OK else { return status }
            return withExtendedLifetime(sink) { curl_easy_perform(handle) }
        }()
        let detail = String(cString: errorBuffer)
        guard code == CURLE_OK else {
            throw AnalysisError("\(url): \(describe(code, timeoutSeconds: timeoutSeconds, overflow: sink.overflow))"
                                + (detail.isEmpty ? "" : " (\(detail))"))
        }
        var status = 0
        _ = sc_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        if status >= 400 {
            throw AnalysisError("\(url): HTTP status \(status)\(reason(status).map { " (\($0))" } ?? "")")
        }
        return sink.bytes
    }

    /// The body of a GET as UTF-8 text (a byte-order mark is dropped).
    public static func getText(_ url: String, timeoutSeconds: Int = 30) throws(AnalysisError) -> String {
        var bytes = try get(url, timeoutSeconds: timeoutSeconds)[...]
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw AnalysisError("\(url): response is not UTF-8 text")
        }
        return text
    }

    // MARK: - Internals

    /// libcurl's process-wide setup, run once (thread-safe through Swift's lazy global initialisation).
    private static let globalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

    private static var noProxy: String {
        let loopback = "localhost,127.0.0.1,::1"
        guard let user = ProcessInfo.processInfo.environment["no_proxy"] ?? ProcessInfo.processInfo.environment["NO_PROXY"],
              !user.isEmpty else { return loopback }
        return user == "*" ? user : user + "," + loopback
    }

    /// Receives the body; only touched by the thread running `curl_easy_perform`.
    private final class Sink {
        var bytes: [UInt8] = []
        var overflow = false
    }

    private static let writeCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
        data, size, count, context in
        guard let context else { return 0 }
        let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
        let length = size * count
        guard length > 0, let data else { return length }
        if sink.bytes.count + length > HTTPFetch.maximumBytes {
            sink.overflow = true
            return 0  // aborts the transfer with CURLE_WRITE_ERROR
        }
        data.withMemoryRebound(to: UInt8.self, capacity: length) {
            sink.bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
        }
        return length
    }

    private static func describe(_ code: CURLcode, timeoutSeconds: Int, overflow: Bool) -> String {
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST: return "could not resolve the host name (DNS failure)"
        case CURLE_COULDNT_RESOLVE_PROXY: return "could not resolve the proxy host name"
        case CURLE_COULDNT_CONNECT: return "could not connect (connection refused or host unreachable)"
        case CURLE_OPERATION_TIMEDOUT: return "timed out after \(max(1, timeoutSeconds)) s"
        case CURLE_TOO_MANY_REDIRECTS: return "too many redirects"
        case CURLE_UNSUPPORTED_PROTOCOL: return "unsupported protocol"
        case CURLE_URL_MALFORMAT: return "malformed URL"
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CACERT_BADFILE:
            return "TLS failure: \(String(cString: curl_easy_strerror(code)))"
        case CURLE_GOT_NOTHING: return "the server closed the connection without replying"
        case CURLE_WRITE_ERROR where overflow: return "response larger than \(maximumBytes >> 20) MB"
        default: return String(cString: curl_easy_strerror(code))
        }
    }

    private static func reason(_ status: Int) -> String? {
        switch status {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 410: "Gone"
        case 429: "Too Many Requests"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: nil
        }
    }
}
