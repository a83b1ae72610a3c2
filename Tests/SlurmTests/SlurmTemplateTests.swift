import Foundation
import Testing
@testable import Orchestration

@Suite struct SlurmTemplateTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func builtInTemplatesAreTheFilesInSlurm() throws {
        let array = try String(contentsOf: Self.repository.appendingPathComponent("slurm/array.sbatch.template"), encoding: .utf8)
        let reduce = try String(contentsOf: Self.repository.appendingPathComponent("slurm/reduce.sbatch.template"), encoding: .utf8)
        #expect(SlurmTemplate.array == array)
        #expect(SlurmTemplate.reduce == reduce)
    }

    @Test func shardArrayScriptAndRequest() throws {
        let part = try SlurmArraySplit.parts(shardCount: 2500, maxArraySize: 1001)[2]
        let resources = SlurmResources(partition: "short", account: "lab", qos: "normal", timeLimitMinutes: 90, memoryMB: 4096, cpusPerTask: 2)
        let request = try SlurmTemplate.shardArrayRequest(name: "sctrial-did", run: "/scratch/my run", worker: ["/opt/sctrial/bin/sctrial-worker"],
                                                          part: part, throttle: 50, resources: resources)
        #expect(request.script == """
            #!/bin/bash
            #SBATCH --job-name=sctrial-did
            #SBATCH --array=0-497%50
            #SBATCH --output="/scratch/my run/logs/slurm-%A_%a.out"
            #SBATCH --chdir="/scratch/my run"
            #SBATCH --partition=short
            #SBATCH --account=lab
            #SBATCH --qos=normal
            #SBATCH --time=90
            #SBATCH --mem=4096M
            #SBATCH --cpus-per-task=2
            set -euo pipefail
            exec /opt/sctrial/bin/sctrial-worker '/scratch/my run' --shard-offset 2002

            """)
        #expect(request.array == SlurmArraySpec(.range(0...497), throttle: 50))
        #expect(request.outputPath == "/scratch/my run/logs/slurm-%A_%a.out")
        #expect(request.workingDirectory == "/scratch/my run")
        #expect(request.resources == resources)
        #expect(throws: Never.self) { try request.validate() }
    }

    @Test func reduceScriptWaitsForEveryArrayAndDiesWithThem() throws {
        let request = try SlurmTemplate.reduceRequest(name: "sctrial-reduce", run: "/runs/r1", planner: "/usr/local/bin/sctrial-plan",
                                                      after: [JobID(101), JobID(102)])
        #expect(request.script == """
            #!/bin/bash
            #SBATCH --job-name=sctrial-reduce
            #SBATCH --output=/runs/r1/logs/slurm-reduce-%j.out
            #SBATCH --chdir=/runs/r1
            #SBATCH --dependency=afterok:101:102
            #SBATCH --kill-on-invalid-dep=yes
            set -euo pipefail
            exec /usr/local/bin/sctrial-plan reduce /runs/r1

            """)
        #expect(request.dependency == SlurmDependency(afterOK: [JobID(101), JobID(102)], killOnInvalid: true))
        #expect(request.array == nil)
    }

    @Test func sitesTemplatesAreCheckedAtRendering() throws {
        let request = SlurmJobRequest(name: "x", script: "#!/bin/sh\n")
        let custom = "#!/bin/bash\n## note {{NOT_RENDERED}}\n#SBATCH --job-name={{JOB_NAME}}\nmodule load {{MODULE}}\n{{SBATCH_OPTIONS}}\n"
        #expect(try SlurmTemplate.render(custom, for: request, values: ["MODULE": "hdf5"]) == "#!/bin/bash\n#SBATCH --job-name=x\nmodule load hdf5\n")
        #expect(throws: SlurmError.invalidRequest("template placeholder {{MODULE}} has no value (known: ARRAY, JOB_NAME, OUTPUT, SBATCH_OPTIONS, WORKDIR)")) {
            try SlurmTemplate.render(custom, for: request)
        }
        var quoted = request
        quoted.outputPath = "/runs/\"odd\"/log"
        #expect(throws: SlurmError.self) { try SlurmTemplate.render("#SBATCH --output={{OUTPUT}}\n", for: quoted) }
    }

    @Test func shellQuotingKeepsPlainWordsAndQuotesTheRest() {
        #expect(SlurmTemplate.shellQuoted("/opt/bin/sctrial-worker") == "/opt/bin/sctrial-worker")
        #expect(SlurmTemplate.shellQuoted("/runs/my run") == "'/runs/my run'")
        #expect(SlurmTemplate.shellQuoted("/runs/it's") == #"'/runs/it'\''s'"#)
        #expect(SlurmTemplate.shellQuoted("$HOME") == "'$HOME'")
        #expect(SlurmTemplate.shellQuoted("") == "''")
    }
}

@Suite struct ContainerRenderingTests {
    /// `submit --container IMAGE`: the array script runs the image's worker through apptainer,
    /// with the run directory and the input's directory bound where plan.json names them.
    @Test func theArrayScriptRunsTheWorkerInsideTheImage() throws {
        let command = SlurmExecutor.workerCommand(worker: "/opt/bin/sctrial-worker", container: "/images/sctrial.sif",
                                                                     run: "/scratch/my run", input: "/data/trial/screen.h5ad")
        let request = try SlurmTemplate.shardArrayRequest(name: "sct-1a2b3c4d", run: "/scratch/my run", worker: command,
                                                          part: SlurmArrayPart(offset: 8, indices: .range(0...7)), throttle: 4)
        #expect(request.script.contains("#SBATCH --array=0-7%4"))
        #expect(request.script.hasSuffix("\nexec apptainer exec --bind '/scratch/my run,/data/trial' /images/sctrial.sif sctrial-worker '/scratch/my run' --shard-offset 8\n"),
                "\(request.script)")
        let plain = SlurmExecutor.workerCommand(worker: "/opt/bin/sctrial-worker", container: nil, run: "/r", input: "/d/x.h5ad")
        #expect(plain == ["/opt/bin/sctrial-worker"])
    }
}
