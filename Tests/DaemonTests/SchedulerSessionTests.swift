import Foundation
import Testing
import VidrdDaemon
import VidrdProtocol

@testable import VidrdClient

extension DaemonSuite {
    /// OPEN_SESSION's `scheduler` (tag 20) over a real socket: it reaches the stream, SESSION_OPENED
    /// reports the effective one, a chain that needs DDIM is refused under another, and a
    /// continuation keeps the scheduler it was made with.
    @Suite("Sessions choose their scheduler")
    struct SchedulerSessionTests {
        static func request(_ scheduler: SchedulerChoice?, chain: String? = "fnr,pns,dsg") throws -> OpenSession {
            var r = Fixture.request(seed: 5, steps: 4)
            r.scheduler = scheduler
            if let chain { r.strategies = try StrategySpec.parseChain(chain) }
            return r
        }

        @Test("each scheduler gives its own frames, reproducibly; absent means the model's own (DDIM)")
        func theSchedulerReachesTheSession() async throws {
            let d = try ResumeTests.node()
            defer { d.stop() }
            let native = try await record(d, try Self.request(nil), clips: 2)
            #expect(native.opened.scheduler == .ddim)
            let ddim = try await record(d, try Self.request(.ddim), clips: 2)
            #expect(ddim.frames == native.frames)
            for kind in [SchedulerChoice.dpmSolver, .euler] {
                let a = try await record(d, try Self.request(kind), clips: 2)
                let b = try await record(d, try Self.request(kind), clips: 2)
                #expect(a.opened.scheduler == kind)
                #expect(a.clips.count == 2 && a.frames == b.frames, "\(kind.name): reproducible")
                #expect(a.frames != native.frames, "\(kind.name): another trajectory than DDIM's")
            }
        }

        @Test("fifo under dpm++ or euler is rejected with INVALID_ARGUMENT naming fifo and ddim; under ddim it runs")
        func fifoNeedsDDIM() async throws {
            let d = try ResumeTests.node()
            defer { d.stop() }
            for kind in [SchedulerChoice.dpmSolver, .euler] {
                let e = try #require(try await rejection(d, try Self.request(kind, chain: "fifo")))
                #expect(e.code == .invalidArgument && e.message.contains("fifo") && e.message.contains("ddim"), "\(e)")
            }
            #expect(try await rejection(d, try Self.request(.ddim, chain: "fifo")) == nil)
        }

        @Test("a continuation of a dpm++ session continues on another daemon with its bytes; asking for another scheduler is refused")
        func aContinuationKeepsItsScheduler() async throws {
            let a = try ResumeTests.node(), b = try ResumeTests.node()
            defer { a.stop(); b.stop() }
            let request = try Self.request(.dpmSolver)
            let whole = try await record(a, request, clips: 3)
            try #require(whole.clips.count == 3)
            var resume = OpenSession(prompt: request.prompt)
            resume.continuation = whole.clips[0].end.continuation
            let rest = try await record(b, resume, clips: 2)
            #expect(rest.opened.scheduler == .dpmSolver, "the token's scheduler, not the model's own")
            #expect(rest.frames == whole.clips[1...].flatMap { $0.frames.map(\.webp) })
            resume.scheduler = .ddim
            let e = try #require(try await rejection(b, resume))
            #expect(e.code == .invalidArgument && e.message.contains("scheduler"), "\(e)")
        }
    }
}
