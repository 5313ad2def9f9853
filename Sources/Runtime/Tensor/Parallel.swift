import CVidrdKernels
import Dispatch
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

/// Splits `0..<count` into contiguous chunks run concurrently, as many as the calling thread's
/// width (`ComputeThreads.current`). Non-GEMM ops use this so that the cores work between GEMMs.
///
/// The chunks run on the kernels' fork-join pool (CVidrdKernels/parallel.c: helpers that spin
/// briefly between loops, so that the hundreds of short loops of a forward do not each pay a
/// thread wake-up); when another thread's loop holds the pool, on libdispatch; inside a chunk of
/// another loop, on the calling thread.
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
        var loop = ParallelLoop(body: body, count: count, per: per)
        let answer = withUnsafeMutablePointer(to: &loop) { p in
            vidrd_parallel_run(chunks, { context, chunk in
                guard let loop = context?.assumingMemoryBound(to: ParallelLoop.self) else { return }
                loop.pointee.run(Int(chunk))
            }, p)
        }
        switch answer {
        case 0: return
        case VIDRD_PARALLEL_NESTED:
            for c in 0..<chunks { loop.run(c) }
        default:
            let shared = UncheckedSendable(loop)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in shared.value.run(c) }
        }
    }
}

/// One parallel loop's body and its cut into chunks, for the pool's C callback.
private struct ParallelLoop {
    let body: (Range<Int>) -> Void
    let count: Int
    let per: Int

    func run(_ chunk: Int) {
        let start = chunk * per
        let end = Swift.min(count, start + per)
        if start < end { body(start..<end) }
    }
}

struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// How many threads one model call splits its work over.
///
/// By default a call uses every active core. A thread that runs calls side by side with other
/// threads (the daemon's compute threads, one session's step each) either gives itself a fixed
/// width (`withLimit`) or joins a `CoreShare` while its call runs (`CoreShare.participate`),
/// whose width follows how many calls share the cores at that moment: a lone call gets every
/// core, two calls on two cores one each (docs/RUNTIME.md, "Threads").
///
/// The width is the calling thread's, not the process's: each thread sets its own, and no
/// thread changes another's. Results do not depend on it: every op splits work into pieces
/// whose values do not depend on how many pieces there are (tested bit for bit).
public enum ComputeThreads {
    /// The machine's active cores: the width of a thread that set none.
    public static let available: Int = Swift.max(1, ProcessInfoShim.activeProcessorCount)

    /// The calling thread's width, read by every parallel loop as it starts.
    public static var current: Int {
        guard let key = policyKey, let raw = pthread_getspecific(key) else { return available }
        let bits = Int(bitPattern: raw)
        // Odd: a fixed width (shifted left by one); even: a CoreShare the thread participates in.
        if bits & 1 == 1 { return bits >> 1 }
        return Unmanaged<CoreShare>.fromOpaque(raw).takeUnretainedValue().width
    }

    /// Runs `body` with the calling thread's width set to `threads` (at least 1, at most
    /// `available`), and restores the width it had.
    public static func withLimit<R>(_ threads: Int, _ body: () throws -> R) rethrows -> R {
        let width = Swift.min(Swift.max(1, threads), available)
        return try withPolicy(UnsafeRawPointer(bitPattern: width << 1 | 1), body)
    }

    fileprivate static func withPolicy<R>(_ policy: UnsafeRawPointer?, _ body: () throws -> R) rethrows -> R {
        guard let key = policyKey else { return try body() }
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, policy)
        defer { pthread_setspecific(key, previous) }
        return try body()
    }

    /// One key for the process, made once; nil only if the system has no keys left, and then
    /// every thread uses the whole machine.
    private static let policyKey: pthread_key_t? = {
        var key = pthread_key_t()
        return pthread_key_create(&key, nil) == 0 ? key : nil
    }()
}

/// Cores shared among the calls that run at the same time on several threads: while `n` calls
/// participate, each splits its loops over `available / n` cores (at least 1). A call's width
/// can change between two of its loops when another call starts or ends, which changes no bit of
/// either (ComputeThreads).
public final class CoreShare: @unchecked Sendable {
    /// Calls participating now, changed and read atomically (vidrd_atomic_add / _load).
    private let running: UnsafeMutablePointer<Int>

    public init() {
        running = .allocate(capacity: 1)
        running.initialize(to: 0)
    }

    deinit { running.deallocate() }

    /// The width of each participating call now.
    public var width: Int {
        let n = vidrd_atomic_load(running)
        return Swift.max(1, ComputeThreads.available / Swift.max(1, n))
    }

    /// Runs `body`, a call on the calling thread, as one of the calls sharing the cores.
    public func participate<R>(_ body: () throws -> R) rethrows -> R {
        _ = vidrd_atomic_add(running, 1)
        defer { _ = vidrd_atomic_add(running, -1) }
        return try ComputeThreads.withPolicy(UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque()), body)
    }
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
