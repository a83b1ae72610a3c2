import AnnData
import Foundation
import Testing

/// Every fixture file, written by a real anndata release (0.6 layout to 0.12), read back and
/// compared with what the generator measured on disk with h5py/numpy.
@Suite struct FixtureParityTests {
    @Test(arguments: Fixtures.fileNames)
    func shapeAndNames(_ name: String) throws {
        let expected = try #require(Fixtures.expected.files[name])
        let file = try AnnDataFile(path: Fixtures.path(name))
        #expect(file.nObs == expected.n_obs)
        #expect(file.nVars == expected.n_vars)
        #expect(try file.obs.index() == expected.obs_names)
        #expect(try file.vars.index() == expected.var_names)
        if let rawNames = expected.raw_var_names {
            #expect(try file.rawVars()?.index() == rawNames)
        }
    }

    @Test(arguments: Fixtures.fileNames)
    func matricesStreamToTheSameSums(_ name: String) throws {
        let expected = try #require(Fixtures.expected.files[name])
        let file = try AnnDataFile(path: Fixtures.path(name))
        // The generator keys matrices by on-disk path; anndata 0.6 wrote raw as `raw.X`.
        let wanted = Dictionary(uniqueKeysWithValues: expected.matrices.map { ($0.key == "raw.X" ? "raw/X" : $0.key, $0.value) })
        #expect(Set(try file.matrixNames()) == Set(wanted.keys), "\(name)")
        for (matrixName, want) in wanted {
            // A tiny budget forces many blocks, so block boundaries are exercised too.
            let reader = try file.matrix(matrixName, budget: ReadBudget(bytes: 1))
            let info = reader.info
            #expect(info.format.rawValue == want.format, "\(name) \(matrixName)")
            #expect(info.dtype.rawValue == want.dtype, "\(name) \(matrixName)")
            #expect(info.nnz == want.nnz, "\(name) \(matrixName)")
            #expect(info.indexDType?.rawValue == want.index_dtype, "\(name) \(matrixName)")
            #expect(info.chunks == want.chunks, "\(name) \(matrixName)")
            #expect(info.compression?.contains(want.compression ?? "none") ?? (want.compression == nil), "\(name) \(matrixName)")

            var rowSums = [Double](repeating: 0, count: info.nRows)
            var colSums = [Double](repeating: 0, count: info.nCols)
            var blocks = try reader.blocks()
            var blockCount = 0
            while let slab = try blocks.next() {
                blockCount += 1
                slab.forEachEntry { row, column, value in
                    rowSums[row] += value
                    colSums[column] += value
                }
            }
            #expect(blockCount > 1 || min(info.nRows, info.nCols) <= 1 || info.nnz == 0, "\(name) \(matrixName) blocks")
            #expect(close(rowSums.reduce(0, +), want.sum), "\(name) \(matrixName) sum")
            #expect(zip(rowSums, want.row_sums).allSatisfy { close($0, $1) }, "\(name) \(matrixName) row sums")
            #expect(zip(colSums, want.col_sums).allSatisfy { close($0, $1) }, "\(name) \(matrixName) column sums")
            #expect(rowSums.count == want.row_sums.count && colSums.count == want.col_sums.count)
        }
    }

    @Test(arguments: Fixtures.fileNames)
    func obsAndVarColumns(_ name: String) throws {
        let expected = try #require(Fixtures.expected.files[name])
        let file = try AnnDataFile(path: Fixtures.path(name))
        for (frame, want, rows) in [(file.obs, expected.obs, file.nObs), (file.vars, expected.var, file.nVars)] {
            #expect(frame.columnNames == want.map(\.name), "\(name) \(frame.path)")
            for column in want {
                let context = "\(name) \(frame.path)/\(column.name)"
                let got = try frame.column(column.name, expectedCount: rows)
                let info = try frame.info(column.name)
                #expect(got.kind.rawValue == column.kind, "\(context)")
                #expect(info.kind.rawValue == column.kind, "\(context)")
                #expect(info.dtype == column.dtype, "\(context)")
                #expect(info.ordered == column.ordered, "\(context)")
                if let categories = column.categories, case .categorical(let categorical) = got.values {
                    #expect(categorical.levels.count == categories.count, "\(context)")
                    #expect(info.nCategories == categories.count, "\(context)")
                    for (index, level) in categories.enumerated() {
                        #expect(matches(level, categorical.levels, index), "\(context) level \(index)")
                    }
                    // Arguments are matched against, inspect shows and results.csv writes this spelling.
                    if let labels = column.labels {
                        #expect(categorical.levels.labels == labels.map { $0 ?? "" }, "\(context) labels")
                        #expect(info.categories == labels.map { $0 ?? "" }, "\(context) labels in info")
                    }
                }
                #expect(rowsMatch(got, column.values), "\(context) values")
            }
        }
    }

    private func matches(_ want: JSONValue, _ levels: CategoryLevels, _ index: Int) -> Bool {
        switch (want, levels) {
        case (.string(let s), .strings(let values)): return values[index] == s
        case (.number(let n), .numbers(let values, _)): return close(values[index], n)
        case (.bool(let b), .numbers(let values, .bool)): return values[index] == (b ? 1 : 0)
        default: return false
        }
    }

    private func rowsMatch(_ column: Column, _ want: [JSONValue]) -> Bool {
        guard column.count == want.count else { return false }
        let labels = column.labels()
        let numbers = column.numbers()
        for (k, value) in want.enumerated() {
            switch value {
            case .null:
                if case .numeric(let v, _) = column.values { if !v[k].isNaN { return false } } else if labels[k] != nil { return false }
            case .bool(let b):
                if let numbers {
                    if numbers[k] != (b ? 1 : 0) { return false }
                } else if case .categorical(let c) = column.values, case .numbers(let levels, .bool) = c.levels {
                    guard c.codes[k] >= 0, levels[Int(c.codes[k])] == (b ? 1 : 0), labels[k] == (b ? "True" : "False") else { return false }
                } else {
                    return false
                }
            case .number(let n):
                if let numbers {
                    guard let got = numbers[k], close(got, n) else { return false }
                } else if case .categorical(let c) = column.values, case .numbers(let levels, _) = c.levels {
                    guard c.codes[k] >= 0, close(levels[Int(c.codes[k])], n) else { return false }
                } else {
                    return false
                }
            case .string(let s):
                if labels[k] != s { return false }
            case .array:
                return false
            }
        }
        return true
    }
}
