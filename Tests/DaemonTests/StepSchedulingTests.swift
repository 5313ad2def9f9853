import Foundation
import Testing
@testable import VidrdClient
import VidrdDaemon
import VidrdMedia
import VidrdProtocol
import VidrdRuntime

/// Step-level scheduling and continuous batching through a real daemon and real sockets.
extension DaemonSuite {
    @Suite("Step scheduling")
    struct StepSchedulingTests {
        /// Guided sessions whose U-Net steps share a shape: two on the paper's chain, one on fifo.
        static func requests() -> [OpenSession] {
            var a = Fixture.request("a red ball bouncing on grass", seed: 1, steps: 4)
            var b = Fixture.request("a blue cube sliding on sand", seed: 2, steps: 3)
            var c = Fixture.request("a green star", seed: 3, steps: 4)
            a.guidance = 4
            b.guidance = 6
            c.guidance = 3
            c.strategies = [StrategySpec(name: "fifo", params: [StrategyParam("window", .int(4))])]
            return [a, b, c]
        }

        /// Every frame's WebP bytes, per session, in order.
        static func stream(_ d: TestDaemon, _ requests: [OpenSession], clips: Int, together: Bool) async throws -> [[[UInt8]]] {
            let client = try await d.client()
            defer { Task { await client.close() } }
            func one(_ r: OpenSession) async throws -> [[UInt8]] {
                let s = try await client.openSession(r, maxClips: clips)
                var frames: [[UInt8]] = []
                for try await clip in s.clips() { frames += clip.frames.map(\.webp) }
                return frames
            }
            if !together {
                var out: [[[UInt8]]] = []
                for r in requests { out.append(try await one(r)) }
                return out
            }
            return try await withThrowingTaskGroup(of: (Int, [[UInt8]]).self) { group in
                for (i, r) in requests.enumerated() { group.addTask { (i, try await one(r)) } }
                var out = [[[UInt8]]](repeating: [], count: requests.count)
                for try await (i, f) in group { out[i] = f }
                return out
            }
        }

        /// Every session sent the same number of frames, byte for byte, as when it streamed alone;
        /// the first differing frame of each session is reported.
        static func expectSameFrames(_ alone: [[[UInt8]]], _ other: [[[UInt8]]], _ how: String) {
            for (i, (a, t)) in zip(alone, other).enumerated() {
                #expect(a.count == t.count)
                for (k, (x, y)) in zip(a, t).enumerated() where x != y {
                    Issue.record("session \(i) frame \(k) differs between alone and \(how)")
                    break
                }
            }
        }

        @Test("sessions interleaved step by step send exactly the frames they send alone")
        func interleavingChangesNoFrame() async throws {
            let d = try TestDaemon()
            defer { d.stop() }
            let alone = try await Self.stream(d, Self.requests(), clips: 3, together: false)
            let before = d.daemon.stepStatistics
            let together = try await Self.stream(d, Self.requests(), clips: 3, together: true)
            let stats = d.daemon.stepStatistics
            #expect(stats.largestBatch == 1, "max_batch 1 by default: \(stats)")
            #expect(stats.unetSteps - before.unetSteps == before.unetSteps, "the same steps ran: \(stats)")
            #expect(alone.map(\.count) == [12, 12, 12])
            Self.expectSameFrames(alone, together, "interleaved")
        }

        @Test("compute threads side by side, one core each or sharing the cores, run sessions' steps at once and every session sends the frames it sends alone on a thread of every core")
        func sideBySideComputeThreadsChangeNoFrame() async throws {
            let wide = try TestDaemon { $0.workers = 1; $0.threadsPerWorker = nil }
            let alone = try await Self.stream(wide, Self.requests(), clips: 2, together: false)
            wide.stop()
            let d = try TestDaemon { $0.workers = 2; $0.threadsPerWorker = 1 }
            defer { d.stop() }
            let together = try await Self.stream(d, Self.requests(), clips: 2, together: true)
            let stats = d.daemon.stepStatistics
            #expect(stats.largestBatch == 1 && stats.mostCallsAtOnce >= 2, "calls ran at once, unbatched: \(stats)")
            #expect(alone.map(\.count) == [8, 8, 8])
            // The runtime's kernels give a row the same bits however the rows are split over
            // threads; OpenBLAS (VIDRD_ISA=generic) does not (docs/RUNTIME.md, "Threads").
            guard ComputeKernels.active.isa != .generic else { return }
            Self.expectSameFrames(alone, together, "side by side on one core each")
            // The default: the cores shared among the calls running at the moment, so widths
            // change from loop to loop as calls start and end.
            let shared = try TestDaemon { $0.workers = 2; $0.threadsPerWorker = nil }
            defer { shared.stop() }
            let sharing = try await Self.stream(shared, Self.requests(), clips: 2, together: true)
            #expect(shared.daemon.stepStatistics.mostCallsAtOnce >= 2)
            Self.expectSameFrames(alone, sharing, "side by side sharing the cores")
        }

        @Test("workers default to one per core (at most 8), sharing the cores among the calls running at the moment")
        func computeThreadDefaults() throws {
            let cores = ComputeThreads.available
            var c = DaemonConfiguration()
            #expect(c.workers == min(cores, 8) && c.threadsPerWorker == nil)
            c = try DaemonConfiguration(parsing: "workers = 3\nthreads_per_worker = 1", file: "x.conf")
            #expect(c.workers == 3 && c.threadsPerWorker == 1)
            #expect(throws: ConfigurationError.self) {
                _ = try DaemonConfiguration(parsing: "threads_per_worker = \(cores + 1)", file: "x.conf")
            }
            #expect(throws: ConfigurationError.self) { _ = try DaemonConfiguration(parsing: "threads_per_worker = 0", file: "x.conf") }
        }

        @Test("with max_batch, steps of several sessions share U-Net calls and every session sends the frames it sends alone")
        func batchingSharesCallsAndChangesNoFrame() async throws {
            // A generous wait so that the three sessions' steps meet on a loaded 2-core machine.
            let d = try TestDaemon { $0.maxBatch = 8; $0.batchWaitMs = 200 }
            defer { d.stop() }
            // One after another nothing can be batched: each session's own, unbatched frames.
            let alone = try await Self.stream(d, Self.requests(), clips: 2, together: false)
            #expect(d.daemon.stepStatistics.largestBatch == 1)
            let frames = try await Self.stream(d, Self.requests(), clips: 2, together: true)
            let stats = d.daemon.stepStatistics
            #expect(frames.map(\.count) == [8, 8, 8])
            #expect(stats.largestBatch >= 2 && stats.unetSteps > stats.unetCalls, "steps were batched: \(stats)")
            for f in frames.joined() { #expect((try? WebP.decode(f))?.width == 8) }
            // The runtime's GEMM gives a row the same bits wherever it sits in a call
            // (Sources/CVidrdKernels), so batching must not change a byte. The OpenBLAS fallback
            // (VIDRD_ISA=generic, or a CPU without AVX2) makes no such promise.
            guard ComputeKernels.active.isa != .generic else { return }
            Self.expectSameFrames(alone, frames, "batched")
        }

        @Test("a light stream keeps getting clips while a heavy neighbour's single clip runs")
        func lightStreamNextToHeavyNeighbour() async throws {
            let d = try TestDaemon { $0.limits.maxSteps = 400 }
            defer { d.stop() }
            let client = try await d.client()
            var heavyRequest = Fixture.request("a heavy scene", seed: 5, steps: 12)
            heavyRequest.width = 16
            heavyRequest.height = 16
            heavyRequest.framesPerClip = 8
            heavyRequest.guidance = 5
            let heavy = try await client.openSession(heavyRequest, maxClips: 1)
            // Wait until the heavy clip is under way, then start the light stream.
            var heavyEvents = heavy.makeAsyncIterator()
            while let e = try await heavyEvents.next() { if case .progress = e { break } }
            let log = EventLog()
            let light = try await client.openSession(Fixture.request("a light scene", seed: 6), maxClips: 50)
            let lightTask = Task { () -> Int in
                var n = 0
                for try await _ in light.clips() {
                    n += 1
                    log.add("light")
                }
                return n
            }
            while let e = try await heavyEvents.next() {
                if case .clipEnded = e { log.add("heavy") }
            }
            light.cancel()
            _ = try? await lightTask.value
            let order = log.entries
            let beforeHeavyEnded = order.prefix { $0 == "light" }.count
            // One worker, clip-level scheduling: the light stream could not start a clip before
            // the heavy clip's 12 steps ended. Step-level: it gets its share of every step.
            #expect(order.contains("heavy"), "the heavy clip finished: \(order)")
            #expect(beforeHeavyEnded >= 3, "light clips while the heavy clip ran: \(beforeHeavyEnded); order \(order)")
            await client.close()
        }

        @Test("OPEN_SESSION's weight: a weight-3 session gets about three times the clips of a weight-1 twin; above max_session_weight it is refused")
        func weightsShareTheComputeThread() async throws {
            let d = try TestDaemon { $0.limits.maxSessionWeight = 4 }
            defer { d.stop() }
            let client = try await d.client()
            #expect(await client.serverInfo.limits.maxSessionWeight == 4, "announced in HELLO_ACK's limits")
            var heavy = Fixture.request("twin", seed: 1, steps: 8)
            heavy.weight = 3
            var light = Fixture.request("twin", seed: 2, steps: 8)
            light.weight = 1
            let a = try await client.openSession(heavy, maxClips: 1000)
            let b = try await client.openSession(light, maxClips: 1000)
            #expect(a.parameters.weight == 3 && b.parameters.weight == 1)
            let log = EventLog()
            let tasks = [(a, "a"), (b, "b")].map { session, name in
                Task { for try await _ in session.clips() { log.add(name) } }
            }
            // Both are backlogged (credits granted as clips arrive); count until b has 4 clips,
            // ignoring each session's first clip (they start one after the other).
            #expect(await eventually(within: 120) { log.entries.filter { $0 == "b" }.count >= 5 })
            a.cancel()
            b.cancel()
            for t in tasks { _ = try? await t.value }
            let order = log.entries
            let bIndices = order.indices.filter { order[$0] == "b" }
            try #require(bIndices.count >= 5, "\(order)")
            let bClips = bIndices.count - 1
            let aClips = order[bIndices[0]...bIndices[bClips]].filter { $0 == "a" }.count
            print("weights 3 : 1: a made \(aClips) clips while b made \(bClips)")
            // Fair queuing by weight gives a three clips per b clip; equal weights would give one.
            #expect(aClips >= 2 * bClips, "a made \(aClips) clips while b made \(bClips): \(order)")
            var greedy = Fixture.request("greedy", seed: 3)
            greedy.weight = 5
            let e = try #require(try await rejection(d, greedy))
            #expect(e.code == .invalidArgument && e.message.contains("max_session_weight = 4"), "\(e)")
            await client.close()
        }

        @Test("CANCEL during a long clip stops it within a step; the compute thread serves the next session")
        func cancelFreesTheWorkerWithinAStep() async throws {
            let d = try TestDaemon { $0.limits.maxSteps = 1000 }
            defer { d.stop() }
            let client = try await d.client()
            let long = try await client.openSession(Fixture.request("a long clip", seed: 8, steps: 1000), maxClips: 1)
            var events = long.makeAsyncIterator()
            var seen = 0
            while let e = try await events.next() {
                if case .progress = e { seen += 1 }
                if seen == 3 { break }
            }
            long.cancel()
            #expect(await eventually(within: 10) { try await client.info().activeSessions == 0 })
            let stepsAtCancel = d.daemon.stepStatistics.unetSteps
            // Progress is sent after each step; a few may be in flight when CANCEL arrives, and the
            // step running at that moment finishes. Far from the clip's 1000.
            #expect(stepsAtCancel < 3 + 10, "steps run: \(stepsAtCancel)")
            let next = try await client.openSession(Fixture.request(), maxClips: 1)
            var clips = 0
            for try await _ in next.clips() { clips += 1 }
            #expect(clips == 1)
            #expect(d.daemon.stepStatistics.unetSteps <= stepsAtCancel + 2, "the cancelled clip ran no further steps")
            await client.close()
        }
    }
}
