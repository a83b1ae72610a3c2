import Foundation

/// The gene-set library of a GSEA run: one GMT file, a directory of them, or an http(s) URL
/// (fetched once, at planning). Stored in the run as one GMT so that every shard reads the same.
public struct GSEALibrary: Sendable, Equatable {
    public var sets: [(term: String, genes: [String])] { terms.indices.map { (terms[$0], genes[$0]) } }
    public let terms: [String]
    public let genes: [[String]]

    public static func == (a: GSEALibrary, b: GSEALibrary) -> Bool { a.terms == b.terms && a.genes == b.genes }

    init(terms: [String], genes: [[String]]) {
        self.terms = terms
        self.genes = genes
    }

    /// gseapy's reading of a GMT (`line.strip().split("\t")`, genes `g.split(",")[0]`, the
    /// description ignored); `prefix` names the library when several are given (gseapy's
    /// `"<basename>__<term>"`, which also groups FDR and FWER by library).
    init(collection: GeneSetCollection, prefix: String?) {
        terms = collection.sets.map { (prefix.map { "\($0)__" } ?? "") + $0.name }
        genes = collection.sets.map { set in set.genes.map { String($0.split(separator: ",", omittingEmptySubsequences: false).first ?? "") } }
    }

    /// `location`: a GMT path, a directory of `*.gmt` files (also written `@dir`), or an http(s) URL.
    public static func load(_ location: String) throws(AnalysisError) -> GSEALibrary {
        let path = location.hasPrefix("@") ? String(location.dropFirst()) : location
        if HTTPFetch.isURL(path) { return GSEALibrary(collection: try GeneSetCollection.load(path), prefix: nil) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            if !path.contains("/") && !path.lowercased().hasSuffix(".gmt") {
                throw AnalysisError("\(path): no such gene-set file; named Enrichr libraries (e.g. KEGG_2021_Human) cannot be downloaded here: give a GMT file, a directory of GMT files, or an http(s) URL")
            }
            throw AnalysisError("\(path): no such gene-set file")
        }
        guard isDirectory.boolValue else { return GSEALibrary(collection: try GeneSetCollection.load(path), prefix: nil) }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
            .filter { $0.lowercased().hasSuffix(".gmt") }.sorted()
        guard !names.isEmpty else { throw AnalysisError("\(path): directory holds no .gmt file") }
        var terms: [String] = []
        var genes: [[String]] = []
        for name in names {
            let library = GSEALibrary(collection: try GeneSetCollection.load("\(path)/\(name)"), prefix: String(name.dropLast(4)))
            terms += library.terms
            genes += library.genes
        }
        return GSEALibrary(terms: terms, genes: genes)
    }

    /// As stored in the run: `term<TAB>description<TAB>genes…`, one set a line.
    public var gmt: String {
        terms.indices.map { ([terms[$0], ""] + genes[$0]).joined(separator: "\t") }.joined(separator: "\n") + "\n"
    }

    static func read(stored path: String) throws(AnalysisError) -> GSEALibrary {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw AnalysisError("\(path): the run's gene sets are missing or unreadable; plan the run again")
        }
        let collection = try GeneSetCollection(gmt: text, source: path)
        return GSEALibrary(terms: collection.sets.map(\.name), genes: collection.sets.map(\.genes))
    }
}

/// A DiD run's results read back for ranking: its rows per cell-type block in var order.
struct DiDResults {
    /// Cell-type blocks (nil for a plain did_table) and the features in var order.
    let celltypes: [String?]
    let features: [String]
    let rows: [String?: [GSEARanking.DiDEntry]]

    /// `directory`: a DiD run directory with its plan.json and results.csv.
    static func read(_ directory: URL) throws(AnalysisError) -> DiDResults {
        struct PlanFile: Decodable {
            struct Analysis: Decodable { let kind: String; let did: PlannedDiD? }
            let analysis: Analysis
        }
        let planURL = directory.appendingPathComponent("plan.json")
        guard let planData = FileManager.default.contents(atPath: planURL.path) else {
            throw AnalysisError("\(directory.path): not a run directory (no plan.json)")
        }
        guard let plan = try? JSONDecoder().decode(PlanFile.self, from: planData) else {
            throw AnalysisError("\(planURL.path): not a readable plan")
        }
        guard plan.analysis.kind == PlannedDiD.name, let did = plan.analysis.did else {
            throw AnalysisError("\(directory.path): a \(plan.analysis.kind) run, not a DiD run")
        }
        let resultsURL = directory.appendingPathComponent("results.csv")
        guard let data = FileManager.default.contents(atPath: resultsURL.path), let text = String(data: data, encoding: .utf8) else {
            throw AnalysisError("\(resultsURL.path): the DiD run is not reduced yet (run it first: `sctrial-plan run \(directory.path)`)")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true).makeIterator()
        guard let header = lines.next().map({ CSVRecord.fields(String($0)) }) else {
            throw AnalysisError("\(resultsURL.path): empty DiD results")
        }
        func column(_ name: String) throws(AnalysisError) -> Int {
            guard let index = header.firstIndex(of: name) else { throw AnalysisError("\(resultsURL.path): no column '\(name)'") }
            return index
        }
        let feature = try column("feature"), beta = try column("beta_DiD"), se = try column("se_DiD")
        let p = try column("p_DiD"), units = try column("n_units")
        let celltype = did.parameters.byCelltype ? try column("celltype") : nil
        var byBlock: [String?: [String: GSEARanking.DiDEntry]] = [:]
        var lineNumber = 1
        for line in lines {
            lineNumber += 1
            let fields = CSVRecord.fields(String(line))
            guard fields.count == header.count else {
                throw AnalysisError("\(resultsURL.path) line \(lineNumber): \(fields.count) fields, the header has \(header.count)")
            }
            func number(_ index: Int) throws(AnalysisError) -> Double {
                let text = fields[index]
                if text.isEmpty { return .nan }
                guard let value = Double(text) else {
                    throw AnalysisError("\(resultsURL.path) line \(lineNumber): '\(text)' in column \(header[index]) is not a number")
                }
                return value
            }
            let entry = GSEARanking.DiDEntry(feature: fields[feature], beta: try number(beta), se: try number(se), p: try number(p),
                                             units: try number(units))
            byBlock[celltype.map { fields[$0] }, default: [:]][entry.feature] = entry
        }
        // var order (the plan's feature list), so that equal ranks keep it.
        var rows: [String?: [GSEARanking.DiDEntry]] = [:]
        for block in did.celltypes {
            let entries = byBlock[block] ?? [:]
            rows[block] = did.features.compactMap { entries[$0] }
        }
        return DiDResults(celltypes: did.celltypes, features: did.features, rows: rows)
    }
}
