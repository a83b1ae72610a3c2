import AnnData
import Foundation
import Stats

/// The obs columns of a trial design, read once per run. Labels are kept as codes: a design
/// groups 10⁵-10⁶ cells, and comparing codes costs far less than comparing strings.
struct TrialObs {
    let participant: Column
    let participantLabels: CodedLabels
    let visit: CodedLabels
    let arm: CodedLabels
    let celltype: CodedLabels?
    let crossover: [Bool]?
    let covariates: [Column]

    init(file: AnnDataFile, parameters p: DiDParameters) throws(AnalysisError) {
        let n = file.nObs
        func column(_ name: String, _ role: String) throws(AnalysisError) -> Column {
            guard file.obs.columnNames.contains(name) else {
                throw AnalysisError("\(file.path): obs has no column '\(name)' (\(role)); columns: \(file.obs.columnNames.prefix(12).joined(separator: ", "))")
            }
            do { return try file.obs.column(name, expectedCount: n) } catch { throw AnalysisError(error) }
        }
        participant = try column(p.participantCol, "--participant-col")
        participantLabels = participant.coded()
        visit = try column(p.visitCol, "--visit-col").coded()
        arm = try column(p.armCol, "--arm-col").coded()
        let needsCelltype = p.celltype != nil || p.byCelltype || p.aggregate == .participantVisitCelltype
        if let name = p.celltypeCol, needsCelltype || file.obs.columnNames.contains(name) {
            celltype = try column(name, "--celltype-col").coded()
        } else if needsCelltype {
            throw AnalysisError("\(file.path): a cell-type analysis needs --celltype-col")
        } else {
            celltype = nil
        }
        crossover = try p.crossoverCol.map { (name) throws(AnalysisError) in Self.crossoverFlags(try column(name, "--crossover-col")) }
        var covariates: [Column] = []
        for name in p.covariates { covariates.append(try column(name, "--covariates")) }
        self.covariates = covariates
    }

    /// The codes of `visits`; -2, which no cell has (missing is -1), for a visit no level names.
    private func codes(ofVisits visits: [String]) -> [Int32] { visits.map { visit.code(of: $0) ?? -2 } }

    /// Cells at either of the two visits, and how many of them are in the treated arm.
    func armCounts(atVisits visits: [String], treated: String) -> (cells: Int, treated: Int) {
        let wanted = codes(ofVisits: visits)
        let treatedCode = arm.code(of: treated) ?? -2
        var cells = 0, inArm = 0
        for (code, armCode) in zip(visit.codes, arm.codes) where code >= 0 && wanted.contains(code) {
            cells += 1
            if armCode == treatedCode { inArm += 1 }
        }
        return (cells, inArm)
    }

    /// Cells at either of the two visits (and in `celltype` when given), ascending.
    func cells(atVisits visits: [String], celltype: String?) -> [Int] {
        let wanted = codes(ofVisits: visits)
        let celltypeCode = celltype.map { self.celltype?.code(of: $0) ?? -2 }
        let celltypeCodes = self.celltype?.codes
        return visit.codes.indices.filter { cell in
            let code = visit.codes[cell]
            guard code >= 0, wanted.contains(code) else { return false }
            guard let celltypeCode else { return true }
            return celltypeCodes?[cell] == celltypeCode
        }
    }

    /// sctrial's `_to_bool_series`: bools as they are, numbers true when finite and non-zero,
    /// text true for 1/true/t/yes/y (case and spaces ignored); missing is false.
    static func crossoverFlags(_ column: Column) -> [Bool] {
        switch column.values {
        case .bool(let values): return values
        case .nullableBoolean(let values, let mask): return zip(values, mask).map { $0 && !$1 }
        case .numeric, .nullableInteger:
            return column.numbers()!.map { $0.map { $0.isFinite && $0 != 0 } ?? false }
        case .categorical(let c):
            // str() of a float category prints "1.0", which is not a true word.
            let truthy: Set<String> = ["1", "true", "t", "yes", "y"]
            let words: [Bool] = (0..<c.levels.count).map { index in
                if case .numbers(_, let type) = c.levels, type == .float32 || type == .float64 { return false }
                return truthy.contains(c.levels.label(index).trimmingCharacters(in: .whitespaces).lowercased())
            }
            return c.codes.map { $0 >= 0 && words[Int($0)] }
        case .string, .nullableString:
            let truthy: Set<String> = ["1", "true", "t", "yes", "y"]
            return column.labels().map { $0.map { truthy.contains($0.trimmingCharacters(in: .whitespaces).lowercased()) } ?? false }
        }
    }

    var isCategoricalParticipant: Bool {
        if case .categorical = participant.values { return true }
        return false
    }

    /// numpy sorts numbers numerically and strings by code point; bootstrap signs are dealt to
    /// participants in that order, so codes must follow it.
    func participantOrder(_ labels: Set<String>) -> [String] {
        let numeric: Bool
        switch participant.values {
        case .numeric, .nullableInteger, .bool, .nullableBoolean: numeric = true
        case .categorical(let c): if case .numbers = c.levels { numeric = true } else { numeric = false }
        case .string, .nullableString: numeric = false
        }
        // Bools print as False/True (pandas' spelling) and sort as 0/1.
        func number(_ label: String) -> Double { Double(label) ?? (label == "True" ? 1 : label == "False" ? 0 : .nan) }
        if numeric { return labels.sorted { number($0) < number($1) } }
        return labels.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
    }
}

/// The units (rows of the regression) of one did_table call.
struct DiDUnits {
    /// Unit of each cell of the file (-1: not used).
    var unitOfCell: [Int32]
    var participant: [Int] = []
    var visit: [Double] = []
    var arm: [Double] = []
    var cellCount: [Double] = []
    var participantLevels: DiDDesign.Levels
    var count: Int { participant.count }

    /// Subsets cells (§1.2), groups them into units (§1.5) and keeps paired participants (§1.6).
    init(obs: TrialObs, parameters p: DiDParameters, celltype: String?) throws(AnalysisError) {
        let pre = p.visits[0], post = p.visits[1]
        let postCode = obs.visit.code(of: post) ?? -2
        var kept = obs.cells(atVisits: [pre, post], celltype: celltype)
        if let crossover = obs.crossover { kept.removeAll { crossover[$0] } }
        unitOfCell = [Int32](repeating: -1, count: obs.visit.codes.count)
        // anndata drops unused categories at each subset, so a categorical participant column
        // contributes every participant with a kept cell to K (§1.7.4).
        let labels = obs.participantLabels
        var isPresent = [Bool](repeating: false, count: labels.levels.count)
        for cell in kept where labels.codes[cell] >= 0 { isPresent[Int(labels.codes[cell])] = true }
        let present = Set(labels.levels.indices.filter { isPresent[$0] }.map { labels.levels[$0] })
        participantLevels = obs.isCategoricalParticipant ? .categories(max(1, present.count)) : .observed
        let order = obs.participantOrder(present)
        let rank = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        let codeRank = labels.levels.map { rank[$0] ?? -1 }

        // A unit is a (participant, visit, arm[, cell type]) key, numbered in order of first cell.
        let treatedCode = obs.arm.code(of: p.treated)
        let withCelltype = p.aggregate == .participantVisitCelltype
        let celltypeCodes = obs.celltype?.codes
        let armCount = obs.arm.levels.count, celltypeCount = withCelltype ? obs.celltype?.levels.count ?? 0 : 1
        var unitOfKey = UnitIndex(keys: order.count * 2 * armCount * celltypeCount, cells: kept.count)
        for cell in kept {
            let participantCode = labels.codes[cell]
            guard participantCode >= 0 else { continue }
            let participantRank = codeRank[Int(participantCode)]
            let isPost = obs.visit.codes[cell] == postCode
            let armCode = obs.arm.codes[cell]
            let unit: Int
            switch p.aggregate {
            case .cell:
                unit = participant.count
            case .participantVisit, .participantVisitCelltype:
                // pandas groupby(observed=True) drops groups with a missing key.
                guard armCode >= 0 else { continue }
                var celltypeCode: Int32 = 0
                if withCelltype {
                    guard let code = celltypeCodes?[cell], code >= 0 else { continue }
                    celltypeCode = code
                }
                let key = ((participantRank * 2 + (isPost ? 1 : 0)) * armCount + Int(armCode)) * celltypeCount + Int(celltypeCode)
                if let existing = unitOfKey.unit(key, orNew: participant.count) {
                    unitOfCell[cell] = Int32(existing)
                    cellCount[existing] += 1
                    continue
                }
                unit = participant.count
            }
            unitOfCell[cell] = Int32(unit)
            participant.append(participantRank)
            visit.append(isPost ? 1 : 0)
            arm.append(armCode == treatedCode ? 1 : 0)
            cellCount.append(1)
        }
        // _ensure_paired: participants with a unit at both visits.
        var seen = [UInt8](repeating: 0, count: order.count)
        for (unit, participantCode) in participant.enumerated() { seen[participantCode] |= visit[unit] == 1 ? 2 : 1 }
        let keepUnit = participant.map { seen[$0] == 3 }
        var newIndex = [Int](repeating: -1, count: count)
        var next = 0
        for unit in 0..<count where keepUnit[unit] { newIndex[unit] = next; next += 1 }
        guard next > 0 else {
            throw AnalysisError("no participant has cells at both visits \(pre) and \(post)\(celltype.map { " in cell type \($0)" } ?? "")")
        }
        for cell in unitOfCell.indices where unitOfCell[cell] >= 0 {
            unitOfCell[cell] = Int32(newIndex[Int(unitOfCell[cell])])
        }
        participant = participant.indices.filter { keepUnit[$0] }.map { participant[$0] }
        visit = visit.indices.filter { keepUnit[$0] }.map { visit[$0] }
        arm = arm.indices.filter { keepUnit[$0] }.map { arm[$0] }
        cellCount = cellCount.indices.filter { keepUnit[$0] }.map { cellCount[$0] }
    }

    /// The units of several blocks with disjoint cells as one set, block after block: one pass
    /// over the matrix then aggregates every block. Only the aggregation fields are kept.
    init(merging blocks: [DiDUnits]) {
        unitOfCell = blocks.first?.unitOfCell.map { _ in Int32(-1) } ?? []
        participantLevels = .observed
        var offset: Int32 = 0
        for block in blocks {
            for (cell, unit) in block.unitOfCell.enumerated() where unit >= 0 { unitOfCell[cell] = offset + unit }
            cellCount += block.cellCount
            participant += block.participant
            offset += Int32(block.count)
        }
    }

    /// Cells that belong to a unit, ascending: the rows a worker reads.
    var cells: [Int] { unitOfCell.indices.filter { unitOfCell[$0] >= 0 } }
}

/// Unit numbers by integer key: a flat table when the key space is small (participants × 2
/// visits × arms × cell types usually is), a dictionary when it is not.
private struct UnitIndex {
    private var table: [Int32]
    private var dictionary: [Int: Int] = [:]

    init(keys: Int, cells: Int) {
        table = keys <= max(1 << 16, 4 * cells) ? [Int32](repeating: -1, count: keys) : []
    }

    /// The unit of `key`, or nil after recording `next` as its unit.
    mutating func unit(_ key: Int, orNew next: Int) -> Int? {
        if table.isEmpty {
            if let unit = dictionary[key] { return unit }
            dictionary[key] = next
            return nil
        }
        if table[key] >= 0 { return Int(table[key]) }
        table[key] = Int32(next)
        return nil
    }
}

/// Per-unit aggregation of per-cell values with pandas' rules: NaN skipped by mean and median
/// (all-NaN → NaN), pct_pos counts NaN as not positive.
enum UnitAggregate {
    static func median(_ values: inout [Double], zeros: Int) -> Double {
        values.removeAll { $0.isNaN }
        let n = values.count + zeros
        guard n > 0 else { return .nan }
        values.sort()
        // The zeros sit between the negatives and the positives.
        let negatives = values.partitioningIndex { $0 >= 0 }
        func element(_ k: Int) -> Double {
            if k < negatives { return values[k] }
            if k < negatives + zeros { return 0 }
            return values[k - zeros]
        }
        return n % 2 == 1 ? element(n / 2) : (element(n / 2 - 1) + element(n / 2)) / 2
    }
}

extension Array where Element == Double {
    func partitioningIndex(where belongsInSecondPartition: (Double) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            if belongsInSecondPartition(self[mid]) { high = mid } else { low = mid + 1 }
        }
        return low
    }
}
