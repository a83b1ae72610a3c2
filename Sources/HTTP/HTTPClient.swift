import CCurl
import Foundation

/// A response of any status: callers decide what a 4xx or 5xx means (slurmrestd puts its reasons
/// in the body of a 500, a gene-set download just fails).
public struct HTTPResponse: Sendable, Equatable {
    public let status: Int
    public let body: [UInt8]

    public init(status: Int, body: [UInt8]) {
        self.status = status
        self.body = body
    }
}

/// A transfer that produced no HTTP response, said in one line that names the URL.
public struct HTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case couldNotConnect, couldNotResolveHost, timedOut, tooLarge, other
    }

    public let url: String
    public let kind: Kind
    /// What went wrong, without the URL.
    public let reason: String

    public var description: String { "\(url): \(reason)" }
}

public enum HTTPMethod: String, Sendable {
    case get = "GET", post = "POST", delete = "DELETE"
}

/// One HTTP request with libcurl's easy API: one overall timeout, the loopback never proxied, and
/// every failure said in one line. Header values are never part of an error (they may hold tokens).
public enum HTTPClient {
    /// Responses larger than this are refused by default rather than held in memory.
    public static let defaultMaximumBytes = 256 << 20

    /// Sends `method` to `url` with `headers` ("Name: value") and an optional body, and returns the
    /// status and body whatever the status. Throws on DNS, connection, TLS, timeout and size failures.
    public static func send(_ method: HTTPMethod, _ url: String, headers: [String] = [], body: [UInt8]? = nil,
                            timeoutSeconds: Int = 30, followRedirects: Bool = true,
                            maximumBytes: Int = defaultMaximumBytes) throws(HTTPError) -> HTTPResponse {
        guard globalInit == CURLE_OK else {
            throw HTTPError(url: url, kind: .other, reason: "libcurl could not be initialised")
        }
        // Outlives the handle (declared first, so released last): libcurl writes messages into it.
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        defer { errorBuffer.deallocate() }
        guard let handle = curl_easy_init() else {
            throw HTTPError(url: url, kind: .other, reason: "libcurl could not create a transfer handle")
        }
        defer { curl_easy_cleanup(handle) }
        var headerList: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(headerList) }
        for header in headers {
            guard !header.contains(where: { $0 == "\r" || $0 == "\n" }) else {
                throw HTTPError(url: url, kind: .other, reason: "a request header contains a line break")
            }
            headerList = curl_slist_append(headerList, header)
        }

        let sink = Sink(limit: maximumBytes)
        let code: CURLcode = {
            let timeout = max(1, timeoutSeconds)
            let options: [(CURLoption, Int)] = [
                (CURLOPT_FOLLOWLOCATION, followRedirects ? 1 : 0),
                (CURLOPT_MAXREDIRS, 10),
                (CURLOPT_TIMEOUT, timeout),
                (CURLOPT_CONNECTTIMEOUT, timeout),
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
            if method != .get {
                status = method.rawValue.withCString { sc_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, $0) }
                guard status == CURLE_OK else { return status }
            }
            if let body {
                // COPYPOSTFIELDS copies the bytes, so nothing here has to outlive the call.
                status = sc_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, body.count)
                guard status == CURLE_OK else { return status }
                let bytes = body.isEmpty ? [0] : body  // a valid pointer even for an empty body
                status = bytes.withUnsafeBytes {
                    sc_curl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: $0.baseAddress!))
                }
                guard status == CURLE_OK else { return status }
            }
            if let headerList {
                status = sc_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList))
                guard status == CURLE_OK else { return status }
            }
            status = sc_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))
            guard status == CURLE_OK else { return status }
            status = sc_curl_setopt_write_function(handle, writeCallback)
            guard status == CURLE_OK else { return status }
            status = sc_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, Unmanaged.passUnretained(sink).toOpaque())
            guard status == CURLE_OK else { return status }
            return withExtendedLifetime(sink) { curl_easy_perform(handle) }
        }()
        guard code == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            let (kind, reason) = describe(code, timeoutSeconds: timeoutSeconds, overflow: sink.overflow, limit: maximumBytes)
            throw HTTPError(url: url, kind: kind, reason: reason + (detail.isEmpty ? "" : " (\(detail))"))
        }
        var status = 0
        _ = sc_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, body: sink.bytes)
    }

    /// The standard reason phrase of the statuses worth naming in a message.
    public static func reasonPhrase(_ status: Int) -> String? {
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
        let limit: Int
        var bytes: [UInt8] = []
        var overflow = false
        init(limit: Int) { self.limit = limit }
    }

    private static let writeCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
        data, size, count, context in
        guard let context else { return 0 }
        let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
        let length = size * count
        guard length > 0, let data else { return length }
        if sink.bytes.count + length > sink.limit {
            sink.overflow = true
            return 0  // aborts the transfer with CURLE_WRITE_ERROR
        }
        data.withMemoryRebound(to: UInt8.self, capacity: length) {
            sink.bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
        }
        return length
    }

    private static func describe(_ code: CURLcode, timeoutSeconds: Int, overflow: Bool, limit: Int) -> (HTTPError.Kind, String) {
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST: return (.couldNotResolveHost, "could not resolve the host name (DNS failure)")
        case CURLE_COULDNT_RESOLVE_PROXY: return (.couldNotResolveHost, "could not resolve the proxy host name")
        case CURLE_COULDNT_CONNECT: return (.couldNotConnect, "could not connect (connection refused or host unreachable)")
        case CURLE_OPERATION_TIMEDOUT: return (.timedOut, "timed out after \(max(1, timeoutSeconds)) s")
        case CURLE_TOO_MANY_REDIRECTS: return (.other, "too many redirects")
        case CURLE_UNSUPPORTED_PROTOCOL: return (.other, "unsupported protocol")
        case CURLE_URL_MALFORMAT: return (.other, "malformed URL")
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CACERT_BADFILE:
            return (.other, "TLS failure: \(String(cString: curl_easy_strerror(code)))")
        case CURLE_GOT_NOTHING: return (.other, "the server closed the connection without replying")
        case CURLE_WRITE_ERROR where overflow: return (.tooLarge, "response larger than \(limit >> 20) MB")
        default: return (.other, String(cString: curl_easy_strerror(code)))
        }
    }
}
