import CVidrdKernels
import Foundation
import Testing

@testable import VidrdRuntime

/// The kernels' fork-join pool (CVidrdKernels/parallel.c) through `parallelChunks`: every index
/// exactly once, whether the loop got the pool, found it held by another thread's loop (then
/// libdispatch runs it) or was started inside a chunk (then it runs inline); and many short loops
/// back to back, where a helper that wakes late must not run a chunk of the wrong loop.
@Suite struct ParallelLoopTests {
    /// Counts how often each index was visited, from any thread.
    final class Visits: @unchecked Sendable {
        private let counts: UnsafeMutablePointer<UInt8>
        let count: Int
        init(_ count: Int) {
            self.count = count
            counts = .allocate(capacity: count)
            counts.initialize(repeating: 0, count: count)
        }
        deinit { counts.deallocate() }
        /// Ranges of one loop are disjoint, so no two threads write one byte.
        func visit(_ r: Range<Int>) { for i in r { counts[i] &+= 1 } }
        var exactlyOnce: Bool { (0..<count).allSatisfy { counts[$0] == 1 } }
    }

    @Test func everyIndexRunsExactlyOnceOverManyShortLoops() {
        // 20 000 loops of a few microseconds each: helpers race the next loop's start all along.
        for n in [1, 2, 3, 7, 64, 1000] {
            for _ in 0..<(n >= 64 ? 2000 : 5000) {
                let v = Visits(n)
                parallelChunks(n) { v.visit($0) }
                if !v.exactlyOnce { Issue.record("a loop of \(n) did not visit every index exactly once"); return }
            }
        }
    }

    @Test func loopsInsideChunksRunInline() throws {
        try #require(ComputeThreads.available > 1, "one core: no pool")
        // Directly on the pool: while its loop runs, a loop started in a chunk is NESTED. Other
        // tests may hold the pool for a moment (BUSY): try again.
        // One answer per chunk, each written by the thread that ran it.
        let answers = UnsafeMutablePointer<Int32>.allocate(capacity: 4)
        defer { answers.deallocate() }
        answers.initialize(repeating: -1, count: 4)
        var outer: Int32 = VIDRD_PARALLEL_BUSY
        for _ in 0..<1000 where outer == VIDRD_PARALLEL_BUSY {
            outer = vidrd_parallel_run(4, { context, chunk in
                guard let answers = context?.assumingMemoryBound(to: Int32.self) else { return }
                answers[Int(chunk)] = vidrd_parallel_run(2, { _, _ in }, nil)
            }, answers)
            if outer == VIDRD_PARALLEL_BUSY { usleep(1000) }
        }
        #expect(outer == 0)
        #expect((0..<4).map { answers[$0] } == [Int32](repeating: VIDRD_PARALLEL_NESTED, count: 4))
        // Through parallelChunks: the nested loops' indices are all visited, once.
        let visits = (0..<4).map { _ in Visits(50) }
        let outerVisits = Visits(4)
        parallelChunks(4) { r in
            outerVisits.visit(r)
            for i in r { parallelChunks(50) { visits[i].visit($0) } }
        }
        #expect(outerVisits.exactlyOnce && visits.allSatisfy(\.exactlyOnce))
    }

    @Test func threadsThatLoopAtOnceEachGetTheirIndicesOnce() {
        // Four threads' loops at once: one holds the pool, the others go to libdispatch.
        let threads = 4, loops = 500, n = 37
        let failures = Visits(threads)  // an index per thread, visited once if it never failed
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            Thread {
                var ok = true
                for _ in 0..<loops {
                    let v = Visits(n)
                    parallelChunks(n) { v.visit($0) }
                    ok = ok && v.exactlyOnce
                }
                if ok { failures.visit(t..<(t + 1)) }
                group.leave()
            }.start()
        }
        group.wait()
        #expect(failures.exactlyOnce, "every thread's every loop visited each index once")
    }

    @Test func thePoolHasAHelperPerOtherCore() {
        #expect(Int(vidrd_parallel_helpers()) == ComputeThreads.available - 1)
        #expect(vidrd_parallel_run(0, { _, _ in }, nil) == 0)
    }
}
