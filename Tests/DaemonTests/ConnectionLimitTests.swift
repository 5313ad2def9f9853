import Foundation
import Testing
@testable import VidrdClient
import VidrdDaemon
import VidrdProtocol

/// Whether the server has fully closed `peer`'s connection: a lingering server still reads (and
/// discards) what the peer sends, a closed one answers with a reset, so the second send fails.
func serverHasClosed(_ peer: RawPeer) -> Bool {
    for _ in 0..<20 {
        do {
            try peer.send([0])
        } catch {
            return true
        }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return false
}

extension DaemonSuite {
    /// docs/PROTOCOL.md §8.2, §8.5 and §9: connection limits, lingering and the frame deadline.
    @Suite("Daemon connection limits")
    struct ConnectionLimitTests {
        @Test("max_connections and frame_timeout_ms are announced in Limits")
        func announced() async throws {
            let d = try TestDaemon {
                $0.maxConnections = 3
                $0.limits.frameTimeoutMs = 4_000
            }
            defer { d.stop() }
            let client = try await d.client()
            #expect(client.serverInfo.limits.maxConnections == 3)
            #expect(client.serverInfo.limits.frameTimeoutMs == 4_000)
            await client.close()
            #expect(DaemonConfiguration().limits.maxConnections == 64 && DaemonConfiguration().limits.frameTimeoutMs == 30_000)
            #expect(try DaemonConfiguration(parsing: "frame_timeout_ms = 0").limits.frameTimeoutMs == 0)
            #expect(throws: ConfigurationError.self) { try DaemonConfiguration(parsing: "frame_timeout_ms = 99999999") }
        }

        @Test("past the handshake capacity a newcomer gets the preface and RESOURCE_EXHAUSTED with retry_after_ms")
        func handshakeCapacity() async throws {
            let d = try TestDaemon {
                $0.maxConnections = 1
                $0.limits.handshakeTimeoutMs = 30_000
            }
            defer { d.stop() }
            // max_connections + max(max_connections, 16) = 17 may be handshaking or ready.
            var held: [RawPeer] = []
            for _ in 0..<17 { held.append(try RawPeer(port: d.port)) }
            let ack = try held[0].handshake()
            #expect(ack.info.limits.maxConnections == 1)
            let extra = try RawPeer(port: d.port)
            let refusal = try #require(try extra.readFatalError(), "a refused connection gets a fatal ERROR, not a bare close")
            #expect(refusal.code == .resourceExhausted && refusal.retryAfterMs == 1000)
            #expect(refusal.message.contains("17"), "\(refusal.message)")
            #expect(extra.waitForEOF())
            // The client library reports it like any refusal.
            do {
                _ = try await d.client()
                Issue.record("the handshake capacity must hold")
            } catch let e as VidrdError {
                #expect(e.code == .resourceExhausted && e.retryAfterMs == 1000, "\(e)")
            }
            // The ready connection leaves: a newcomer is served again.
            held.removeFirst().socket.close()
            #expect(await eventually { (try? await d.client()) != nil })
        }

        @Test("connections lingering after a fatal ERROR neither count nor keep newcomers out")
        func lingeringDoesNotBlock() async throws {
            let d = try TestDaemon {
                $0.maxConnections = 1
                $0.lingerMs = 20_000
            }
            defer { d.stop() }
            // 17 (the handshake capacity) peers break the preface and keep their sockets open,
            // so the server lingers on each for 20 s.
            func failingPeer() throws -> RawPeer {
                let p = try RawPeer(port: d.port)
                try p.send(Array("NOTVIDRD".utf8))
                #expect(try p.readFatalError()?.code == .invalidArgument)
                return p
            }
            var lingering: [RawPeer] = []
            for _ in 0..<17 { lingering.append(try failingPeer()) }
            let client = try await d.client()
            #expect(try await client.info().activeConnections == 1, "lingering connections are not counted")
            #expect(!serverHasClosed(lingering[0]), "the first lingers (reads and discards)")
            // One more lingering connection than the bound: the longest-lingering one is closed.
            lingering.append(try failingPeer())
            #expect(serverHasClosed(lingering[0]), "the oldest lingering connection makes room")
            #expect(!serverHasClosed(lingering[lingering.count - 1]))
            _ = try await client.info()
            await client.close()
        }

        @Test("a frame trickled a byte at a time is cut off at frame_timeout_ms; partial bytes do not reset the idle timer")
        func frameDeadline() async throws {
            for (frameTimeout, idle) in [(UInt32(500), UInt32(10_000)), (0, 800)] {
                let d = try TestDaemon {
                    $0.limits.keepaliveIntervalMs = 100
                    $0.limits.idleTimeoutMs = idle
                    $0.limits.frameTimeoutMs = frameTimeout
                }
                defer { d.stop() }
                let peer = try RawPeer(port: d.port)
                try peer.handshake()
                // OPEN_SESSION on stream 1 announcing 100 000 payload bytes, then one byte per 50 ms.
                try peer.send([0x00, 0x01, 0x86, 0xA0, 0x10, 0, 0, 0, 0, 0, 0, 1])
                let started = Date()
                var error: ErrorMessage?
                while error == nil, Date().timeIntervalSince(started) < 8 {
                    try? peer.send([0x41])
                    if case .error(let e)? = (try? peer.next(timeout: 0.05))?.message { error = e }
                }
                let elapsed = Date().timeIntervalSince(started)
                let e = try #require(error, "frame_timeout_ms = \(frameTimeout): the trickling peer must be failed")
                #expect(e.code == .deadlineExceeded && e.fatal)
                if frameTimeout > 0 {
                    #expect(e.message.contains("frame_timeout_ms"), "\(e.message)")
                    #expect(elapsed < 3, "cut off near 500 ms, long before the 10 s idle timeout (\(elapsed) s)")
                } else {
                    #expect(e.message.contains("nothing received"), "\(e.message)")
                    #expect(elapsed < 4, "the idle timer ran although bytes kept arriving (\(elapsed) s)")
                }
            }
        }

        @Test("a frame completed within frame_timeout_ms is served, however slowly its bytes came")
        func slowButInTime() throws {
            let d = try TestDaemon { $0.limits.frameTimeoutMs = 2_000 }
            defer { d.stop() }
            let peer = try RawPeer(port: d.port)
            try peer.handshake()
            let bytes = try FrameEncoder(role: .client).encode(.ping(nonce: 9))
            for b in bytes {
                try peer.send([b])
                Thread.sleep(forTimeInterval: 0.02)
            }
            guard case .pong(let n)? = try peer.next()?.message else {
                Issue.record("no PONG")
                return
            }
            #expect(n == 9)
        }
    }
}
