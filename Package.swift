// swift-tools-version:6.0
import PackageDescription

// Release executables link the Swift runtime and Foundation in: a start then binds a few C
// libraries instead of a dozen Swift ones, which saves ~7 ms of every process (a one-shard
// `run` is a fraction of a second). Debug builds, which the tests link against, stay shared.
// (Compiling with the flag too makes Foundation's static module autolink its C parts.)
let staticSwiftRuntime = (swift: [SwiftSetting.unsafeFlags(["-static-stdlib"], .when(configuration: .release))],
                          linker: [LinkerSetting.unsafeFlags(["-static-stdlib"], .when(configuration: .release))])

let package = Package(
    name: "sctrial-plan",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "sctrial-plan", targets: ["sctrial-plan"]),
        .executable(name: "sctrial-worker", targets: ["sctrial-worker"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // System libraries, found through pkg-config (Debian: libhdf5-dev, libopenblas-dev, libcurl4-openssl-dev).
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev"]), .brew(["hdf5"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"]), .brew(["curl"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"]), .brew(["openssl"])]),
        // liblzf decodes h5py's lzf filter (HDF5 filter 32000), which libhdf5 does not ship.
        .systemLibrary(name: "CLZF", pkgConfig: "liblzf",
                       providers: [.apt(["liblzf-dev"]), .brew(["liblzf"])]),
        // Linux calls Glibc's module leaves out (fstatfs, O_DIRECT); headers only.
        .systemLibrary(name: "CLinux"),

        // h5ad read access: typed obs/var columns, dense/CSR/CSC slabs, bounded-memory streaming.
        .target(name: "AnnData", dependencies: ["CHDF5", "CLZF"]),

        // Pure numerics over arrays, no I/O: distributions, BH, rank tests, regression, bootstrap.
        .target(name: "Stats", dependencies: ["COpenBLAS"]),

        // One HTTP request over libcurl: gene-set downloads and the slurmrestd client share it.
        .target(name: "HTTP", dependencies: ["CCurl"]),

        // The analyses: units, parameters and rows; numerics from Stats, data from AnnData.
        .target(name: "Analyses", dependencies: ["AnnData", "Stats", "HTTP"]),

        // Plans, run directories, executors and the reducer.
        .target(name: "Orchestration", dependencies: ["Analyses", "AnnData", "CLinux", "COpenSSL", "HTTP"]),

        // RUN/report.html: one streaming pass over results.csv into inline-SVG figures and tables.
        .target(name: "Report", dependencies: ["Analyses", "Orchestration", "Stats"]),

        .executableTarget(name: "sctrial-plan", dependencies: [
            "AnnData", "Analyses", "Orchestration", "Report", "Stats",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "TOMLKit", package: "TOMLKit"),
        ], swiftSettings: staticSwiftRuntime.swift, linkerSettings: staticSwiftRuntime.linker),
        .executableTarget(name: "sctrial-worker", dependencies: [
            "Orchestration", "Analyses", "AnnData", "Stats",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: staticSwiftRuntime.swift, linkerSettings: staticSwiftRuntime.linker),

        .testTarget(name: "AnnDataTests", dependencies: ["AnnData", "CHDF5"]),
        .testTarget(name: "StatsTests", dependencies: ["Stats"], exclude: ["Goldens"]),
        .testTarget(name: "AnalysesTests", dependencies: ["Analyses"]),
        .testTarget(name: "OrchestrationTests", dependencies: ["Orchestration"]),
        .testTarget(name: "ReportTests", dependencies: ["Report"]),
        // Pure Slurm tests always; live ones against slurm/local-cluster.sh when SLURM_CONF is set.
        .testTarget(name: "SlurmTests", dependencies: ["Orchestration"]),
        // Runs the built executables as a user would: exit codes, messages, JSON.
        .testTarget(name: "CLITests", dependencies: ["sctrial-plan"]),
    ],
    swiftLanguageModes: [.v6]
)
