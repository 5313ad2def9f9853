import Dispatch

/// Splits `0..<count` into contiguous chunks run concurrently. Non-GEMM ops use this so that
/// both cores work between the (internally threaded) BLAS calls.
@inline(__always)
func parallelChunks(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    let workers = ComputeThreads.count
    if workers <= 1 || count < 2 * minimumChunk {
        body(0..<count)
        return
    }
    let chunks = Swift.min(workers, (count + minimumChunk - 1) / minimumChunk)
    let per = (count + chunks - 1) / chunks
    // The chunks write disjoint ranges, which is what makes sharing `body` across threads sound.
    withoutActuallyEscaping(body) { body in
        let shared = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let start = c * per
            let end = Swift.min(count, start + per)
            if start < end { shared.value(start..<end) }
        }
    }
}

struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Number of threads for element-wise and normalisation work: the machine's active cores.
enum ComputeThreads {
    static let count: Int = {
        let n = ProcessInfoShim.activeProcessorCount
        return Swift.max(1, n)
    }()
}

#if canImport(Glibc)
import Glibc
enum ProcessInfoShim {
    static var activeProcessorCount: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}
#else
import Foundation
enum ProcessInfoShim {
    static var activeProcessorCount: Int { ProcessInfo.processInfo.activeProcessorCount }
}
#endif
