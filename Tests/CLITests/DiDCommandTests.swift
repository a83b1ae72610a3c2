import Foundation
import Testing

@Suite struct DiDCommandTests {
    let clean = CLI.repository.appendingPathComponent("Tests/Fixtures/did/did_clean.h5ad").path

    func temporary(_ suffix: String = "") -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sctrial-did-\(UUID().uuidString)\(suffix)").path
    }

    /// Plans and runs; returns the exit status of the first failing step and its stderr.
    func planAndRun(_ flags: [String]) throws -> (status: Int32, stderr: String, csv: String) {
        let run = temporary()
        defer { try? FileManager.default.removeItem(atPath: run) }
        let plan = try CLI.run(["plan", "did", clean, "--out", run] + flags)
        guard plan.status == 0 else { return (plan.status, plan.stderr, "") }
        let result = try CLI.run(["run", run])
        return (result.status, result.stderr, (try? String(contentsOfFile: run + "/results.csv", encoding: .utf8)) ?? "")
    }

    @Test(arguments: [
        (["--visits", "V1,V9"], "visit 'V9' has no cells in obs column 'visit'"),
        (["--visits", "V1,V2", "--participant-col", "donor"], "obs has no column 'donor'"),
        (["--visits", "V1,V2", "--treated", "Placebo"], "needs treated ('Placebo') and control cells"),
        (["--visits", "V1,V2", "--features", "celltype"], "feature 'celltype' is obs column of kind categorical, not numeric"),
        (["--visits", "V1,V2", "--features", "g00,nope"], "feature 'nope' is neither an obs column nor a gene"),
        (["--visits", "V1,V2", "--covariates", "celltype"], "covariate 'celltype' is not numeric and differs within a participant-visit group"),
        (["--visits", "V1,V2", "--celltype", "Nope"], "no participant has cells at both visits V1 and V2 in cell type Nope"),
    ])
    func badInputIsOneClearLine(_ flags: [String], _ message: String) throws {
        let result = try planAndRun(flags)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    @Test func flagsOverrideTheConfigFile() throws {
        let config = temporary(".toml")
        defer { try? FileManager.default.removeItem(atPath: config) }
        try "visits = [\"V1\", \"V2\"]\nfeatures = [\"g00\", \"g01\"]\nagg = \"median\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        let fromFile = try planAndRun(["--config", config])
        let median = try planAndRun(["--visits", "V1,V2", "--features", "g00,g01", "--agg", "median"])
        #expect(fromFile.status == 0 && fromFile.csv == median.csv && fromFile.csv.split(separator: "\n").count == 3)
        let overridden = try planAndRun(["--config", config, "--agg", "mean"])
        let mean = try planAndRun(["--visits", "V1,V2", "--features", "g00,g01"])
        #expect(overridden.csv == mean.csv && overridden.csv != median.csv)
    }

    @Test func unknownConfigKeyIsRefused() throws {
        let config = temporary(".toml")
        defer { try? FileManager.default.removeItem(atPath: config) }
        try "visits = [\"V1\", \"V2\"]\nparticipant_column = \"x\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        let result = try planAndRun(["--config", config])
        #expect(result.status != 0)
        #expect(result.stderr.contains("unknown key 'participant_column'"))
    }
}
