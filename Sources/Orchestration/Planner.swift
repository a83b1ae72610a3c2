import Analyses
import AnnData
import Foundation

/// How to split a run, as asked on the command line.
public struct ShardingRequest: Sendable {
    public var axis: Plan.Axis?
    /// An exact shard count (capped at the unit count).
    public var shards: Int?
    /// Otherwise: as many shards as the cost model needs to keep each near this many seconds.
    public var targetShardSeconds: Double
    public var threads: Int
    /// Memory per worker; nil: DE sizes it to gather a shard's matrix in one pass (see
    /// `Planner.automaticDEMemoryGB`), DiD takes `defaultMemoryGB`.
    public var memoryGB: Double?

    public static let defaultTargetShardSeconds = 300.0
    public static let defaultMemoryGB = 2.0

    public init(axis: Plan.Axis? = nil, shards: Int? = nil, targetShardSeconds: Double = defaultTargetShardSeconds,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount, memoryGB: Double? = nil) {
        self.axis = axis
        self.shards = shards
        self.targetShardSeconds = targetShardSeconds
        self.threads = threads
        self.memoryGB = memoryGB
    }
}

/// A plan and its human summary (`plan.txt`).
public struct PlannedRun: Sendable {
    public var plan: Plan
    public var text: String
    /// What the user should know about the results before running (printed on stderr).
    public var warnings: [String] = []
}

/// Turns an analysis and a sharding request into a plan: units along an axis, contiguous shards
/// balanced by a cost model, the read path each uses, and the one-off passes (a staged
/// gene-major copy, gene totals, library sizes) that keep shards from repeating work.
public enum Planner {
    /// Progress lines (staging, passes) go here; nil keeps quiet.
    public typealias Progress = @Sendable (String) -> Void

    // MARK: DE

    /// Memory per DE worker when none is asked for: enough to gather the largest shard's cells ×
    /// genes in one pass (a window per thread) rather than re-reading the matrix once per gene
    /// window, at least the 2 GB default and at most half of this machine's memory (or 16 GB).
    /// `needed`: the gathered copy counted twice (the gather budget is half the memory) plus the
    /// output rows.
    static func automaticDEMemoryGB(_ needed: Double) -> Double {
        let ceiling = min(16, Double(ProcessInfo.processInfo.physicalMemory) / 2 / 1e9)
        let wanted = ((needed + 256e6) / 1e9 * 10).rounded(.up) / 10
        return max(ShardingRequest.defaultMemoryGB, min(ceiling, wanted))
    }

    /// `strict`: refuse a matrix with negative values instead of warning that fold and percent
    /// change are not meaningful on it.
    public static func planDE(input path: String, parameters: DEParameters, request: ShardingRequest, run: RunDirectory,
                              dryRun: Bool = false, strict: Bool = false, progress: Progress? = nil) throws -> PlannedRun {
        do {
            let file = try AnnDataFile(path: path)
            let labels = try file.obs.column(parameters.groupbyKey, expectedCount: file.nObs).labels()
            let design = try DEDesign(labels: labels, parameters: parameters, file: path)
            if let groups = parameters.groups {
                let absent = groups.filter { !design.targets.contains($0) && $0 != design.referenceName }
                if absent.count == groups.count {
                    throw AnalysisError("\(path): none of --groups (\(groups.joined(separator: ", "))) is a label of obs column '\(parameters.groupbyKey)'")
                }
            }
            guard !design.targets.isEmpty else {
                throw AnalysisError("\(path): obs column '\(parameters.groupbyKey)' has no target besides the reference")
            }
            let matrixName = parameters.layer ?? "X"
            let matrix = try file.matrix(matrixName)
            progress?("checking \(matrix.info.path): one pass over \(matrix.info.nnz) stored values")
            let profile = try DifferentialExpression.profile(matrix)
            // The profile reads values only; shards read indices too: measure as they read.
            let readRate = try CostModel.measureReadRate(matrix)
            let isLog1p: Bool
            switch parameters.isLog1p {
            case .yes: isLog1p = true
            case .no: isLog1p = false
            case .auto: isLog1p = profile.looksLog1p
            }
            if profile.nonFinite > 0 {
                throw AnalysisError("\(path): \(matrix.info.path) has \(profile.nonFinite) non-finite values (NaN or inf)")
            }
            // Scaled (z-scored) data, as sc.pp.scale leaves X: rank and t tests are valid and pdex
            // computes everything, so do we; only the fold and percent change (ratios of means, or
            // of expm1 of means) lose their meaning, which is said rather than refused.
            var warnings: [String] = []
            let negativeMinimum: Double? = profile.minimum < 0 ? profile.minimum : nil
            if let minimum = negativeMinimum {
                let what = "\(path): \(matrix.info.path) has negative values (minimum \(minimum)), e.g. scaled (z-scored) data"
                if strict {
                    throw AnalysisError("\(what); --strict refuses it: give counts or normalised data (--layer)")
                }
                warnings.append("\(what): the tests are computed as pdex does, but fold_change and percent_change are not meaningful for negative data (use counts or normalised data, e.g. --layer, for them; --strict refuses such data)")
            }
            let info = matrix.info
            let csr = info.format == .csr
            // Perturbation shards read their targets' and the reference's rows; a reference spread
            // over the whole file makes each of them read it all, so genes are split instead.
            let referenceCoverage = design.referenceRows.map { CostModel.rowCoverage($0, nRows: matrix.info.nRows) } ?? 1
            let axis = request.axis ?? (csr && referenceCoverage <= CostModel.maximumRowSubsetCoverage ? .perturbations : .features)
            guard axis != .celltypes else {
                throw OrchestrationError("--axis celltypes is for DiD --by-celltype; DE splits by perturbations or features")
            }
            let genes = try file.vars.index()
            let density = Double(info.nnz) / Double(max(1, info.nRows * info.nCols))
            let referenceCells = design.referenceRows?.count ?? 0
            // Costs in seconds. Reading: stored values at the rate measured above. Testing: a
            // fixed cost per target × gene (p-value, fold change, the row) plus the stored values
            // compared (the target's, and the reference's, which is sorted once per gene).
            let threads = Double(max(1, request.threads))
            let perTest = CostModel.deSecondsPerTest / threads
            let perValue = CostModel.deSecondsPerComparedValue * density / threads
            let genesCount = Double(info.nCols)
            let rest = design.referenceRows == nil
            let rawCosts: [Double]
            let rawFixed: Double
            switch axis {
            case .perturbations:
                rawCosts = design.targetRows.map { rows in
                    let compared = Double(rest ? info.nRows : rows.count)
                    return (Double(rows.count) * density / readRate + perTest + compared * perValue) * genesCount
                }
                rawFixed = rest
                    ? Double(info.nnz) / readRate
                    : Double(referenceCells) * genesCount * (density / readRate + perValue)
            default:
                let compared = Double(rest ? info.nRows * design.targets.count : info.nRows)
                rawCosts = Array(repeating: Double(info.nRows) * density / readRate + Double(design.targets.count) * perTest
                                 + compared * perValue, count: genes.count)
                rawFixed = 0
            }
            let correction = measuredCorrection(run, kind: .de)
            let unitCosts = rawCosts.map { $0 * (correction?.ratio ?? 1) }
            let fixedCost = rawFixed * (correction?.ratio ?? 1)
            let ranges = partition(unitCosts, fixedCost: fixedCost, request: request)
            let readPath: Plan.ReadPath
            switch axis {
            case .perturbations: readPath = design.referenceRows == nil || !csr || ranges.count == 1 ? .allRows : .rowSubset
            default: readPath = !csr ? .columnRange : (ranges.count == 1 ? .allRows : .stagedColumns)
            }
            // A shard's gathered copy of its cells × genes, and its output rows.
            let gathered = { (range: Range<Int>) -> Double in
                let cells = axis == .perturbations
                    ? design.targetRows[range].reduce(referenceCells) { $0 + $1.count } : info.nRows
                let geneCount = axis == .perturbations ? info.nCols : range.count
                return Double(cells) * Double(geneCount) * density * Double(matrix.gatheredBytesPerEntry)
            }
            let outputs = { (range: Range<Int>) -> Double in
                Double(axis == .perturbations ? range.count : design.targets.count)
                    * Double(axis == .perturbations ? info.nCols : range.count) * Double(MemoryLayout<DEValues>.stride)
            }
            let memoryGB = request.memoryGB ?? automaticDEMemoryGB(ranges.map { 2 * gathered($0) + outputs($0) }.max() ?? 0)
            var request = request
            request.memoryGB = memoryGB
            let memory = { (range: Range<Int>) -> Int in
                Int(min(gathered(range), memoryGB * 1e9 / 2) + outputs(range) + memoryGB * 1e9 / 8)
            }
            let analysis = Plan.Analysis(kind: .de, de: .init(parameters: parameters, isLog1p: isLog1p, targets: design.targets,
                                                              referenceName: design.referenceName, genes: genes,
                                                              negativeMinimum: negativeMinimum))
            let plan = try makePlan(path: path, file: file, matrices: [matrixName], analysis: analysis, axis: axis,
                                    readPath: readPath, ranges: ranges, unitCosts: unitCosts, fixedCost: fixedCost,
                                    memory: memory, request: request)
            let model = String(format: "read %.1fM stored values/s (measured on this file), %.1f µs per test + %.0f ns per compared stored value", readRate / 1e6, CostModel.deSecondsPerTest * 1e6, CostModel.deSecondsPerComparedValue * 1e9) + (correction?.text ?? "")
            let spread = design.referenceRows == nil || !csr ? "" : String(format: " (reference cells touch %.0f%% of the file's row blocks)", referenceCoverage * 100)
            let description = "DE (\(parameters.metric.rawValue), reference \(design.referenceName)) on \(path): \(file.nObs) cells × \(file.nVars) genes, \(matrixName) \(info.format.rawValue) \(info.dtype.rawValue), \(info.nnz) stored values; \(design.targets.count) targets\(spread); log1p \(isLog1p)"
            var planned = try finish(plan, run: run, dryRun: dryRun, description: description, model: model) { plan in
                if readPath == .stagedColumns { plan.staged.matrix = try stage(matrix, run: run, progress: progress) }
            }
            planned.warnings = warnings
            return planned
        } catch let error as AnnDataError {
            throw AnalysisError(error)
        }
    }

    // MARK: DiD

    public static func planDiD(input path: String, parameters: DiDParameters, request: ShardingRequest, run: RunDirectory,
                               dryRun: Bool = false, progress: Progress? = nil) throws -> PlannedRun {
        do {
            // Fail on the design before any pass over the matrix.
            let first = try DiDAnalysis.outline(path: path, parameters: parameters, geneTotals: nil)
            if parameters.minGeneCounts != nil || parameters.log1pCPMFrom != nil {
                progress?("computing gene totals / library sizes: one pass over \(first.matrixName)")
            }
            let (totals, libraries) = try DiDAnalysis.prepass(path: path, parameters: parameters)
            let outline = totals == nil ? first : try DiDAnalysis.outline(path: path, parameters: parameters, geneTotals: totals)
            guard !outline.features.isEmpty else {
                throw AnalysisError("\(path): no features to test (--min-gene-counts dropped every gene)")
            }
            let file = try AnnDataFile(path: path)
            let info = try file.matrixInfo(outline.matrixName)
            let csr = info.format == .csr
            // Cell-type shards read row subsets: worth it only when a cell type's cells sit
            // together in the file; interleaved ones would make every shard read it all.
            let celltypeCoverage = outline.rowsPerCelltype.map { CostModel.rowCoverage($0, nRows: info.nRows) }.max() ?? 1
            let axis = request.axis ?? (parameters.byCelltype && csr && outline.celltypes.count > 1
                                        && celltypeCoverage <= CostModel.maximumRowSubsetCoverage ? .celltypes : .features)
            switch axis {
            case .perturbations: throw OrchestrationError("--axis perturbations is for DE; DiD splits by features or celltypes")
            case .celltypes where !parameters.byCelltype:
                throw OrchestrationError("--axis celltypes needs --by-celltype")
            default: break
            }
            let readRate = try CostModel.measureReadRate(file.matrix(outline.matrixName))
            let density = Double(info.nnz) / Double(max(1, info.nRows * info.nCols))
            let cells = Double(outline.cellsPerCelltype.reduce(0, +))
            let features = Double(outline.features.count)
            let units = Double(max(1, parameters.aggregate == .cell ? Int(cells) : outline.cellsPerCelltype.count * 64))
            let rawCosts: [Double]
            switch axis {
            case .celltypes:
                rawCosts = outline.cellsPerCelltype.map { n in
                    Double(n) * features * density / readRate + CostModel.didSecondsPerUnitFeature * units * features
                }
            default:
                let perFeature = cells * density / readRate + CostModel.didSecondsPerUnitFeature * units
                rawCosts = Array(repeating: perFeature, count: outline.features.count)
            }
            let correction = measuredCorrection(run, kind: .did)
            let unitCosts = rawCosts.map { $0 * (correction?.ratio ?? 1) }
            let ranges = partition(unitCosts, fixedCost: 0, request: request)
            let readPath: Plan.ReadPath
            if !outline.readsMatrix {
                readPath = parameters.geneSets == nil ? .none : (csr && ranges.count > 1 && axis == .features ? .stagedColumns : .allRows)
            } else if axis == .celltypes {
                readPath = csr ? .rowSubset : .allRows
            } else {
                readPath = !csr ? .columnRange : (ranges.count == 1 ? .allRows : .stagedColumns)
            }
            let memoryGB = request.memoryGB ?? ShardingRequest.defaultMemoryGB
            let memory = { (range: Range<Int>) -> Int in
                let width = axis == .features ? Double(range.count) : features
                return Int(units * width * 8 * 3 + memoryGB * 1e9 / 8)
            }
            var matrices = [outline.matrixName]
            if parameters.geneSets != nil { matrices.append(parameters.layer ?? "X") }
            let analysis = Plan.Analysis(kind: .did, did: .init(parameters: parameters, features: outline.features, celltypes: outline.celltypes))
            let plan = try makePlan(path: path, file: file, matrices: matrices, analysis: analysis, axis: axis,
                                    readPath: readPath, ranges: ranges, unitCosts: unitCosts, fixedCost: 0,
                                    memory: memory, request: request)
            let model = String(format: "read %.1fM stored values/s (measured on this file), fit %.0f ns per unit × feature", readRate / 1e6, CostModel.didSecondsPerUnitFeature * 1e9) + (correction?.text ?? "")
            var blocks = parameters.byCelltype ? ", \(outline.celltypes.count) cell types" : ""
            if parameters.byCelltype && csr {
                blocks += String(format: " (their cells touch up to %.0f%% of the file's row blocks)", celltypeCoverage * 100)
            }
            let description = "DiD on \(path): \(file.nObs) cells × \(file.nVars) genes, \(outline.matrixName) \(info.format.rawValue) \(info.dtype.rawValue), \(info.nnz) stored values; \(outline.features.count) features\(blocks)"
            return try finish(plan, run: run, dryRun: dryRun, description: description, model: model) { plan in
                if readPath == .stagedColumns {
                    plan.staged.matrix = try stage(file.matrix(outline.matrixName), run: run, progress: progress)
                }
                if let totals {
                    plan.staged.geneTotals = "staged/gene_totals.f64"
                    try StagedVector.write(totals, to: run.resolve("staged/gene_totals.f64"))
                }
                if let libraries {
                    plan.staged.librarySizes = "staged/library_sizes.f64"
                    try StagedVector.write(libraries, to: run.resolve("staged/library_sizes.f64"))
                }
            }
        } catch let error as AnnDataError {
            throw AnalysisError(error)
        }
    }

    // MARK: Shared

    /// Writes the run directory unless this is a dry run: the previous plan's output cleared,
    /// `prepare` computes what the shards share into RUN/staged (recording it in the plan), then
    /// plan.json and plan.txt.
    static func finish(_ plan: Plan, run: RunDirectory, dryRun: Bool, description: String, model: String,
                       prepare: (inout Plan) throws -> Void) throws -> PlannedRun {
        var plan = plan
        if !dryRun {
            try run.clearPreviousRun()
            try run.create()
            try prepare(&plan)
            try run.write(plan)
        }
        let text = summary(plan, description: description, model: model)
        if !dryRun { try AtomicFile.write(Data(text.utf8), to: run.planTextURL) }
        return PlannedRun(plan: plan, text: text)
    }

    /// How the shards of the plan this directory held before measured against their estimates
    /// (their done markers' seconds): planning the same kind of analysis again there scales the
    /// cost model by it, so estimates and shard counts learn from real runs on this machine.
    static func measuredCorrection(_ run: RunDirectory, kind: Plan.Analysis.Kind) -> (ratio: Double, text: String)? {
        guard let previous = try? run.readPlan(), previous.analysis.kind == kind else { return nil }
        let measured = previous.shards.compactMap { shard -> (Double, Double)? in
            guard ShardWorker.isDone(previous, run: run, shard: shard.index),
                  let marker = ShardMarker.read(run.markerURL(shard.index)) else { return nil }
            return (marker.seconds, shard.estimatedSeconds)
        }
        let estimated = measured.reduce(0) { $0 + $1.1 }
        guard !measured.isEmpty, estimated > 0 else { return nil }
        let ratio = min(20, max(0.05, measured.reduce(0) { $0 + $1.0 } / estimated))
        return (ratio, String(format: "; corrected ×%.2f by %d shards measured in this directory's previous run", ratio, measured.count))
    }

    static func makePlan(path: String, file: AnnDataFile, matrices: [String], analysis: Plan.Analysis, axis: Plan.Axis,
                         readPath: Plan.ReadPath, ranges: [Range<Int>], unitCosts: [Double], fixedCost: Double,
                         memory: (Range<Int>) -> Int, request: ShardingRequest) throws -> Plan {
        let stamp = try Plan.fileStamp(path)
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        let fingerprint = try InputFingerprint.compute(path: path, matrices: matrices)
        let shards = ranges.enumerated().map { index, range in
            Plan.Shard(index: index, start: range.lowerBound, end: range.upperBound,
                       estimatedSeconds: fixedCost + unitCosts[range].reduce(0, +), estimatedMemoryBytes: memory(range))
        }
        return Plan(runID: String(format: "%08x", UInt32.random(in: 0...UInt32.max)),
                    createdAt: Timestamp.now(),
                    input: .init(path: absolute, sizeBytes: stamp.size, modified: stamp.modified, nObs: file.nObs, nVars: file.nVars,
                                 fingerprint: fingerprint, matrices: Array(Set(matrices)).sorted()),
                    analysis: analysis, axis: axis, readPath: readPath, shards: shards,
                    resources: .init(threads: request.threads, memoryGB: request.memoryGB ?? ShardingRequest.defaultMemoryGB),
                    staged: .init())
    }

    /// Contiguous shards (global order is then concatenation) with costs as equal as the units
    /// allow: cut where the running cost crosses each multiple of total / N.
    static func partition(_ costs: [Double], fixedCost: Double, request: ShardingRequest) -> [Range<Int>] {
        let total = costs.reduce(0, +)
        let wanted: Int
        if let shards = request.shards {
            wanted = shards
        } else {
            // Each shard pays the fixed cost (e.g. reading the reference cells) again.
            let perShard = max(request.targetShardSeconds - fixedCost, request.targetShardSeconds / 2)
            wanted = Int((total / perShard).rounded(.up))
        }
        let count = max(1, min(wanted, costs.count))
        var ranges: [Range<Int>] = []
        var start = 0
        var running = 0.0
        for (index, cost) in costs.enumerated() {
            running += cost
            let remainingShards = count - ranges.count - 1
            let remainingUnits = costs.count - index - 1
            let boundary = total * Double(ranges.count + 1) / Double(count)
            if remainingShards > 0 && (running >= boundary || remainingUnits == remainingShards) {
                ranges.append(start..<(index + 1))
                start = index + 1
            }
        }
        ranges.append(start..<costs.count)
        return ranges
    }

    /// Writes `RUN/staged/matrix.h5`, the gene-major copy feature shards read their columns from.
    static func stage(_ matrix: MatrixReader, run: RunDirectory, progress: Progress?) throws -> String {
        let relative = "staged/matrix.h5"
        try FileManager.default.createDirectory(at: run.stagedURL, withIntermediateDirectories: true)
        progress?("staging a gene-major copy of \(matrix.info.path) (\(matrix.info.nnz) stored values) at \(run.resolve(relative).path)")
        let clock = ContinuousClock.now
        var reported = 0
        let summary = try GeneMajorCopy.write(matrix, to: run.resolve(relative).path) { fraction in
            let percent = Int(fraction * 100)
            if percent >= reported + 10 { reported = percent - percent % 10; progress?("  staged \(reported)%") }
        }
        progress?(String(format: "staged %.1f MB in %.1f s", Double(summary.bytes) / 1e6, seconds(since: clock)))
        return relative
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = (ContinuousClock.now - start).components
        return Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
    }

    /// `plan.txt`: what a person checks before spending cluster hours.
    static func summary(_ plan: Plan, description: String, model: String) -> String {
        let units = plan.units
        var text = "run \(plan.runID): \(description)\n"
        text += "axis: \(plan.axis.rawValue), \(units.count) units; \(plan.shards.count) shard\(plan.shards.count == 1 ? "" : "s")\n"
        text += "read path: \(plan.readPath.description)\n"
        if let staged = plan.staged.matrix { text += "staged: gene-major copy \(staged), made once at planning\n" }
        text += "cost model: \(model)\n"
        text += "per worker: \(plan.resources.threads) threads, \(String(format: "%.1f", plan.resources.memoryGB)) GB\n\n"
        text += "shard  units            first … last                           est. s  est. memory\n"
        for shard in plan.shards {
            let span = "\(shard.start)-\(shard.end - 1) (\(shard.units.count))"
            let names = "\(units[shard.start].prefix(16)) … \(units[shard.end - 1].prefix(16))"
            text += String(format: "%05d  %@ %@ %7.1f  %@\n", shard.index, span.padding(toLength: 16, withPad: " ", startingAt: 0),
                           names.padding(toLength: 38, withPad: " ", startingAt: 0), shard.estimatedSeconds,
                           CostModel.bytes(shard.estimatedMemoryBytes))
        }
        let total = plan.shards.reduce(0) { $0 + $1.estimatedSeconds }
        text += String(format: "\nestimated work: %.1f s in all, %.1f s for the largest shard\n", total,
                       plan.shards.map(\.estimatedSeconds).max() ?? 0)
        return text
    }
}

/// Cost coefficients, measured with bench/ on this project's reference machine (2 cores);
/// reading is measured on each input at planning.
enum CostModel {
    /// DE, one thread: seconds per target × gene test, and per stored value compared (60K ×
    /// 2,000 × 200 and 300K × 8,000 × 2,000 bench files: about 1 µs per test dominates, the
    /// shard's write of its rows included).
    static let deSecondsPerTest = 1.2e-6
    static let deSecondsPerComparedValue = 2e-9
    /// DiD: seconds per pseudobulk unit per feature for the batched fit.
    static let didSecondsPerUnitFeature = 2e-7

    /// Rows per block when judging how much of a file a row subset touches (the reader merges
    /// nearby rows into one read, and HDF5 reads whole chunks).
    static let rowBlock = 2048
    /// Above this coverage a row-subset shard costs about a full pass.
    static let maximumRowSubsetCoverage = 0.5

    /// Fraction of `rowBlock`-row blocks holding at least one of `rows`.
    static func rowCoverage(_ rows: [Int], nRows: Int) -> Double {
        let blocks = max(1, (nRows + rowBlock - 1) / rowBlock)
        var touched = 0
        var last = -1
        for row in rows where row / rowBlock != last {
            last = row / rowBlock
            touched += 1
        }
        return Double(touched) / Double(blocks)
    }

    /// Values read to measure the read speed: enough to span a few HDF5 chunks.
    static let sampleValues = 5e5

    /// Stored values per second read from the first rows (CSR, dense) or columns (CSC): a quick,
    /// representative sample of the file's storage and compression.
    static func measureReadRate(_ matrix: MatrixReader) throws -> Double {
        let info = matrix.info
        let density = Double(info.nnz) / Double(max(1, info.nRows * info.nCols))
        let clock = ContinuousClock.now
        var values = 0
        if info.format == .csc {
            let width = max(1, min(info.nCols, Int(Self.sampleValues / max(1, density * Double(info.nRows)))))
            var blocks = try matrix.blocks(columns: 0..<width)
            while let slab = try blocks.next() { values += slab.storedCount }
        } else {
            let height = max(1, min(info.nRows, Int(Self.sampleValues / max(1, density * Double(info.nCols)))))
            var blocks = try matrix.blocks(rows: Array(0..<height))
            while let slab = try blocks.next() { values += slab.storedCount }
        }
        return Double(max(values, 1)) / max(1e-4, Planner.seconds(since: clock))
    }

    static func bytes(_ count: Int) -> String {
        count >= 1 << 30 ? String(format: "%.1f GB", Double(count) / 1e9) : String(format: "%.0f MB", Double(count) / 1e6)
    }
}
