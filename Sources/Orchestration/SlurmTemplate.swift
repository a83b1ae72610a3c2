import Foundation

/// The sbatch scripts a planned run submits, rendered from templates so a site can adapt them
/// (module loads, scratch setup) without touching code. The built-in copies are the files in
/// `slurm/` (a test keeps them identical); a site passes its own template text instead.
public enum SlurmTemplate {
    /// `slurm/array.sbatch.template`: one array job over shards `offset ..< offset + count`.
    public static let array = #"""
#!/bin/bash
## Slurm array job over the shards of one sctrial-plan run. The planner renders it into RUN/slurm/;
## lines starting with ## (these) are template notes and are left out of the rendered script.
##
## Array task ids start at 0 in every array and MaxArraySize caps the largest one, so a run with
## more shards than that is split into several arrays, each with its own offset:
## shard = SHARD_OFFSET + $SLURM_ARRAY_TASK_ID.
##
## Placeholders ({{NAME}} is replaced; a line holding only a placeholder that renders empty is dropped):
##   {{JOB_NAME}}        job name
##   {{ARRAY}}           --array value: indices from 0 (0-999, or a list 3,7,12), optional %K throttle
##   {{OUTPUT}}          log file pattern, RUN/logs/slurm-%A_%a.out (RUN/logs must exist at submission)
##   {{WORKDIR}}         the run directory
##   {{SBATCH_OPTIONS}}  zero or more #SBATCH lines: --partition, --account, --qos, --time, --mem,
##                       --cpus-per-task, --dependency, --kill-on-invalid-dep
##   {{WORKER}}          the command starting sctrial-worker (maybe inside apptainer exec), quoted for the shell
##   {{RUN}}             the run directory, quoted for the shell
##   {{SHARD_OFFSET}}    the shard that array task 0 runs
## #SBATCH values are double-quoted when they hold spaces.
#SBATCH --job-name={{JOB_NAME}}
#SBATCH --array={{ARRAY}}
#SBATCH --output={{OUTPUT}}
#SBATCH --chdir={{WORKDIR}}
{{SBATCH_OPTIONS}}
set -euo pipefail
exec {{WORKER}} {{RUN}} --shard-offset {{SHARD_OFFSET}}

"""#

    /// `slurm/reduce.sbatch.template`: `sctrial-plan reduce RUN` after every shard array.
    public static let reduce = #"""
#!/bin/bash
## Slurm job that reduces the parts of one sctrial-plan run into RUN/results.csv once every shard
## array completed. The planner renders it into RUN/slurm/; lines starting with ## (these) are
## template notes and are left out of the rendered script. Its dependency is afterok on every
## array with kill-on-invalid-dep, so a failed shard cancels it instead of leaving it pending.
##
## Placeholders ({{NAME}} is replaced; a line holding only a placeholder that renders empty is dropped):
##   {{JOB_NAME}}        job name
##   {{OUTPUT}}          log file pattern, RUN/logs/slurm-reduce-%j.out (RUN/logs must exist at submission)
##   {{WORKDIR}}         the run directory
##   {{SBATCH_OPTIONS}}  zero or more #SBATCH lines: --partition, --account, --qos, --time, --mem,
##                       --cpus-per-task, --dependency, --kill-on-invalid-dep
##   {{PLANNER}}         the sctrial-plan executable, quoted for the shell
##   {{RUN}}             the run directory, quoted for the shell
## #SBATCH values are double-quoted when they hold spaces.
#SBATCH --job-name={{JOB_NAME}}
#SBATCH --output={{OUTPUT}}
#SBATCH --chdir={{WORKDIR}}
{{SBATCH_OPTIONS}}
set -euo pipefail
exec {{PLANNER}} reduce {{RUN}}

"""#

    /// The request for one array of shards: the rendered script plus the same settings as job
    /// properties (slurmrestd does not read #SBATCH lines). Logs go to RUN/logs/slurm-%A_%a.out.
    /// `worker`: the command words that start sctrial-worker (a container wrapper may come first).
    public static func shardArrayRequest(name: String, run: String, worker: [String], part: SlurmArrayPart,
                                         throttle: Int? = nil, resources: SlurmResources = SlurmResources(),
                                         dependency: SlurmDependency? = nil,
                                         template: String = array) throws(SlurmError) -> SlurmJobRequest {
        var request = SlurmJobRequest(name: name, script: "", array: SlurmArraySpec(part.indices, throttle: throttle),
                                      resources: resources, dependency: dependency, workingDirectory: run,
                                      outputPath: run + "/logs/slurm-%A_%a.out")
        request.script = try render(template, for: request, values: [
            "WORKER": worker.map(shellQuoted).joined(separator: " "), "RUN": shellQuoted(run), "SHARD_OFFSET": String(part.offset),
        ])
        return request
    }

    /// The request for the reducer: afterok on every array, cancelled by Slurm if one fails.
    public static func reduceRequest(name: String, run: String, planner: String, after arrays: [JobID],
                                     resources: SlurmResources = SlurmResources(),
                                     template: String = reduce) throws(SlurmError) -> SlurmJobRequest {
        var request = SlurmJobRequest(name: name, script: "", resources: resources,
                                      dependency: arrays.isEmpty ? nil : SlurmDependency(afterOK: arrays, killOnInvalid: true),
                                      workingDirectory: run, outputPath: run + "/logs/slurm-reduce-%j.out")
        request.script = try render(template, for: request, values: [
            "PLANNER": shellQuoted(planner), "RUN": shellQuoted(run),
        ])
        return request
    }

    /// Fills `template` for `request`: JOB_NAME, ARRAY, OUTPUT, WORKDIR and SBATCH_OPTIONS come from
    /// the request, the rest from `values` (used as given). Drops "##" note lines and lines holding
    /// only a placeholder that renders empty; refuses placeholders it has no value for, so a typo in
    /// a site's template fails at planning, not on the cluster.
    public static func render(_ template: String, for request: SlurmJobRequest,
                              values: [String: String] = [:]) throws(SlurmError) -> String {
        var all = values
        all["JOB_NAME"] = try directiveValue(request.name, label: "job name")
        all["ARRAY"] = request.array.map(\.specification) ?? ""
        all["OUTPUT"] = try request.outputPath.map { path throws(SlurmError) in try directiveValue(path, label: "output path") } ?? ""
        all["WORKDIR"] = try request.workingDirectory.map { path throws(SlurmError) in try directiveValue(path, label: "working directory") } ?? ""
        all["SBATCH_OPTIONS"] = try sbatchOptions(for: request).joined(separator: "\n")

        var lines: [String] = []
        for line in template.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("##") { continue }
            var rendered = ""
            var rest = line[...]
            var placeholders = 0
            while let open = rest.range(of: "{{") {
                guard let close = rest[open.upperBound...].range(of: "}}") else { break }
                let key = String(rest[open.upperBound..<close.lowerBound])
                guard let value = all[key] else {
                    throw .invalidRequest("template placeholder {{\(key)}} has no value (known: \(all.keys.sorted().joined(separator: ", ")))")
                }
                rendered += rest[..<open.lowerBound] + value
                rest = rest[close.upperBound...]
                placeholders += 1
            }
            rendered += rest
            if placeholders > 0, rendered.trimmingCharacters(in: .whitespaces).isEmpty,
               line.trimmingCharacters(in: .whitespaces).hasPrefix("{{") { continue }
            // An #SBATCH line whose value rendered empty would be an sbatch error: leave it out.
            if placeholders > 0, line.hasPrefix("#SBATCH"), rendered.hasSuffix("=") { continue }
            lines.append(rendered)
        }
        return lines.joined(separator: "\n")
    }

    /// The optional settings as #SBATCH lines, in a fixed order.
    public static func sbatchOptions(for request: SlurmJobRequest) throws(SlurmError) -> [String] {
        let resources = request.resources
        var lines: [String] = []
        if let partition = resources.partition { lines.append("#SBATCH --partition=" + (try directiveValue(partition, label: "partition"))) }
        if let account = resources.account { lines.append("#SBATCH --account=" + (try directiveValue(account, label: "account"))) }
        if let qos = resources.qos { lines.append("#SBATCH --qos=" + (try directiveValue(qos, label: "qos"))) }
        if let minutes = resources.timeLimitMinutes { lines.append("#SBATCH --time=\(minutes)") }
        if let memory = resources.memoryMB { lines.append("#SBATCH --mem=\(memory)M") }
        if let cpus = resources.cpusPerTask { lines.append("#SBATCH --cpus-per-task=\(cpus)") }
        if let dependency = request.dependency, let specification = dependency.specification {
            lines.append("#SBATCH --dependency=\(specification)")
            if dependency.killOnInvalid { lines.append("#SBATCH --kill-on-invalid-dep=yes") }
        }
        return lines
    }

    /// A word for the shell: single-quoted unless it is plainly safe.
    public static func shellQuoted(_ word: String) -> String {
        let safe = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@%")
        if !word.isEmpty, word.unicodeScalars.allSatisfy(safe.contains) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

    /// A value for an #SBATCH line: double-quoted when it holds blanks; line breaks and double
    /// quotes are refused because sbatch's directive parser cannot carry them.
    static func directiveValue(_ value: String, label: String) throws(SlurmError) -> String {
        guard !value.contains(where: { $0.isNewline || $0 == "\"" }) else {
            throw .invalidRequest("the \(label) '\(value.replacingOccurrences(of: "\n", with: "\\n"))' holds a line break or a double quote, which #SBATCH lines cannot carry")
        }
        return value.contains(where: \.isWhitespace) ? "\"\(value)\"" : value
    }
}
