import Foundation
import Testing

/// Files from other writers and versions, end to end: compressed with lzf or blosc, anndata 0.6
/// record tables with fixed-length strings, categories pandas prints as `True` or `1.0`, Zarr stores.
@Suite struct InputFormatsTests {
    func temporaryRun() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-formats-\(UUID().uuidString)").path
    }

    func results(_ run: String) throws -> [[String]] {
        try String(contentsOfFile: run + "/results.csv", encoding: .utf8).split(separator: "\n")
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    }

    /// Every value of every matrix of lzf and blosc files decodes (`validate --all` reads them
    /// all); their sums against anndata's own read are checked in FixtureParityTests.
    @Test(arguments: ["0.12.19-lzf.h5ad", "0.13.4-lzf.h5ad", "0.7.8-lzf.h5ad", "0.12.19-blosc.h5ad", "0.13.4-blosc.h5ad"])
    func compressedFilesValidate(_ name: String) throws {
        let result = try CLI.run(["validate", CLI.fixture(name), "--all", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stderr.contains("filter"), "\(result.stderr)")
        let inspect = try CLI.run(["inspect", CLI.fixture(name)])
        #expect(inspect.stdout.contains(name.contains("lzf") ? "lzf" : "blosc"), "\(inspect.stdout)")
    }

    /// DE straight from an lzf file: every value through our filter, the index (lzf strings) too.
    @Test func deRunsOnAnLZFFile() throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        let plan = try CLI.run(["plan", "de", CLI.fixture("0.12.19-lzf.h5ad"), "--out", run, "--groupby-key", "celltype",
                                "--reference", "B", "--layer", "counts"])
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(try CLI.run(["run", run]).status == 0)
        let rows = try results(run)
        #expect(rows.first?.prefix(3) == ["target", "reference", "feature"])
        #expect(rows.count == 1 + 3 * 30, "3 targets (CD4 T, CD8 T, Mono) × 30 genes")
    }

    /// scanpy's bundled pbmc68k_reduced layout: `plan` used to fail on /var[index].
    @Test func anndata06FixedLengthRecordsPlan() throws {
        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        let file = CLI.fixture("0.6.22.post1-fixed-records.h5ad")
        let plan = try CLI.run(["plan", "de", file, "--out", run, "--groupby-key", "celltype", "--reference", "B"])
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(try CLI.run(["run", run]).status == 0)
        let rows = try results(run)
        #expect(rows.dropFirst().allSatisfy { $0[1] == "B" })
        #expect(rows.dropFirst().prefix(30).map { $0[2] } == (0..<30).map { [0: "MT-CO1", 5: "HLA-A", 9: "Gene.dot_1"][$0] ?? String(format: "GENE%03d", $0 + 1) })
        let json = try CLI.run(["inspect", file, "--json"])
        #expect(json.stdout.contains("\"note\"") && json.status == 0)
    }

    /// Bool categories are `False`/`True` and float ones `1.0`, as pandas prints them: in inspect,
    /// as arguments, and in results.csv.
    @Test func categoriesAreSpeltAsPandasPrintsThem() throws {
        let file = CLI.fixture("0.12.19-typed-categories.h5ad")
        let inspect = try CLI.run(["inspect", file])
        for line in ["2 categories: False, True", "3 categories: 0.5, 1.0, 2.0", "3 categories: 1e-05, 0.25, 1e+16",
                     "3 categories: 0.1, 1.0, 2.5", "2 categories: 3, 7"] {
            #expect(inspect.stdout.contains(line), "\(line) in \(inspect.stdout)")
        }

        let run = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: run) }
        let plan = try CLI.run(["plan", "de", file, "--out", run, "--groupby-key", "responder", "--reference", "True"])
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(try CLI.run(["run", run]).status == 0)
        let rows = try results(run).dropFirst()
        #expect(rows.count == 30 && rows.allSatisfy { $0[0] == "False" && $0[1] == "True" })

        // A bool column (not categorical) is spelt the same way.
        let plain = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: plain) }
        #expect(try CLI.run(["plan", "de", file, "--out", plain, "--groupby-key", "is_pre", "--reference", "True"]).status == 0)
        #expect(try CLI.run(["run", plain]).status == 0)
        #expect(try results(plain).dropFirst().allSatisfy { $0[0] == "False" && $0[1] == "True" })

        let dose = temporaryRun()
        defer { try? FileManager.default.removeItem(atPath: dose) }
        #expect(try CLI.run(["plan", "de", file, "--out", dose, "--groupby-key", "dose", "--reference", "1.0"]).status == 0)
        #expect(try CLI.run(["run", dose]).status == 0)
        #expect(Set(try results(dose).dropFirst().map { $0[0] }) == ["0.5", "2.0"])

        let refused = try CLI.run(["plan", "de", file, "--out", temporaryRun(), "--groupby-key", "dose", "--reference", "1"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("no cells labelled '1'") && refused.stderr.contains("1.0"), "\(refused.stderr)")
    }

    @Test func zarrStoreExitsTwoWithTheConversion() throws {
        let store = FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-\(UUID().uuidString).zarr")
        defer { try? FileManager.default.removeItem(at: store) }
        try FileManager.default.createDirectory(at: store, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: store.appendingPathComponent(".zattrs"))
        for arguments in [["inspect", store.path], ["plan", "de", store.path, "--out", temporaryRun()]] {
            let result = try CLI.run(arguments)
            #expect(result.status == 2)
            #expect(result.stderr.contains("is a Zarr store; sctrial-plan reads .h5ad: convert with `anndata.read_zarr("), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
        }
    }
}
