import Foundation
import Testing
import VidrdDaemon
import VidrdProtocol

@testable import VidrdClient

/// A session's clips with the continuation each CLIP_END carried, read without the library's own
/// resuming (so the tests see the server's tokens themselves).
struct RecordedStream {
    var opened: SessionOpened
    var clips: [VidrdClip]
    var frames: [[UInt8]] { clips.flatMap { $0.frames.map(\.webp) } }
}

func record(_ daemon: TestDaemon, _ request: OpenSession, clips: Int) async throws -> RecordedStream {
    let client = try await daemon.client()
    var req = request
    if req.resumable == nil { req.resumable = true }
    let session = try await client.openSession(req, maxClips: clips, resume: .disabled)
    var out: [VidrdClip] = []
    for try await clip in session.clips() { out.append(clip) }
    await client.close()
    return RecordedStream(opened: session.parameters, clips: out)
}

/// The error an OPEN_SESSION is answered with.
func rejection(_ daemon: TestDaemon, _ request: OpenSession) async throws -> VidrdError? {
    let client = try await daemon.client()
    defer { Task { await client.close() } }
    do {
        let s = try await client.openSession(request, maxClips: 1, resume: .disabled)
        for try await _ in s.clips() {}
        return nil
    } catch let e as VidrdError {
        return e
    }
}

extension DaemonSuite {
    @Suite("Resumable sessions: continuations")
    struct ResumeTests {
        static let key = Array("a continuation key shared by the nodes".utf8)

        static func node(_ configure: (inout DaemonConfiguration) -> Void = { _ in }) throws -> TestDaemon {
            try TestDaemon {
                $0.continuationKey = key
                $0.metricsListen = ListenAddress(host: "127.0.0.1", port: 0)
                configure(&$0)
            }
        }

        static func request(chain: String?, generator: NoiseGeneratorKind? = nil) throws -> OpenSession {
            var r = Fixture.request(seed: 21)
            if let chain { r.strategies = try StrategySpec.parseChain(chain) }
            r.noiseGenerator = generator
            return r
        }

        @Test(
            "a continuation from any CLIP_END (or SESSION_OPENED) continues on another daemon with the uninterrupted stream's bytes, indices and frame numbers",
            arguments: [("fnr,pns,dsg", nil), ("fifo", nil), ("fifo:lookahead=true", NoiseGeneratorKind.torch), ("freenoise", .torchReuseAndDiffuse)]
                as [(String, NoiseGeneratorKind?)])
        func continuesElsewhere(_ chain: String, _ generator: NoiseGeneratorKind?) async throws {
            let a = try Self.node(), b = try Self.node()
            defer { a.stop(); b.stop() }
            let request = try Self.request(chain: chain, generator: generator)
            let whole = try await record(a, request, clips: 4)
            try #require(whole.clips.count == 4)
            #expect(whole.opened.resumable == true)
            let tokens = [whole.opened.continuation] + whole.clips.map(\.end.continuation)
            #expect(tokens.allSatisfy { $0 != nil }, "SESSION_OPENED and every CLIP_END carry a continuation")
            for k in [0, 1, 3] {
                // Token k is the state before clip k: SESSION_OPENED's for k = 0, clip k−1's CLIP_END's after.
                var resume = request
                resume.continuation = try #require(tokens[k])
                let rest = try await record(b, resume, clips: 4 - k)
                #expect(rest.clips.map(\.start.clipIndex) == Array(UInt32(k)..<4), "clip indices go on from \(k)")
                #expect(rest.clips.map(\.start.firstFrameNumber) == whole.clips[k...].map(\.start.firstFrameNumber))
                #expect(rest.frames == whole.clips[k...].flatMap { $0.frames.map(\.webp) }, "\(chain): resumed before clip \(k), every WebP byte equal")
                #expect(rest.clips.flatMap { $0.frames.map(\.frameNumber) } == whole.clips[k...].flatMap { $0.frames.map(\.frameNumber) })
                // The resumed stream's own continuations are the uninterrupted stream's.
                #expect(rest.clips.map(\.end.continuation) == whole.clips[k...].map(\.end.continuation))
            }
            let probe = try #require(b.daemon.metricsPort)
            #expect(try ProbePeer.metrics(port: probe)["vidrd_sessions_resumed_total"] == 3)
        }

        @Test("a tampered continuation, one sealed with another key, one from another model and one presented with another prompt are rejected, naming why; the daemon serves on")
        func rejections() async throws {
            let a = try Self.node()
            let otherKey = try Self.node { $0.continuationKey = Array("another key, another pool of nodes".utf8) }
            let otherModelEngine = try GenerationEngine(
                modelDirectory: Fixture.modelDirectory.deletingLastPathComponent().deletingLastPathComponent()
                    .appendingPathComponent("tiny-fp16/model"))
            let otherModel = try TestDaemon(engine: otherModelEngine) { $0.continuationKey = Self.key }
            defer { a.stop(); otherKey.stop(); otherModel.stop() }
            let request = try Self.request(chain: nil)
            let whole = try await record(a, request, clips: 2)
            let token = try #require(whole.clips[0].end.continuation)

            var tampered = request
            var bytes = token
            bytes[bytes.count / 2] ^= 0x01
            tampered.continuation = bytes
            let t = try #require(await rejection(a, tampered))
            #expect(t.code == .invalidArgument && t.message.contains("integrity"), "\(t)")

            var truncated = request
            truncated.continuation = Array(token.prefix(20))
            let tr = try #require(await rejection(a, truncated))
            #expect(tr.code == .invalidArgument && tr.message.contains("continuation"), "\(tr)")

            var resume = request
            resume.continuation = token
            let k = try #require(await rejection(otherKey, resume))
            #expect(k.code == .invalidArgument && k.message.contains("another continuation key"), "\(k)")
            let m = try #require(await rejection(otherModel, resume))
            #expect(m.code == .failedPrecondition && m.message.contains("another model"), "\(m)")

            var otherPrompt = resume
            otherPrompt.prompt = "a blue square"
            let p = try #require(await rejection(a, otherPrompt))
            #expect(p.code == .invalidArgument && p.message.contains("prompt"), "\(p)")
            var otherSeed = resume
            otherSeed.seed = 22
            let s = try #require(await rejection(a, otherSeed))
            #expect(s.code == .invalidArgument && s.message.contains("seed"), "\(s)")

            // Nothing of that disturbed the daemon: the token still resumes there.
            let rest = try await record(a, resume, clips: 1)
            #expect(rest.frames == whole.clips[1].frames.map(\.webp))
        }

        @Test("no continuations where they are off, too large for max_continuation_bytes, or not asked for; a daemon with resuming off rejects one")
        func whenNotResumable() async throws {
            let off = try Self.node { $0.resumableSessions = false }
            let tiny = try Self.node { $0.maxContinuationBytes = 1024 }
            let a = try Self.node()
            defer { off.stop(); tiny.stop(); a.stop() }
            let request = try Self.request(chain: nil)
            for d in [off, tiny] {
                let r = try await record(d, request, clips: 1)
                #expect(r.opened.resumable == false && r.opened.continuation == nil)
                #expect(r.clips.allSatisfy { $0.end.continuation == nil })
            }
            var plain = request
            plain.resumable = false
            let p = try await record(a, plain, clips: 1)
            #expect(p.opened.resumable == nil && p.clips[0].end.continuation == nil, "a session that did not ask gets no tokens")
            let whole = try await record(a, request, clips: 1)
            var resume = request
            resume.continuation = try #require(whole.clips[0].end.continuation)
            let e = try #require(await rejection(off, resume))
            #expect(e.code == .failedPrecondition && e.message.contains("resumable_sessions"), "\(e)")
        }

        @Test("ResumePolicy: waits double from initialBackoff up to maxBackoff, jitter shortens them by up to its share, retry_after_ms is a floor; drains and lost connections are resumable, rejections are not")
        func policy() {
            let p = ResumePolicy(maxAttempts: 5, initialBackoff: 0.1, maxBackoff: 0.5, jitter: 0.5)
            #expect([1, 2, 3, 4, 5].map { p.delay(attempt: $0, retryAfterMs: nil, random: 0) } == [0.1, 0.2, 0.4, 0.5, 0.5])
            #expect(p.delay(attempt: 2, retryAfterMs: nil, random: 1) == 0.1, "the full jitter halves a wait")
            #expect(p.delay(attempt: 1, retryAfterMs: 2_000, random: 0.3) == 2, "the server's hint wins when longer")
            #expect(ResumePolicy.isResumable(VidrdError(.server, .unavailable, "server shutting down")))
            #expect(ResumePolicy.isResumable(VidrdError(.connectionClosed, .unavailable, "reset")))
            #expect(ResumePolicy.isResumable(VidrdError(.connectionFailed, .unavailable, "refused")))
            #expect(!ResumePolicy.isResumable(VidrdError(.server, .failedPrecondition, "another model")))
            #expect(!ResumePolicy.isResumable(VidrdError(.server, .internal, "generation failed")))
            #expect(!ResumePolicy.isResumable(VidrdError(.protocolViolation, .invalidArgument, "bad frame")))
            #expect(ResumePolicy.disabled.maxAttempts == 0)
        }

        @Test("a drained daemon with nowhere to resume: after maxAttempts the session ends with the drain's UNAVAILABLE, saying why it was not bridged")
        func givesUp() async throws {
            let d = try Self.node()
            let client = try await d.client()
            let session = try await client.openSession(
                Fixture.request(steps: 4), resume: ResumePolicy(maxAttempts: 2, initialBackoff: 0.01, maxBackoff: 0.02))
            var clips = 0
            var ended: VidrdError?
            do {
                for try await event in session {
                    guard case .clipEnded = event else { continue }
                    clips += 1
                    if clips == 1 { d.daemon.shutdown() }
                }
            } catch let e as VidrdError {
                ended = e
            }
            let e = try #require(ended)
            #expect(e.kind == .server && e.code == .unavailable && e.message.contains("not resumed after 2 attempts"), "\(e)")
            #expect(session.resumptions == 0)
            d.daemon.wait()
        }

        @Test("OPEN_SESSION's noise_generator reaches the session: torch noise gives other frames than vidrd's, reproducibly")
        func noiseGeneratorIsHonoured() async throws {
            let a = try Self.node()
            defer { a.stop() }
            let vidrd = try await record(a, try Self.request(chain: nil), clips: 1)
            let torch = try await record(a, try Self.request(chain: nil, generator: .torch), clips: 1)
            let again = try await record(a, try Self.request(chain: nil, generator: .torch), clips: 1)
            #expect(torch.frames != vidrd.frames)
            #expect(torch.frames == again.frames)
        }
    }
}
