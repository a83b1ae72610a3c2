import AnnData
import Stats
import Foundation

/// Difference-in-differences (sctrial 1.0 `did_table` / `did_table_by_celltype`) as planned:
/// split by features, or by cell types with --by-celltype.
public struct PlannedDiD: ShardedAnalysis {
    public static let name = "did"
    static let partKind: UInt8 = 2

    public var parameters: DiDParameters
    /// Feature names in result order (after --min-gene-counts).
    public var features: [String]
    /// Cell-type blocks in result order; one null entry for a plain did_table.
    public var celltypes: [String?]

    public func units(along axis: ShardAxis) -> [String] {
        axis == .celltypes ? celltypes.map { $0 ?? "" } : features
    }

    public func computeShard(_ input: ShardInput) throws -> DiDShardResult {
        var selection = DiDSelection(stagedMatrix: input.staged.matrix)
        selection.geneTotals = try input.staged.geneTotals.map { try StagedVector.read($0) }
        selection.librarySizes = try input.staged.librarySizes.map { try StagedVector.read($0) }
        switch input.axis {
        case .features: selection.features = input.units
        case .celltypes: selection.celltypes = input.units
        default: throw AnalysisError("\(input.planPath): a DiD plan cannot be split by \(input.axis.rawValue)")
        }
        return try DiDAnalysis.shard(path: input.inputPath, parameters: parameters, selection: selection, budget: input.budget)
    }

    public func rowCount(_ result: DiDShardResult) -> Int { result.rows.count }

    public func writePart<Sink: ByteSink>(_ result: DiDShardResult, input: ShardInput, keep: Bool,
                                          into sink: inout Sink) throws -> (any Sendable)? {
        try sink.append(bytes: DiDPart.encode(result, shard: input.index))
        return nil
    }

    public func reduce<Sink: ByteSink>(_ input: ReduceInput, into sink: inout Sink) throws -> TableSummary {
        var rows: [DiDRow] = []
        var skipped: [(String, String)] = []
        var seen = Set<String>()
        for part in input.parts {
            let decoded: DiDShardResult
            do {
                decoded = try DiDPart.decode(Data(contentsOf: part.file), shard: part.shard, file: part.file.path)
            } catch let error as AnalysisError {
                throw error
            } catch {
                throw AnalysisError("\(part.file.path): cannot read part: \(error.localizedDescription)")
            }
            rows += decoded.rows
            for (celltype, why) in decoded.skipped where seen.insert(celltype).inserted { skipped.append((celltype, why)) }
        }
        // Skipped cell types in block order, whichever shard reported them.
        let blockIndex = Dictionary(celltypes.enumerated().compactMap { entry in entry.element.map { ($0, entry.offset) } },
                                    uniquingKeysWith: { a, _ in a })
        skipped.sort { (blockIndex[$0.0] ?? 0) < (blockIndex[$1.0] ?? 0) }
        let table = DiDTable(rows: rows, celltypes: celltypes, byCelltype: parameters.byCelltype, skipped: skipped)
        try sink.append(table.csv())
        let fdrColumn = parameters.byCelltype ? "FDR_DiD_stratified" : "FDR_DiD"
        return TableSummary(rows: table.rows.count, fdrColumn: fdrColumn,
                            fdr: table.rows.map { parameters.byCelltype ? $0.fdrStratified : $0.fdr })
    }
}

/// DiD rows in and out of parts.
enum DiDPart {
    static func encode(_ result: DiDShardResult, shard: Int) -> [UInt8] {
        var out = BinaryEncoder()
        out.header(kind: PlannedDiD.partKind, shard: shard, rows: result.rows.count)
        out.append(UInt32(result.skipped.count))
        for (celltype, why) in result.skipped { out.append(celltype); out.append(why) }
        for row in result.rows {
            let r = row.result
            out.append(row.feature)
            out.append(UInt8(row.celltype == nil ? 0 : 1))
            out.append(row.celltype ?? "")
            for value in [r.betaDiD, r.seDiD, r.pDiD, r.betaTime, r.pTime, r.residSD] { out.append(value) }
            out.append(Int64(r.nUnits))
            out.append(r.covType?.rawValue ?? "")
            out.append(r.nanReason?.rawValue ?? "")
            out.append(UInt8(r.bootstrap == nil ? 0 : 1))
            if let b = r.bootstrap {
                for value in [b.pValue, b.standardError, b.ciLow, b.ciHigh] { out.append(value) }
                out.append(Int64(b.validDraws))
            }
        }
        return out.bytes
    }

    static func decode(_ data: Data, shard: Int, file: String) throws -> DiDShardResult {
        var input = BinaryDecoder(data, file: file)
        let count = try input.header(kind: PlannedDiD.partKind, shard: shard)
        var skipped: [(celltype: String, why: String)] = []
        for _ in 0..<Int(try input.read(UInt32.self)) { skipped.append((try input.string(), try input.string())) }
        var rows: [DiDRow] = []
        rows.reserveCapacity(count)
        for _ in 0..<count {
            let feature = try input.string()
            let hasCelltype = try input.read(UInt8.self) == 1
            let celltype = try input.string()
            let numbers = try (0..<6).map { _ in try input.double() }
            let units = Int(try input.read(Int64.self))
            let covType = DiDCovarianceType(rawValue: try input.string())
            let nanReason = DiDNaNReason(rawValue: try input.string())
            var bootstrap: DiDBootstrapResult?
            if try input.read(UInt8.self) == 1 {
                let b = try (0..<4).map { _ in try input.double() }
                bootstrap = DiDBootstrapResult(pValue: b[0], standardError: b[1], ciLow: b[2], ciHigh: b[3],
                                               validDraws: Int(try input.read(Int64.self)))
            }
            let result = DiDFeatureResult(betaDiD: numbers[0], seDiD: numbers[1], pDiD: numbers[2], betaTime: numbers[3],
                                          pTime: numbers[4], nUnits: units, residSD: numbers[5], covType: covType,
                                          nanReason: nanReason, bootstrap: bootstrap)
            rows.append(DiDRow(feature: feature, celltype: hasCelltype ? celltype : nil, result: result))
        }
        try input.finish()
        return DiDShardResult(rows: rows, skipped: skipped)
    }
}

