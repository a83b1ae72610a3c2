import ArgumentParser
import Stats

@main
struct SctrialPlan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sctrial-plan",
        abstract: "Plan, run and reduce single-cell trial and perturbation statistics over .h5ad files.",
        discussion: """
            Reads AnnData .h5ad files through libhdf5. Exit codes: 0 success, 2 bad input \
            (a clear one-line error names the file and the HDF5 element), 1 anything else.
            """,
        subcommands: [Inspect.self, Validate.self, PlanCommand.self, RunCommand.self, SubmitCommand.self, ReduceCommand.self, StatusCommand.self,
                      RetryCommand.self, CancelCommand.self, ReportCommand.self, ProbeCommand.self])

    /// OpenBLAS's idle pool is stopped before anything else runs (see BLASThreads).
    static func main() {
        _ = BLASThreads.single
        main(nil)
    }
}
