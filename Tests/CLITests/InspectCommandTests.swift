import Foundation
import Testing

@Suite struct InspectCommandTests {
    @Test func jsonHasTheDocumentedKeys() throws {
        let result = try CLI.run(["inspect", CLI.fixture("0.12.19-standard.h5ad"), "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        for key in ["schema_version", "file", "size_bytes", "encoding_version", "n_obs", "n_vars", "X", "layers", "raw",
                    "obs_index", "var_index", "obs", "var"] {
            #expect(object.keys.contains(key), "missing \(key)")
        }
        #expect(object["schema_version"] as? Int == 1)
        let x = try #require(object["X"] as? [String: Any])
        #expect(x["format"] as? String == "csr")
        #expect(x["dtype"] as? String == "float32")
        for key in ["name", "path", "n_rows", "n_cols", "nnz", "index_dtype", "chunks", "compression"] {
            #expect(x.keys.contains(key), "X is missing \(key)")
        }
        let obs = try #require(object["obs"] as? [[String: Any]])
        let categorical = try #require(obs.first { $0["kind"] as? String == "categorical" })
        #expect((categorical["categories"] as? [String])?.isEmpty == false)
        #expect(categorical["n_categories"] as? Int == (categorical["categories"] as? [String])?.count)
    }

    @Test func textNamesStorageAndColumns() throws {
        let result = try CLI.run(["inspect", CLI.fixture("0.12.19-standard.h5ad")])
        #expect(result.status == 0)
        #expect(result.stdout.contains("X  "))
        #expect(result.stdout.contains("csr"))
        #expect(result.stdout.contains("categorical"))
    }

    @Test(arguments: ["bad-not-hdf5.h5ad", "bad-truncated.h5ad", "bad-not-anndata.h5ad", "bad-unknown-encoding.h5ad"])
    func badInputIsOneLineAndExitTwo(_ name: String) throws {
        let result = try CLI.run(["inspect", CLI.fixture(name)])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("sctrial-plan: error: "))
        #expect(result.stderr.contains(name))
    }

    @Test func missingFileExitsTwo() throws {
        let result = try CLI.run(["inspect", "/no/such/file.h5ad"])
        #expect(result.status == 2)
        #expect(result.stderr == "sctrial-plan: error: /no/such/file.h5ad: no such file\n")
    }
}

@Suite struct ValidateCommandTests {
    @Test func fullPassReportsTheSum() throws {
        let result = try CLI.run(["validate", CLI.fixture("0.12.19-standard.h5ad"), "--all", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let reports = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: CLI.fixture("expected.json")))) as? [String: Any]
        let file = ((expected?["files"] as? [String: Any])?["0.12.19-standard.h5ad"] as? [String: Any])
        let matrices = try #require(file?["matrices"] as? [String: [String: Any]])
        #expect(reports.count == matrices.count)
        for report in reports {
            let name = try #require((report["matrix"] as? [String: Any])?["name"] as? String)
            let scan = try #require(report["scan"] as? [String: Any])
            let want = try #require(matrices[name]?["sum"] as? Double)
            let got = try #require(scan["sum"] as? Double)
            #expect(abs(got - want) <= 1e-12 * max(1, abs(want)), "\(name)")
            #expect(scan["stored_entries"] as? Int == matrices[name]?["nnz"] as? Int)
        }
    }

    @Test func corruptIndicesFailTheScan() throws {
        let result = try CLI.run(["validate", CLI.fixture("bad-index-out-of-shape.h5ad")])
        #expect(result.status == 2)
        #expect(result.stderr.contains("/X/indices"))
    }
}
