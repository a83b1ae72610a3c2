import Foundation
import Testing
@testable import Analyses

/// Without --memory, a DE plan asks for enough to gather a shard in one pass: never less than
/// the 2 GB default, never more than half of this machine's memory (or 16 GB), rounded up to a
/// tenth of a GB with 256 MB of headroom.
@Suite struct PlannerMemoryTests {
    @Test func automaticDEMemoryCoversTheGatherWithinTheMachine() {
        let ceiling = min(16, Double(ProcessInfo.processInfo.physicalMemory) / 2 / 1e9)
        #expect(DEPlanner.automaticMemoryGB(0) == ShardingRequest.defaultMemoryGB)
        #expect(DEPlanner.automaticMemoryGB(1e9) == ShardingRequest.defaultMemoryGB)
        #expect(DEPlanner.automaticMemoryGB(1e15) == max(ShardingRequest.defaultMemoryGB, ceiling))
        if ceiling >= 5 {
            // 4.9 GB needed + 0.256 GB headroom = 5.156 GB, rounded up to 5.2.
            #expect(DEPlanner.automaticMemoryGB(4.9e9) == 5.2)
        }
    }
}
