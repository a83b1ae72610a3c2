import Foundation
import HTTP

/// Downloads small text resources (gene-set files) over http(s) through the `HTTP` module:
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
        let response: HTTPResponse
        do {
            response = try HTTPClient.send(.get, url, timeoutSeconds: timeoutSeconds, maximumBytes: maximumBytes)
        } catch {
            throw AnalysisError(error.description)
        }
        if response.status >= 400 {
            throw AnalysisError("\(url): HTTP status \(response.status)\(HTTPClient.reasonPhrase(response.status).map { " (\($0))" } ?? "")")
        }
        return response.body
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
}
