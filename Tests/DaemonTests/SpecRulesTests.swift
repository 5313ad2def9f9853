import Foundation
import Testing
@testable import VidrdClient
import VidrdDaemon
import VidrdProtocol

extension DaemonSuite {
    /// Rules docs/PROTOCOL.md states that a client written from it alone relies on (issue 12):
    /// the order of checks before the handshake, every session rejection, skipped session ids,
    /// prompt_frames against the effective frames_per_clip, and the credit invariants.
    @Suite("Daemon spec rules")
    struct SpecRulesTests {
        static func header(_ length: UInt32, _ type: UInt8, _ stream: UInt32, reserved: UInt8 = 0) -> [UInt8] {
            withUnsafeBytes(of: length.bigEndian) { Array($0) } + [type, 0, 0, reserved] + withUnsafeBytes(of: stream.bigEndian) { Array($0) }
        }

        @Test("§8.2: before the handshake, preface, then header rules, then the payload, then 'first frame is HELLO', then version, then token")
        func handshakeCheckOrder() throws {
            let d = try TestDaemon { $0.token = Array("s3cret".utf8) }
            defer { d.stop() }
            func fatal(_ bytes: [UInt8]) throws -> StatusCode? {
                let p = try RawPeer(port: d.port)
                try p.send(bytes)
                return try p.readFatalError()?.code
            }
            let preface = ConnectionPreface.bytes
            // Each case breaks one rule and every rule checked after it; the earliest decides.
            #expect(try fatal(Array("VIDRDX\r\n".utf8) + Self.header(0, 0x7F, 0, reserved: 1)) == .invalidArgument, "preface first")
            #expect(try fatal(preface + Self.header(0, 0x7F, 0, reserved: 1)) == .invalidArgument, "reserved before type")
            #expect(try fatal(preface + Self.header(0, 0x7F, 0)) == .unimplemented, "unknown type before 'not HELLO'")
            #expect(try fatal(preface + Self.header(0, 0x16, 1)) == .invalidArgument, "direction before 'not HELLO'")
            #expect(try fatal(preface + Self.header(0, 0x12, 0)) == .invalidArgument, "stream rule before 'not HELLO'")
            #expect(try fatal(preface + Self.header(0, 0x12, 1)) == .invalidArgument, "malformed payload (PULL without credits) before 'not HELLO'")
            #expect(try fatal(preface + (try FrameEncoder(role: .client).encode(.pull(credits: 1), stream: 1))) == .failedPrecondition)
            #expect(try fatal(preface + (try FrameEncoder(role: .client).encode(.hello(Hello(minVersion: 2, maxVersion: 2))))) == .unimplemented, "version before token")
            #expect(try fatal(preface + (try FrameEncoder(role: .client).encode(.hello(Hello())))) == .unauthenticated)
        }

        @Test("§8.3: every session rejection is a non-fatal INVALID_ARGUMENT naming the field, and the connection goes on")
        func sessionRejections() async throws {
            let d = try TestDaemon { $0.limits.maxChainLength = 3 }
            defer { d.stop() }
            let client = try await d.client()
            func rejection(_ change: (inout OpenSession) -> Void) async -> VidrdError? {
                var r = Fixture.request()
                change(&r)
                do {
                    let s = try await client.openSession(r, prefetch: 1, maxClips: 0)
                    s.cancel()
                    return nil
                } catch {
                    return error as? VidrdError
                }
            }
            let cases: [(String, (inout OpenSession) -> Void)] = [
                ("beta", { $0.chain = [StrategySpec(name: "dsg", params: [StrategyParam("beta", .double(2))])] }),
                ("twice", { $0.chain = [StrategySpec(name: "fnr"), StrategySpec(name: "fnr")] }),
                ("only strategy", { $0.chain = [StrategySpec(name: "none"), StrategySpec(name: "fnr")] }),
                ("max_chain_length", { $0.chain = Array(repeating: StrategySpec(name: "fnr"), count: 4) }),
                ("gamma", { $0.chain = [StrategySpec(name: "pns", params: [StrategyParam("gamma", .double(1))])] }),
                ("height", { $0.height = 12 }),
                ("negative_prompt", { $0.negativePrompt = String(repeating: "n", count: 2049) }),
                ("prompt_frames", { $0.promptFrames = 5 }),
                ("emission new", { $0.promptFrames = 4; $0.emission = .new }),
            ]
            for (needle, change) in cases {
                let e = await rejection(change)
                #expect(e?.code == .invalidArgument && e?.isFatal == false, "\(needle): \(String(describing: e))")
                #expect(e?.message.contains(needle) == true, "the message names \(needle): \(e?.message ?? "accepted")")
            }
            // prompt_frames is checked against the effective frames_per_clip, here the server's
            // default (4): 5 is refused above, 4 = N is accepted with emission all.
            #expect(await rejection({ $0.framesPerClip = nil; $0.promptFrames = 4; $0.emission = .all }) == nil)
            _ = try await client.info()
            await client.close()
            // initial_credits (the library always sends its own prefetch), on a raw connection.
            let p = try RawPeer(port: d.port)
            try p.handshake()
            var r = Fixture.request()
            r.initialCredits = 65
            try p.send(.openSession(r), stream: 1)
            guard case .error(let e)? = try p.next()?.message else {
                Issue.record("initial_credits 65 > max_credits must be refused")
                return
            }
            #expect(e.code == .invalidArgument && !e.fatal && e.message.contains("initial_credits"), "\(e)")
        }

        @Test("§8.3: PULL/CANCEL for a skipped lower id is ignored; above every id used it is fatal")
        func skippedSessionIds() throws {
            let d = try TestDaemon()
            defer { d.stop() }
            let p = try RawPeer(port: d.port)
            try p.handshake()
            for id: UInt32 in [1, 5] {
                try p.send(.openSession(Fixture.request()), stream: id)
                guard case .sessionOpened? = try p.next()?.message else { throw VidrdError(.protocolViolation, .unknown, "no SESSION_OPENED") }
            }
            try p.send(.pull(credits: 1), stream: 3)
            try p.send(.cancel, stream: 3)
            try p.send(.ping(nonce: 7))
            guard case .pong(7)? = try p.next()?.message else {
                Issue.record("the connection must go on after PULL/CANCEL on skipped id 3")
                return
            }
            try p.send(.pull(credits: 1), stream: 6)
            let e = try p.readFatalError()
            #expect(e?.code == .failedPrecondition && e?.message.contains("never opened") == true)
        }

        @Test("§8.4: CLIP_START's counters obey started ≤ granted and credits_remaining ≤ granted − started")
        func creditInvariants() throws {
            let d = try TestDaemon()
            defer { d.stop() }
            let p = try RawPeer(port: d.port)
            try p.handshake()
            var request = Fixture.request()
            request.initialCredits = 2
            try p.send(.openSession(request), stream: 1)
            var granted: UInt32 = 2, started: UInt32 = 0, ended = 0
            while ended < 5, let env = try p.next() {
                switch env.message {
                case .clipStart(let c):
                    started += 1
                    #expect(started <= granted)
                    #expect(c.creditsRemaining <= granted - started, "credits_remaining \(c.creditsRemaining), granted \(granted), started \(started)")
                case .clipEnd:
                    ended += 1
                    // Grant in bursts, so that PULLs are in flight while clips start.
                    if ended < 4 {
                        try p.send(.pull(credits: 1), stream: 1)
                        granted += 1
                    }
                case .error(let e):
                    Issue.record("unexpected \(e)")
                    return
                default:
                    break
                }
            }
            #expect(ended == 5 && started == 5 && granted == 5)
        }
    }
}
