import Dispatch
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// Splits `0..<count` into contiguous chunks run concurrently, as many as the calling thread's
/// width (`ComputeThreads.current`). Non-GEMM ops use this so that the cores work between GEMMs.
@inline(__always)
func parallelChunks(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    let workers = ComputeThreads.current
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

/// How many threads one model call splits its work over.
///
/// By default a call uses every active core. A thread that runs calls side by side with other
/// threads (the daemon's compute threads, one session's step each) gives itself a smaller width
/// with `withLimit`, so that the calls do not fight over the cores: on small models a call
/// split over two cores is no faster than on one (the ops are too short to share), while two
/// calls on one core each do twice the work (docs/RUNTIME.md, "Threads").
///
/// The width is the calling thread's, not the process's: each thread sets its own, and no
/// thread changes another's. Results do not depend on it: every op splits work into pieces
/// whose values do not depend on how many pieces there are (tested bit for bit).
public enum ComputeThreads {
    /// The machine's active cores: the width of a thread that set none.
    public static let available: Int = Swift.max(1, ProcessInfoShim.activeProcessorCount)

    /// The calling thread's width.
    public static var current: Int {
        guard let key = widthKey, let raw = pthread_getspecific(key) else { return available }
        return Int(bitPattern: raw)
    }

    /// Runs `body` with the calling thread's width set to `threads` (at least 1, at most
    /// `available`), and restores the width it had.
    public static func withLimit<R>(_ threads: Int, _ body: () throws -> R) rethrows -> R {
        guard let key = widthKey else { return try body() }
        let previous = pthread_getspecific(key)
        let width = Swift.min(Swift.max(1, threads), available)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: width))
        defer { pthread_setspecific(key, previous) }
        return try body()
    }

    /// One key for the process, made once; nil only if the system has no keys left, and then
    /// every thread uses the whole machine.
    private static let widthKey: pthread_key_t? = {
        var key = pthread_key_t()
        return pthread_key_create(&key, nil) == 0 ? key : nil
    }()
}

#if canImport(Glibc)
enum ProcessInfoShim {
    static var activeProcessorCount: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}
#else
enum ProcessInfoShim {
    static var activeProcessorCount: Int { ProcessInfo.processInfo.activeProcessorCount }
}
#endif
