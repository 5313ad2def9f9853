import Foundation
import Testing
@testable import VidrdClient
import VidrdDaemon
import VidrdMedia
import VidrdProtocol

/// Real daemon (libuv loop, worker thread, tiny fixture model) and real client on loopback.
/// Serialized: the machine has two cores and every test generates clips.
extension DaemonSuite {
    @Suite("Daemon and client")
    struct StreamingTests {
        @Test("stream 3 clips; every FRAME is a decodable WebP; the animated file reads back")
        func streamThreeClips() async throws {
            let d = try TestDaemon()
            defer { d.stop() }
            let client = try await d.client()
            #expect(client.serverInfo.modelName == "tiny-lpb2")
            #expect(client.strategies.strategies.map(\.name).contains("fnr"))
            let session = try await client.openSession(Fixture.request(), maxClips: 3)
            #expect(session.parameters.width == 8 && session.parameters.framesPerClip == 4)
            #expect(session.parameters.strategies.map(\.name) == ["fnr", "pns", "dsg"])
            #expect(session.parameters.emission == .all && session.parameters.promptFrames == 2)
            #expect((3...77).contains(session.parameters.promptTokens ?? 0), "BOS, the words, EOS")

            let path = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-test-\(UUID().uuidString).webp").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            let animation = try AnimatedWebPFile(path: path, width: 8, height: 8, fps: 8)
            var clips: [VidrdClip] = []
            var progress = 0
            var start: ClipStart?
            var frames: [VideoFrame] = []
            for try await event in session {
                switch event {
                case .clipStarted(let s): start = s; frames = []
                case .progress(let p): progress += 1; #expect(p.step <= p.total)
                case .frame(let f): frames.append(f); try animation.add(webp: f.webp)
                case .clipEnded(let e): clips.append(VidrdClip(start: try #require(start), frames: frames, end: e))
                }
            }
            try animation.finish()

            #expect(clips.map(\.start.clipIndex) == [0, 1, 2])
            #expect(progress >= 3 * 2)
            var number: UInt64 = 0
            for clip in clips {
                #expect(clip.frames.count == 4 && clip.end.frameCount == 4 && clip.start.frameCount == 4)
                #expect(clip.start.firstFrameNumber == number && clip.end.firstFrameNumber == number)
                for (i, f) in clip.frames.enumerated() {
                    #expect(f.frameIndex == UInt32(i) && f.frameNumber == number + UInt64(i) && f.clipIndex == clip.start.clipIndex)
                }
                number += 4
                try expectDecodable(clip, width: 8, height: 8)
                #expect(clip.end.totalMicros >= clip.end.denoiseMicros)
            }
            let readBack = try AnimatedWebPReader.frames(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
            #expect(readBack.count == 12 && readBack.allSatisfy { $0.width == 8 && $0.height == 8 })
            // The first frame as sent and as muxed decode to the same pixels (nothing re-encoded).
            #expect(readBack[0].pixels == (try WebP.decode(clips[0].frames[0].webp)).pixels)

            #expect(await eventually { try await client.info().activeSessions == 0 })
            let info = try await client.info()
            #expect(info.clipsGenerated >= 3 && info.framesSent >= 12)
            await client.close()
        }

        @Test("AnimatedWebPFile muxes still WebPs without re-encoding (lossless frames come back exact)")
        func animatedFile() throws {
            var rng = SystemRandomNumberGenerator()
            let images = (0..<3).map { _ in
                RGBImage(width: 10, height: 6, pixels: (0..<(10 * 6 * 3)).map { _ in UInt8.random(in: 0...255, using: &rng) })
            }
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-mux-\(UUID().uuidString).webp").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            let file = try AnimatedWebPFile(path: path, width: 10, height: 6, fps: 12)
            for image in images { try file.add(webp: try WebP.encode(image, compression: .lossless)) }
            #expect(throws: AnimatedWebPFile.Failure.self) {
                try file.add(webp: try WebP.encode(RGBImage(width: 4, height: 4, pixels: .init(repeating: 0, count: 48)), compression: .lossless))
            }
            try file.finish()
            let back = try AnimatedWebPReader.frames(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
            #expect(back == images)
        }

        @Test("the blocking callback client streams and stops when the callback says so")
        func blockingClient() async throws {
            let d = try TestDaemon()
            defer { d.stop() }
            let port = d.port
            let counts: (Int, Int, SessionOpened?) = try await runOnThread {
                let client = try VidrdBlockingClient.connect(port: port)
                defer { client.close() }
                var frames = 0, ends = 0
                var opened: SessionOpened?
                try client.stream(Fixture.request(), maxClips: 2, onOpened: { opened = $0 }) { event in
                    if case .frame(let f) = event { frames += 1; _ = try? WebP.decode(f.webp) }
                    if case .clipEnded = event { ends += 1 }
                    return true
                }
                // Stopping from the callback: false after the first frame cancels the session.
                var seen = 0
                try client.stream(Fixture.request(seed: 8)) { event in
                    if case .frame = event { seen += 1; return false }
                    return true
                }
                #expect(seen == 1)
                #expect(try client.info().activeConnections >= 1)
                return (frames, ends, opened)
            }
            #expect(counts.0 == 8 && counts.1 == 2 && counts.2?.seed == 7)
        }

        @Test("cancelling mid-clip ends the session at once and frees it")
        func cancelMidClip() async throws {
            let d = try TestDaemon()
            defer { d.stop() }
            let client = try await d.client()
            let session = try await client.openSession(Fixture.request(steps: 50))
            // The consuming task cancels itself at the first denoising step of clip 0.
            let consumer = Task { () -> (frames: Int, progress: Int) in
                var frames = 0, progress = 0
                for try await event in session {
                    if case .frame = event { frames += 1 }
                    if case .progress = event {
                        progress += 1
                        if progress == 1 { withUnsafeCurrentTask { $0?.cancel() } }
                    }
                }
                return (frames, progress)
            }
            let result = try await consumer.value
            #expect(result.progress >= 1)
            #expect(result.frames == 0)
            #expect(await eventually(within: 10) { try await client.info().activeSessions == 0 })
            let info = try await client.info()
            #expect(info.clipsGenerated == 0, "the cancelled clip was not completed")
            // The connection is still usable.
            let again = try await client.openSession(Fixture.request(), maxClips: 1)
            var clips = 0
            for try await _ in again.clips() { clips += 1 }
            #expect(clips == 1)
            await client.close()
        }

        @Test("two sessions on one connection both stream to the end over the real socket")
        func twoSessionsOneConnection() async throws {
            let d = try TestDaemon()
            defer { d.stop() }
            let client = try await d.client()
            let order = EventLog()
            // a's clips cost about four times b's (8 steps against 2), one worker.
            let a = try await client.openSession(Fixture.request("a red ball", seed: 1, steps: 8), maxClips: 2)
            let b = try await client.openSession(Fixture.request("a blue cube", seed: 2), maxClips: 5)
            #expect(a.id != b.id)
            async let ca = collect(a, name: "a", log: order)
            async let cb = collect(b, name: "b", log: order)
            let (clipsA, clipsB) = try await (ca, cb)
            #expect(clipsA.count == 2 && clipsB.count == 5)
            for c in clipsA + clipsB { try expectDecodable(c, width: 8, height: 8) }
            // Which session's clip ends first depends on when b's OPEN_SESSION arrived; the exact
            // dispatch order is ServerStateMachineTests.dispatchOrder's. Here: each session's
            // clips arrive in order and all of them arrive.
            let ends = order.entries
            #expect(ends.filter { $0.hasPrefix("a") } == ["a0", "a1"], "order: \(ends)")
            #expect(ends.filter { $0.hasPrefix("b") } == ["b0", "b1", "b2", "b3", "b4"], "order: \(ends)")
            await client.close()
        }

        @Test("two connections stream concurrently")
        func twoConnections() async throws {
            let d = try TestDaemon { $0.workers = 2 }
            defer { d.stop() }
            let c1 = try await d.client()
            let c2 = try await d.client()
            let order = EventLog()
            let a = try await c1.openSession(Fixture.request(seed: 3), maxClips: 2)
            let b = try await c2.openSession(Fixture.request(seed: 4), maxClips: 2)
            async let ca = collect(a, name: "a", log: order)
            async let cb = collect(b, name: "b", log: order)
            let (clipsA, clipsB) = try await (ca, cb)
            #expect(clipsA.count == 2 && clipsB.count == 2)
            for c in clipsA + clipsB { try expectDecodable(c, width: 8, height: 8) }
            #expect(order.entries.count == 4)
            let info = try await c1.info()
            #expect(info.activeConnections == 2)
            await c1.close()
            #expect(await eventually { try await c2.info().activeConnections == 1 })
            await c2.close()
        }

        @Test("emission new: later clips send only their new frames; CLIP_START counts are exact")
        func emissionNew() async throws {
            let d = try TestDaemon()
            defer { d.stop() }
            let client = try await d.client()
            var request = Fixture.request()
            request.emission = .new
            request.promptFrames = 3
            let s = try await client.openSession(request, maxClips: 3)
            #expect(s.parameters.emission == .new && s.parameters.promptFrames == 3)
            var clips: [VidrdClip] = []
            for try await clip in s.clips() { clips.append(clip) }
            #expect(clips.map(\.frames.count) == [4, 1, 1])
            #expect(clips.map(\.start.frameCount) == clips.map(\.end.frameCount))
            #expect(clips.flatMap(\.frames).map(\.frameNumber) == [0, 1, 2, 3, 4, 5])
            // frame_index counts the FRAMEs sent (PROTOCOL.md §6.14): clip 1 sends generated frame
            // 3 of 4 as frame_index 0, not 3.
            #expect(clips.map { $0.frames.map(\.frameIndex) } == [[0, 1, 2, 3], [0], [0]])
            await client.close()
        }

        @Test("the same seed reproduces the same frames")
        func determinism() async throws {
            let d = try TestDaemon()
            defer { d.stop() }
            let client = try await d.client()
            var runs: [[[UInt8]]] = []
            for _ in 0..<2 {
                let s = try await client.openSession(Fixture.request(seed: 99), maxClips: 2)
                var frames: [[UInt8]] = []
                for try await clip in s.clips() { frames += clip.frames.map(\.webp) }
                runs.append(frames)
            }
            #expect(runs[0].count == 8 && runs[0] == runs[1])
            await client.close()
        }

        @Test("graceful drain: the clip in progress finishes, then UNAVAILABLE")
        func drain() async throws {
            let d = try TestDaemon()
            let client = try await d.client()
            // Not resuming: this is the protocol's drain as a client without continuations sees it.
            let session = try await client.openSession(Fixture.request(steps: 4), resume: .disabled)
            var clipEnds = 0
            var drained = false
            do {
                for try await event in session {
                    if case .progress = event, !drained {
                        drained = true
                        d.daemon.shutdown()
                    }
                    if case .clipEnded = event { clipEnds += 1 }
                }
                Issue.record("the session should end with UNAVAILABLE")
            } catch let e as VidrdError {
                #expect(e.kind == .server && e.code == .unavailable && !e.isFatal)
            }
            #expect(clipEnds == 1, "the clip in progress completes")
            d.daemon.wait()
            do {
                _ = try await client.info()
                Issue.record("the connection should be closed")
            } catch let e as VidrdError {
                #expect(e.code == .unavailable)
            }
        }
    }
}

/// Clips of a session, logging "a0", "a1", ... as each ends.
func collect(_ s: VidrdSession, name: String, log: EventLog) async throws -> [VidrdClip] {
    var out: [VidrdClip] = []
    for try await clip in s.clips() {
        log.add("\(name)\(clip.start.clipIndex)")
        out.append(clip)
    }
    return out
}

final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
    var entries: [String] { lock.lock(); defer { lock.unlock() }; return items }
}

/// Runs blocking client code on its own thread.
func runOnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        Thread { c.resume(with: Result { try body() }) }.start()
    }
}
