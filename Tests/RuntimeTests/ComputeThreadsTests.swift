import Foundation
import Testing

@testable import VidrdRuntime

/// A thread's compute width (`ComputeThreads.withLimit`): what the daemon's compute threads use
/// to run sessions' calls side by side, one core each. The width must be the thread's own and
/// must change no bit of any result. In the kernel suite's name so that `.ci/run` runs it again
/// under `VIDRD_ISA=avx512` and `generic`.
extension GEMMKernelTests {
    @Test func aThreadsWidthIsItsOwnAndRestored() {
        let all = ComputeThreads.available
        #expect(ComputeThreads.current == all)
        ComputeThreads.withLimit(1) {
            #expect(ComputeThreads.current == 1)
            ComputeThreads.withLimit(all + 5) { #expect(ComputeThreads.current == all, "clamped to the cores") }
            ComputeThreads.withLimit(0) { #expect(ComputeThreads.current == 1, "at least one") }
            #expect(ComputeThreads.current == 1, "an inner limit is undone")
            // Another thread started meanwhile keeps the whole machine.
            let seen = WidthSeen()
            let thread = Thread { seen.record(ComputeThreads.current) }
            thread.start()
            #expect(seen.wait() == all)
        }
        #expect(ComputeThreads.current == all)
    }

    /// A lone participant gets every core; two at once share them; a fixed width set inside wins
    /// until it ends.
    @Test func aCoreShareDividesTheCoresAmongItsCalls() {
        let share = CoreShare(), all = ComputeThreads.available
        let inside = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), left = DispatchSemaphore(value: 0)
        let seen = WidthSeen()
        share.participate {
            #expect(ComputeThreads.current == all)
            ComputeThreads.withLimit(1) { #expect(ComputeThreads.current == 1) }
            let other = Thread {
                share.participate {
                    inside.signal()
                    release.wait()
                    seen.record(ComputeThreads.current)
                }
                left.signal()
            }
            other.start()
            inside.wait()
            #expect(ComputeThreads.current == max(1, all / 2), "two calls share the cores")
            release.signal()
            #expect(seen.wait() == max(1, all / 2))
            left.wait()
            #expect(ComputeThreads.current == all, "alone again")
        }
        #expect(ComputeThreads.current == all && share.width == all)
    }

    /// A product big enough to be split by rows, one band per thread, at every width; and the
    /// embedded model's U-Net and temporal decode on one core and on all of them: the same bits
    /// with the runtime's kernels. OpenBLAS (`VIDRD_ISA=generic`) rounds a row by its position in
    /// the call, so there the promise is float rounding only.
    @Test func theWidthChangesNoBit() throws {
        let exact = ComputeKernels.active.isa != .generic
        func expectSame(_ a: [UInt32], _ b: [UInt32], _ what: String) {
            #expect(a.count == b.count, "\(what): sizes")
            if exact {
                if a.count == b.count, let i = a.indices.first(where: { a[$0] != b[$0] }) {
                    Issue.record("\(what): element \(i) differs (\(Float(bitPattern: a[i])) vs \(Float(bitPattern: b[i])))")
                }
                return
            }
            let x = a.map { Float(bitPattern: $0) }, y = b.map { Float(bitPattern: $0) }
            let scale = x.map(abs).max() ?? 1
            let worst = zip(x, y).map { abs($0 - $1) }.max() ?? 0
            #expect(worst <= 1e-5 * Swift.max(scale, 1), "\(what): differs by \(worst) at scale \(scale)")
        }
        let (m, n, k) = (300, 96, 160)  // m·n·k above the split threshold; 300 rows split unevenly
        var random = SeededRandomSource(seed: 11)
        let a = random.standardNormal(count: m * k), b = random.standardNormal(count: k * n)
        func product() -> [UInt32] {
            var c = [Float](repeating: 0, count: m * n)
            sgemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &c, ldc: n)
            return c.map(\.bitPattern)
        }
        let whole = product()
        for width in 1...max(1, ComputeThreads.available) {
            expectSame(ComputeThreads.withLimit(width) { product() }, whole, "sgemm at width \(width)")
        }

        let pipeline = try TextToVideoPipeline(modelDirectory: ShippedModelTests.folder)
        let c = pipeline.unet.inChannels
        let shape = [2, c, 4, 8, 8]
        let sample = Tensor(shape: shape, scalars: random.standardNormal(count: shape.reduce(1, *)))
        let prompt = try pipeline.encodePrompt("a red ball bouncing on grass", negativePrompt: "", guidanceScale: 3)
        let latents = Tensor(shape: [1, c, 4, 8, 8], scalars: random.standardNormal(count: c * 4 * 64))
        func model() throws -> [[UInt32]] {
            var ws = Workspace()
            let noise = try pipeline.unet(sample, timesteps: [500, 500], conditioning: prompt.conditioning, workspace: &ws)
            let frames = try pipeline.decode(latents: latents, workspace: &ws)
            return [noise.scalars.map(\.bitPattern), frames.scalars.map(\.bitPattern)]
        }
        let wide = try model()
        let narrow = try ComputeThreads.withLimit(1) { try model() }
        expectSame(narrow[0], wide[0], "U-Net on one core and on \(ComputeThreads.available)")
        expectSame(narrow[1], wide[1], "decode on one core and on \(ComputeThreads.available)")
    }
}

/// What another thread saw, handed back under a semaphore.
private final class WidthSeen: @unchecked Sendable {
    private var value = 0
    private let ready = DispatchSemaphore(value: 0)
    func record(_ v: Int) { value = v; ready.signal() }
    func wait() -> Int { ready.wait(); return value }
}
