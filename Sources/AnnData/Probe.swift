import CHDF5
import Foundation

/// Reads, in a throwaway child process, everything of a file that libhdf5 1.10 could crash or
/// loop on, before the real work touches the file in-process.
///
/// libhdf5 1.10.8 does not survive every damaged file: a corrupt global heap segfaults in
/// `H5HG_read`, a B-tree or object header that points back at itself spins forever in
/// `H5C_protect`. No check on our side can run before those calls, so the metadata is walked
/// once in a child (`walk`), under a watchdog, and a crash or a stall becomes the usual one-line
/// error naming the file and the element that was being read. The child then exits; what it
/// read was also checked by our own validation (shapes, codes, indptr), so the parent gets the
/// same clean errors as before for everything libhdf5 survives.
public enum FileProbe {
    /// What the child read last (set while a walk runs): the element named in the error.
    nonisolated(unsafe) static var trace: ((String) -> Void)?

    static func note(_ element: String) { trace?(element) }

    /// Everything `inspect`, `validate --all` and `plan` read through libhdf5, except the matrix
    /// values: the file and its root attributes, every obs/var/raw.var column and index, each
    /// matrix's metadata, its whole chunk index (what reading the values walks) and its indptr;
    /// with `everyObject` (`validate --all`), every other object of the file too
    /// (`walkEveryObject`). `element` is called with each HDF5 path before it is read.
    public static func walk(path: String, everyObject: Bool = false, element: @escaping (String) -> Void) throws(AnnDataError) {
        trace = element
        defer { trace = nil }
        element("/")
        let file = try AnnDataFile(path: path)
        _ = try file.summary()
        var frames = [(file.obs, file.nObs), (file.vars, file.nVars)]
        if let raw = try file.rawVars() { frames.append((raw, try raw.rowCount())) }
        for (frame, rows) in frames {
            element(frame.memberPath(frame.indexName))
            try frame.forEachIndexName { _ in }
            for name in frame.columnNames {
                element(frame.memberPath(name))
                _ = try frame.column(name, expectedCount: rows)
            }
        }
        for name in try file.matrixNames() {
            let matrix = try file.matrix(name)
            for member in matrix.info.format == .dense ? [""] : ["/data", "/indices", "/indptr"] {
                try file.reader.walkChunkIndex(matrix.info.path + member)
            }
            if matrix.info.format != .dense { _ = try matrix.indptr() }
        }
        if everyObject { try file.reader.walkEveryObject() }
    }

    /// Exit status of a walk that found the file sound, and of one that reported bad input.
    static let passed: Int32 = 0
    public static let badInput: Int32 = 2

    public enum Outcome: Sendable, Equatable {
        /// The walk finished: the file can be read in-process.
        case passed
        /// The child reported bad input itself (its one-line error is already on stderr).
        case reported(status: Int32)
        /// The child was killed by a signal or the watchdog: the message to print.
        case failed(String)
    }

    /// Seconds the walk may take: a constant plus a few seconds per GB (the walk reads obs/var
    /// columns and chunk indexes, which grow with the file). `SCTRIAL_PROBE_TIMEOUT` overrides.
    public static func timeout(forFileOfSize bytes: Int) -> Double {
        if let text = ProcessInfo.processInfo.environment["SCTRIAL_PROBE_TIMEOUT"], let value = Double(text), value > 0 {
            return value
        }
        return 20 + 5 * Double(max(0, bytes)) / 1e9
    }

    /// Runs `executable arguments…` (which must call `walk` and print each element on its own line
    /// to stdout, exiting 0 when the file passed or 2 after printing its error) under a
    /// watchdog, with an address-space limit so a size read from a corrupt file cannot take the
    /// machine's memory.
    public static func run(file: String, executable: String, arguments: [String]) -> Outcome {
        let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        let limit = timeout(forFileOfSize: size)
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { return .failed("\(file): cannot start the metadata check (pipe: \(errno))") }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // The child's stdout is its trace; its stderr joins it, so a crash's runtime report is
        // dropped and a clean error line is forwarded by us.
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
        posix_spawn_file_actions_addclose(&actions, readEnd)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var environment = ProcessInfo.processInfo.environment
        environment["SCTRIAL_PROBE_CHILD"] = "1"
        // A crash is expected here: no seconds-long symbolicated backtrace.
        environment["SWIFT_BACKTRACE"] = "enable=no"
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, &argv, &envp)
        close(writeEnd)
        defer { close(readEnd) }
        guard spawned == 0 else { return .failed("\(file): cannot start the metadata check (\(String(cString: strerror(spawned))))") }

        // Read the trace until the child closes it (exit or crash) or the watchdog fires.
        var last = "/"
        var messages: [String] = []
        var pending = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = ContinuousClock.now + .milliseconds(Int(limit * 1000))
        var timedOut = false
        while true {
            let left = deadline - ContinuousClock.now
            if left <= .zero { timedOut = true; break }
            var descriptor = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(1000, max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))))
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            let count = read(readEnd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            pending += buffer[0..<count]
            if let newline = pending.lastIndex(of: UInt8(ascii: "\n")) {
                for line in pending[..<newline].split(separator: UInt8(ascii: "\n")) {
                    if line.first == UInt8(ascii: "/") {
                        last = String(decoding: line, as: UTF8.self)
                    } else if messages.count < 20, line.starts(with: "sctrial-plan: ".utf8) {
                        messages.append(String(decoding: line, as: UTF8.self))
                    }
                }
                pending.removeSubrange(...newline)
            }
        }
        if timedOut { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7f == 0
        let code = (status >> 8) & 0xff
        let signal = status & 0x7f
        if timedOut {
            return .failed("\(file): \(last): reading this element did not finish in \(Int(limit)) s (libhdf5 loops on corrupt metadata): the file is damaged")
        }
        if exited {
            if code == passed { return .passed }
            FileHandle.standardError.write(Data(messages.map { $0 + "\n" }.joined().utf8))
            return .reported(status: code)
        }
        let name = signal == SIGKILL ? "was killed (SIGKILL; out of memory?)" : "crashed (\(signalName(signal)))"
        return .failed("\(file): \(last): the reader \(name) on this element: the file is damaged")
    }

    private static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGSEGV: "SIGSEGV"
        case SIGBUS: "SIGBUS"
        case SIGABRT: "SIGABRT"
        case SIGILL: "SIGILL"
        case SIGFPE: "SIGFPE"
        case SIGTRAP: "SIGTRAP"
        default: "signal \(signal)"
        }
    }

    /// The child's side: caps its address space (a claimed 2^40-entry array fails to allocate
    /// instead of swapping the machine), walks the file printing each element, and returns the
    /// exit status (errors are printed by the caller's usual reporting, as `sctrial-plan: …` lines).
    public static func childWalk(path: String, everyObject: Bool = false, addressSpaceGB: Int = 16) throws(AnnDataError) {
        var limit = rlimit(rlim_cur: rlim_t(addressSpaceGB) << 30, rlim_max: rlim_t(addressSpaceGB) << 30)
        var current = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_AS.rawValue)
        if getrlimit(resource, &current) == 0, current.rlim_max < limit.rlim_max {
            limit = current
        }
        setrlimit(resource, &limit)
        // One write per element, unbuffered: what reached the pipe before a crash is the trace.
        try walk(path: path, everyObject: everyObject) { element in
            var line = element + "\n"
            line.withUTF8 { _ = write(1, $0.baseAddress, $0.count) }
        }
    }
}

extension H5Reader {
    /// Walks a dataset's chunk index (the B-tree libhdf5 follows to find each chunk) by asking for
    /// the dataset's allocated size: a damaged index then fails or crashes here, in the probe.
    /// Then reads the index's keys itself (`ChunkBTree`): libhdf5 1.10 does not check a key's
    /// chunk coordinates, and a chunk whose coordinates were damaged is never found by a read,
    /// which gives fill values (zeros) in its place without an error.
    func walkChunkIndex(_ path: String) throws(AnnDataError) {
        FileProbe.note(path)
        let dataset = try openDataset(path)
        _ = H5Dget_storage_size(dataset.id)
        H5Eclear2(sc_h5e_default())
        let creation = H5ID(H5Dget_create_plist(dataset.id), close: H5Pclose)
        var header = H5O_info_t()
        // (A file with a user block is not read here: its addresses would need shifting.)
        guard H5Pget_layout(creation.id) == H5D_CHUNKED, userBlockOfEightByteAddressing() == 0,
              H5Oget_info2(dataset.id, &header, sc_h5o_info_basic()) >= 0, header.addr < Int.max,
              let mapped = MappedFile(fileName) else { return }
        let rank = try extent(of: dataset.id, path).count
        if let problem = withExtendedLifetime(mapped, { ChunkBTree.damage(in: mapped.bytes, headerAt: Int(header.addr), rank: rank) }) {
            throw fail(.corruptSparse, path, problem)
        }
    }

    /// What `validate --all` reads on top of the usual walk: every object of the file (its
    /// header, and a dataset's chunk index, as `H5Ovisit` with every field walks them), every
    /// attribute of each (decoded, and a variable-length string one's heap references checked),
    /// every variable-length string dataset's heap references, every chunked dataset's chunk
    /// index. libhdf5 1.10 reads the elements anndata uses past damage of the others; a file
    /// with damage anywhere is not valid.
    func walkEveryObject() throws(AnnDataError) {
        final class Visited {
            var objects: [(path: String, isDataset: Bool)] = []
        }
        let visited = Visited()
        let visit: H5O_iterate_t = { _, name, info, context in
            guard let name, let info, let context else { return -1 }
            let relative = String(cString: name)
            Unmanaged<Visited>.fromOpaque(context).takeUnretainedValue().objects
                .append((relative == "." ? "/" : "/" + relative, info.pointee.type == H5O_TYPE_DATASET))
            return 0
        }
        FileProbe.note("/")
        let status = withExtendedLifetime(visited) {
            H5Ovisit2(file.id, H5_INDEX_NAME, H5_ITER_NATIVE, visit, Unmanaged.passUnretained(visited).toOpaque(), sc_h5o_info_all())
        }
        guard status >= 0 else {
            let after = visited.objects.last.map { " after \($0.path)" } ?? ""
            throw fail(.unreadable, "/", "the file's objects cannot be walked\(after) (\(Self.errorStackMessage()))")
        }
        for (path, isDataset) in visited.objects {
            FileProbe.note(path)
            for name in try attributeNames(path) {
                let attribute = try openAttribute(path, name)
                let type = H5ID(H5Aget_type(attribute.id), close: H5Tclose)
                guard type.id >= 0 else { throw fail(.unreadable, path, "attribute '\(name)' has an unreadable datatype (\(Self.errorStackMessage()))") }
                // Strings as every attribute anndata reads: heap references checked.
                if H5Tget_class(type.id) == H5T_STRING { _ = try stringArrayAttribute(path, name) }
            }
            guard isDataset else { continue }
            try walkChunkIndex(path)
            _ = try checkedHeapStrings(path)
        }
    }

    /// The names of an object's attributes (decoding each attribute message on the way).
    private func attributeNames(_ path: String) throws(AnnDataError) -> [String] {
        final class Names { var names: [String] = [] }
        let names = Names()
        let collect: H5A_operator2_t = { _, name, _, context in
            guard let name, let context else { return -1 }
            Unmanaged<Names>.fromOpaque(context).takeUnretainedValue().names.append(String(cString: name))
            return 0
        }
        let object = H5Oopen(file.id, path, sc_h5p_default())
        guard object >= 0 else { throw fail(.unreadable, path, "object cannot be opened (\(Self.errorStackMessage()))") }
        defer { H5Oclose(object) }
        var position: hsize_t = 0
        let status = withExtendedLifetime(names) {
            H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_NATIVE, &position, collect, Unmanaged.passUnretained(names).toOpaque())
        }
        guard status >= 0 else { throw fail(.unreadable, path, "attributes cannot be read (\(Self.errorStackMessage()))") }
        return names.names
    }
}
