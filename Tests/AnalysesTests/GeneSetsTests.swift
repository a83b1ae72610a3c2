import Analyses
import AnnData
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Parity with sctrial 1.0.0 `score_gene_sets` (goldens: tools/goldens/genesets/make_goldens.py),
/// GMT parsing and http(s) loading.
///
/// Tolerances: on float64 input sctrial computes in float64 and we reproduce numpy's summation
/// orders (pairwise or sequential, by the storage's memory layout: see `GeneSetScoring`), so we
/// ask for 1e-12 relative (measured: bit-identical, 0 difference, in all 13 float64 cases).
/// On float32 sparse input sctrial keeps the submatrix, the per-gene mean and sd, the z-scores and
/// the stored scores in float32 (REFERENCE-SEMANTICS §2.2) while we compute in float64 (§8.1):
/// sequential float32 sums over the 1712 cells bound the relative error of μ and σ by ~n·2⁻²⁴ ≈ 1e-4,
/// a cell's float32 mean over ≤ 8 genes by ~8·2⁻²⁴ ≈ 5e-7, so we ask for |Δ| ≤ 1e-4·(1 + |score|)
/// on zmean and ≤ 1e-6·(1 + |score|) on mean (measured: ≤ 7.3e-6 and ≤ 9.3e-8). The NaN pattern
/// must match exactly in every case.
@Suite struct GeneSetsTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")

    struct ScoreCase: Decodable, Sendable, CustomTestStringConvertible {
        let `case`: String
        let input: String
        let element: String
        let gmt: String
        let method: String
        let min_genes: Int
        let dtype: String
        let n_obs: Int
        let sets: [String]
        let scores: [String: [Double?]]
        var testDescription: String { self.case }
    }

    struct ScoreFile: Decodable { let cases: [ScoreCase] }

    static let cases: [ScoreCase] = {
        let data = try! Data(contentsOf: fixtures.appendingPathComponent("genesets/scores.json"))
        return try! JSONDecoder().decode(ScoreFile.self, from: data).cases
    }()

    static func path(_ relative: String) -> String { fixtures.appendingPathComponent(relative).path }

    // MARK: - Parity

    @Test(arguments: cases)
    func matchesSctrial(_ c: ScoreCase) throws {
        let sets = try GeneSetCollection.load(Self.path(c.gmt))
        #expect(sets.names == c.sets)
        let method = try #require(GeneSetScoring.Method(rawValue: c.method))
        let scores = try GeneSetScoring.scores(path: Self.path(c.input), element: c.element, sets: sets,
                                               method: method, minGenes: c.min_genes)
        #expect(scores.count == c.sets.count)
        let float32 = c.dtype.hasSuffix("float32")
        var worst = 0.0
        for (k, name) in c.sets.enumerated() {
            let want = try #require(c.scores[name])
            try #require(scores[k].count == c.n_obs && want.count == c.n_obs, "\(c.case) \(name): length")
            for (cell, (got, expected)) in zip(scores[k], want).enumerated() {
                guard let expected else {
                    #expect(got.isNaN, "\(c.case) \(name) cell \(cell): want NaN, got \(got)")
                    continue
                }
                let difference = abs(got - expected)
                if float32 {
                    let bound = (method == .zmean ? 1e-4 : 1e-6) * (1 + abs(expected))
                    #expect(difference <= bound, "\(c.case) \(name) cell \(cell): \(got) vs \(expected)")
                    worst = max(worst, difference / (1 + abs(expected)))
                } else {
                    #expect(difference <= 1e-12 * abs(expected), "\(c.case) \(name) cell \(cell): \(got) vs \(expected)")
                    worst = max(worst, difference / abs(expected))
                }
            }
        }
        print("gene-set parity \(c.case): worst \(float32 ? "|Δ|/(1+|ref|)" : "relative") \(worst)")
    }

    /// Many small blocks give the same scores as one pass: the streaming is invisible.
    @Test(arguments: ["X", "layers/dense_f64", "layers/csr_f64"])
    func streamingIsInvisible(_ element: String) throws {
        let sets = try GeneSetCollection.load(Self.path("genesets/edge_sets.gmt"))
        for method in GeneSetScoring.Method.allCases {
            let whole = try GeneSetScoring.scores(path: Self.path("genesets/genesets_edge.h5ad"), element: element,
                                                  sets: sets, method: method, minGenes: 1)
            let pieces = try GeneSetScoring.scores(path: Self.path("genesets/genesets_edge.h5ad"), element: element,
                                                   sets: sets, method: method, minGenes: 1, budget: ReadBudget(bytes: 512))
            #expect(Self.same(whole, pieces), "\(element) \(method)")
        }
    }

    static func same(_ a: [[Double]], _ b: [[Double]]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { x, y in
            x.count == y.count && zip(x, y).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
        }
    }

    // MARK: - Numerics on arrays

    @Test func zmeanAndMeanByHand() throws {
        // 4 cells; genes a, b (valid), c constant (left out of zmean), d absent from the var names.
        let a: [Double] = [1, 2, 3, 4], b: [Double] = [0, 0, 2, .nan], c: [Double] = [7, 7, 7, 7]
        let sets = try GeneSetCollection(sets: [GeneSet(name: "S", genes: ["a", "b", "a", "c", "d"])])
        let plan = try GeneSetPlan(varNames: ["c", "a", "b"], sets: sets, minGenes: 3)
        #expect(plan.genes == [[1, 2, 0]])
        #expect(plan.columns == [0, 1, 2])
        let data = GatheredColumns(nRows: 4, columns: [0, 1, 2], dense: [c, a, b])
        let mean = GeneSetScoring.scores(plan: plan, data: data, method: .mean, denseInput: false)[0]
        let expectedMean: [Double] = [8.0 / 3, 9.0 / 3, 12.0 / 3, 11.0 / 2]
        #expect(mean == expectedMean)
        let z = GeneSetScoring.scores(plan: plan, data: data, method: .zmean, denseInput: false)[0]
        let sa = (5.0 / 3).squareRoot(), sb = (4.0 / 3).squareRoot()   // sd(a) ddof 1; sd(b) over 3 finite values
        let za = a.map { ($0 - 2.5) / sa }, zb = [0, 0, 2].map { ($0 - 2.0 / 3) / sb }
        for cell in 0..<3 { #expect(abs(z[cell] - (za[cell] + zb[cell]) / 2) < 1e-15) }
        #expect(abs(z[3] - za[3]) < 1e-15)   // NaN in b: mean over the finite z only

        let strict = try GeneSetPlan(varNames: ["c", "a", "b"], sets: sets, minGenes: 4)
        #expect(strict.genes == [nil] && strict.columns.isEmpty)
        let none = GeneSetScoring.scores(plan: strict, data: GatheredColumns(nRows: 4, columns: [], dense: []), method: .zmean, denseInput: true)
        #expect(none[0].count == 4 && none[0].allSatisfy(\.isNaN))
        #expect(throws: AnalysisError.self) { try GeneSetPlan(varNames: ["a"], sets: sets, minGenes: 0) }
    }

    @Test func repeatedVarNameMapsToItsLastColumn() throws {
        let sets = try GeneSetCollection(sets: [GeneSet(name: "S", genes: ["x", "y"])])
        let plan = try GeneSetPlan(varNames: ["x", "y", "x"], sets: sets, minGenes: 1)
        #expect(plan.genes == [[2, 1]])
    }

    @Test func numpyPairwiseSummation() {
        // Below 8 values: sequential. 1 + 1e16 rounds to 1e16, so the order shows in the result.
        #expect(GeneSetScoring.numpySum([1, 1e16, -1e16, 1]) == 1)
        // 8..128 values: eight interleaved accumulators, then the rest sequentially.
        var values = [Double](repeating: 0, count: 9)
        values[0] = 1e16; values[4] = -1e16; values[1] = 1; values[8] = 1
        // r0 = 1e16, r1 = 1, r4 = -1e16: ((r0 + r1) + …) + ((r4 + …)) = 1e16 + -1e16 = 0, then + 1.
        #expect(GeneSetScoring.numpySum(values) == 1)
        #expect(GeneSetScoring.numpySum([]) == 0)
        let many = (0..<1000).map { Double($0) * 0.1 }
        #expect(abs(GeneSetScoring.numpySum(many) - 49950) < 1e-9)
        let stats = GeneSetScoring.columnStatistics([1, .nan, 3], pairwise: false)
        #expect(stats.mean == 2 && stats.sd == 2.0.squareRoot())
        #expect(GeneSetScoring.columnStatistics([.nan, 3], pairwise: false).sd.isNaN)
    }

    // MARK: - GMT

    @Test func parsesGMT() throws {
        let text = "\u{FEFF}# comment\nA\tdesc a\tg1\tg2\t\tg1\r\n\n   \nB\thttp://x\t g3 \tg4\t\n#B\tno\tg9\n"
        let sets = try GeneSetCollection(gmt: text, source: "mem.gmt")
        #expect(sets.names == ["A", "B"])
        #expect(sets.sets[0] == GeneSet(name: "A", description: "desc a", genes: ["g1", "g2", "g1"]))
        #expect(sets.sets[1] == GeneSet(name: "B", description: "http://x", genes: ["g3", "g4"]))
        #expect(sets.source == "mem.gmt")
    }

    @Test func gmtErrorsNameTheFileAndLine() throws {
        let noGenes = #expect(throws: AnalysisError.self) {
            try GeneSetCollection(gmt: "A\td\tg1\n\nEMPTY\tdescription only\t\t\n", source: "sets.gmt")
        }
        #expect(noGenes?.message == "sets.gmt line 3: gene set 'EMPTY' has no genes")
        let nameOnly = #expect(throws: AnalysisError.self) { try GeneSetCollection(gmt: "LONELY\n", source: "s.gmt") }
        #expect(nameOnly?.message == "s.gmt line 1: gene set 'LONELY' has no genes")
        let spaces = #expect(throws: AnalysisError.self) { try GeneSetCollection(gmt: "A d g1 g2\n", source: "s.gmt") }
        #expect(spaces?.message.contains("separated by tabs") == true)
        let duplicate = #expect(throws: AnalysisError.self) {
            try GeneSetCollection(gmt: "A\td\tg1\nB\td\tg2\nA\td\tg3\n", source: "sets.gmt")
        }
        #expect(duplicate?.message == "sets.gmt line 3: duplicate gene set name 'A' (first on line 1)")
        let emptyName = #expect(throws: AnalysisError.self) { try GeneSetCollection(gmt: "\td\tg1\n", source: "s.gmt") }
        #expect(emptyName?.message == "s.gmt line 1: empty gene set name")
        let empty = #expect(throws: AnalysisError.self) { try GeneSetCollection(gmt: "# nothing\n\n", source: "e.gmt") }
        #expect(empty?.message.hasPrefix("e.gmt: no gene sets") == true)
        let missing = #expect(throws: AnalysisError.self) { try GeneSetCollection.load("/nonexistent/sets.gmt") }
        #expect(missing?.message == "/nonexistent/sets.gmt: no such gene-set file")
        #expect(throws: AnalysisError.self) {
            try GeneSetCollection(sets: [GeneSet(name: "A", genes: ["x"]), GeneSet(name: "A", genes: ["y"])])
        }
    }

    // MARK: - http(s)

    @Test func refusedConnectionIsNamed() throws {
        let url = "http://127.0.0.1:9/sets.gmt"
        let error = #expect(throws: AnalysisError.self) { try GeneSetCollection.load(url) }
        let message = error?.message ?? ""
        #expect(message.hasPrefix("\(url): could not connect"), "\(message)")
        #expect(!message.contains("\n"))
    }

    @Test func unknownHostIsNamed() throws {
        let url = "http://no-such-host.invalid/sets.gmt"
        let error = #expect(throws: AnalysisError.self) { try HTTPFetch.get(url, timeoutSeconds: 10) }
        #expect(error?.message.hasPrefix("\(url): could not resolve the host name") == true, "\(error?.message ?? "")")
    }

    @Test func fetchesFollowsRedirectsAndReportsStatus() throws {
        let body = "UP\tfrom the test server\tg00\tg01\tg02\nDOWN\tna\tg03\tg04\tg05\n"
        let server = try TinyHTTPServer(routes: [
            "/sets.gmt": .init(status: 200, body: body),
            "/moved": .init(status: 302, headers: ["Location: /sets.gmt"], body: ""),
            "/bad.gmt": .init(status: 200, body: "OK\td\tg1\nBROKEN\td\n"),
            "/boom": .init(status: 500, body: "oops"),
        ])
        defer { server.stop() }
        let base = "http://127.0.0.1:\(server.port)"

        let sets = try GeneSetCollection.load("\(base)/sets.gmt")
        #expect(sets.names == ["UP", "DOWN"])
        #expect(sets.sets[0].genes == ["g00", "g01", "g02"])
        #expect(sets.source == "\(base)/sets.gmt")
        #expect(try GeneSetCollection.load("\(base)/moved") == GeneSetCollection(gmt: body, source: "\(base)/moved"))

        let notFound = #expect(throws: AnalysisError.self) { try GeneSetCollection.load("\(base)/nothing.gmt") }
        #expect(notFound?.message == "\(base)/nothing.gmt: HTTP status 404 (Not Found)")
        let failed = #expect(throws: AnalysisError.self) { try HTTPFetch.get("\(base)/boom") }
        #expect(failed?.message == "\(base)/boom: HTTP status 500 (Internal Server Error)")
        let bad = #expect(throws: AnalysisError.self) { try GeneSetCollection.load("\(base)/bad.gmt") }
        #expect(bad?.message == "\(base)/bad.gmt line 2: gene set 'BROKEN' has no genes")
    }

    @Test func timeoutIsNamed() throws {
        let server = try TinyHTTPServer(routes: ["/slow": .init(status: 200, body: "A\td\tg1\n", delaySeconds: 4)])
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/slow"
        let error = #expect(throws: AnalysisError.self) { try HTTPFetch.get(url, timeoutSeconds: 1) }
        #expect(error?.message.hasPrefix("\(url): timed out after 1 s") == true, "\(error?.message ?? "")")
    }

    @Test func onlyHTTPURLs() {
        #expect(HTTPFetch.isURL("HTTPS://example.org/x.gmt"))
        #expect(!HTTPFetch.isURL("ftp://example.org/x.gmt"))
        #expect(!HTTPFetch.isURL("sets.gmt"))
    }
}

/// A one-file HTTP/1.1 server on 127.0.0.1 (ephemeral port) for the fetch tests: fixed responses
/// per path, 404 otherwise, one thread per connection, `Connection: close`.
final class TinyHTTPServer: Sendable {
    struct Response: Sendable {
        var status: Int
        var headers: [String] = []
        var body: String
        var delaySeconds: Double = 0
    }

    let port: Int
    private let socketFD: Int32

    init(routes: [String: Response]) throws {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw AnalysisError("test server: socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(fd, generic, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, generic, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw AnalysisError("test server: cannot listen on 127.0.0.1")
        }
        socketFD = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    return
                }
                Thread.detachNewThread { Self.serve(client, routes: routes) }
            }
        }
    }

    func stop() {
        #if canImport(Glibc)
        shutdown(socketFD, Int32(SHUT_RDWR))
        #else
        shutdown(socketFD, SHUT_RDWR)
        #endif
        close(socketFD)
    }

    private static func serve(_ client: Int32, routes: [String: Response]) {
        defer { close(client) }
        var request = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !request.containsHeaderEnd {
            let count = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return }
            request += chunk[0..<count]
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        let path = parts.count > 1 ? String(parts[1]) : "/"
        let response = routes[path] ?? Response(status: 404, body: "not found")
        if response.delaySeconds > 0 { Thread.sleep(forTimeInterval: response.delaySeconds) }
        let body = Array(response.body.utf8)
        var head = "HTTP/1.1 \(response.status) X\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        for header in response.headers { head += header + "\r\n" }
        let bytes = Array((head + "\r\n").utf8) + body
        #if canImport(Glibc)
        let flags = Int32(MSG_NOSIGNAL)
        #else
        let flags: Int32 = 0
        #endif
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, flags) }
            if n <= 0 { return }
            sent += n
        }
    }
}

private extension [UInt8] {
    var containsHeaderEnd: Bool {
        guard count >= 4 else { return false }
        for k in 0...(count - 4) where self[k] == 13 && self[k + 1] == 10 && self[k + 2] == 13 && self[k + 3] == 10 {
            return true
        }
        return false
    }
}
