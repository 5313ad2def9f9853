import Foundation
import Testing
import VidrdProtocol

@testable import VidrdClient

#if canImport(Glibc)
import Glibc
#endif

extension DaemonSuite {
    @Suite("Resuming across nodes behind HAProxy", .enabled(if: HAProxy.path != nil, "haproxy is not installed (apt-get install haproxy; scripts/install-deps.sh --test)"))
    struct ResumeHAProxyTests {
        /// Three vidrd-daemon processes sharing a continuation key, behind the shipped HAProxy config.
        final class Cluster: @unchecked Sendable {
            let nodes: [DaemonProcess]
            let proxy: HAProxyProcess
            let frontend: UInt16
            let stats: UInt16
            let keyDirectory: URL

            init() async throws {
                keyDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-key-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: keyDirectory, withIntermediateDirectories: true)
                let key = keyDirectory.appendingPathComponent("continuation.key")
                try Data((0..<32).map { _ in UInt8.random(in: 0...255) }).write(to: key)
                let config = "max_steps = 1000\nlinger_ms = 200\ndrain_grace_ms = 30000\ncontinuation_key_file = \(key.path)\n"
                var nodes: [DaemonProcess] = []
                for i in 1...3 { nodes.append(try await DaemonProcess(config: config + "server_name = node\(i)\n")) }
                self.nodes = nodes
                frontend = try HAProxy.freePort()
                stats = try HAProxy.freePort()
                proxy = try HAProxyProcess(
                    configuration: HAProxy.configuration(
                        frontendPort: frontend, statsPort: stats,
                        nodes: nodes.enumerated().map { i, p in HAProxy.Node(name: "node\(i + 1)", port: p.port, probePort: p.probePort) }))
            }

            func process(named name: String) -> DaemonProcess? {
                Int(name.dropFirst(4)).flatMap { $0 >= 1 && $0 <= nodes.count ? nodes[$0 - 1] : nil }
            }

            deinit {
                proxy.stop()
                try? FileManager.default.removeItem(at: keyDirectory)
            }
        }

        static let clips = 6

        /// A stream long enough that the signal lands while clips are still to come.
        static var request: OpenSession { Fixture.request("a red ball bouncing on grass", seed: 31, steps: 8) }

        @Test(
            "a node SIGTERMed or SIGKILLed mid-clip: the client resumes through HAProxy on another node and its frames are byte for byte an uninterrupted run's",
            arguments: [SIGTERM, SIGKILL])
        func resumesAcrossNodeLoss(_ signal: Int32) async throws {
            let cluster = try await Cluster()
            let allUp = await eventually(within: 15) {
                let s = try HAProxy.servers(statsPort: cluster.stats)
                return s.count == 3 && s.values.allSatisfy { $0.status == "UP" }
            }
            try #require(allUp, "all three UP: \(HAProxy.describe(statsPort: cluster.stats)); haproxy said: \(cluster.proxy.output)")

            // The reference: the same request straight to one node, nothing interrupted.
            let direct = try await VidrdClient.connect(host: "127.0.0.1", port: cluster.nodes[0].port)
            let whole = try await direct.openSession(Self.request, maxClips: Self.clips, resume: .disabled)
            var reference: [VideoFrame] = []
            for try await clip in whole.clips() { reference += clip.frames }
            await direct.close()
            try #require(reference.count == Self.clips * 4)

            let client = try await VidrdClient.connect(host: "127.0.0.1", port: cluster.frontend)
            let victimName = client.serverInfo.serverName
            let victim = try #require(cluster.process(named: victimName))
            let session = try await client.openSession(Self.request, prefetch: 1, maxClips: Self.clips)
            #expect(session.parameters.resumable == true)
            var frames: [VideoFrame] = []
            var starts: [UInt32] = []
            var ends: [UInt32] = []
            var signalled = false
            for try await event in session {
                switch event {
                case .clipStarted(let s): starts.append(s.clipIndex)
                case .clipEnded(let e): ends.append(e.clipIndex)
                case .frame(let f):
                    frames.append(f)
                    // Mid-clip from the viewer's side: clip 2 has begun to arrive, not finished.
                    if !signalled, f.clipIndex == 2, f.frameIndex == 1 {
                        signalled = true
                        kill(victim.process.processIdentifier, signal)
                    }
                case .progress: break
                }
            }
            #expect(signalled)
            #expect(session.resumptions == 1, "one move to another node")
            #expect(frames.map(\.frameNumber) == Array(0..<UInt64(Self.clips * 4)), "no frame missing or repeated")
            let same = frames.map(\.webp) == reference.map(\.webp)
            let firstDifference = zip(frames, reference).enumerated().first { $0.element.0.webp != $0.element.1.webp }?.offset
            #expect(same, "every WebP byte as in the uninterrupted run: \(frames.count) vs \(reference.count) frames, first difference at \(firstDifference.map(String.init) ?? "-")")
            #expect(starts == Array(0..<UInt32(Self.clips)) && ends == starts, "each clip started and ended once")
            victim.process.waitUntilExit()
            #expect(victim.process.terminationReason == (signal == SIGKILL ? .uncaughtSignal : .exit))
            await client.close()
        }
    }
}
