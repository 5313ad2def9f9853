import Foundation
import Testing
import VidrdDaemon
import VidrdProtocol

@testable import VidrdClient

#if canImport(Glibc)
import Glibc
#endif

/// Debian's `haproxy` (scripts/install-deps.sh --test installs it), run with deploy/haproxy/haproxy.cfg.
enum HAProxy {
    static let path: String? = ["/usr/sbin/haproxy", "/usr/bin/haproxy", "/usr/local/sbin/haproxy"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static let shippedConfig = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("deploy/haproxy/haproxy.cfg")

    struct Node {
        var name: String
        var port: UInt16
        var probePort: UInt16
    }

    /// The shipped configuration with the test's addresses: the global section reduced to what
    /// runs unprivileged in the foreground, the frontend and stats on `frontendPort`/`statsPort`,
    /// the servers replaced by `nodes` (their probe ports as check and agent ports), and the
    /// check intervals shortened from seconds to 200 ms. Everything else (leastconn, the HTTP
    /// liveness check, the agent, shutdown-sessions, timeouts, retries) is the file's own.
    static func configuration(frontendPort: UInt16, statsPort: UInt16, nodes: [Node], serverOptions: String = "") throws -> String {
        let text = try String(contentsOf: shippedConfig, encoding: .utf8)
        var out: [String] = []
        var section = ""
        var serversWritten = false
        for line in text.components(separatedBy: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if let first = line.first, !first.isWhitespace, first != "#" {
                section = trimmed
                out.append(line)
                if section == "global" { out.append("    maxconn 256") }
                continue
            }
            if section == "global" { continue }
            if trimmed.hasPrefix("bind ") {
                out.append("    bind 127.0.0.1:\(section.hasPrefix("frontend") ? frontendPort : statsPort)")
                continue
            }
            if trimmed.hasPrefix("server ") {
                // In the place of the file's servers: after `default-server`, which applies only
                // to the servers that follow it.
                if !serversWritten {
                    serversWritten = true
                    for n in nodes {
                        out.append("    server \(n.name) 127.0.0.1:\(n.port) port \(n.probePort) agent-port \(n.probePort) \(serverOptions)")
                    }
                }
                continue
            }
            if trimmed.hasPrefix("default-server ") {
                out.append(line.replacingOccurrences(of: "inter 2s", with: "inter 200ms").replacingOccurrences(of: "fall 3", with: "fall 2"))
                continue
            }
            out.append(line)
        }
        return out.joined(separator: "\n")
    }

    /// A free loopback port: bound to 0, read back, released (HAProxy takes no port 0 it can report).
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw VidrdError(.connectionFailed, .unavailable, "socket() failed") }
        defer { Glibc.close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
            }
        }
        guard ok else { throw VidrdError(.connectionFailed, .unavailable, "cannot bind a free port") }
        return UInt16(bigEndian: addr.sin_port)
    }

    /// The servers' states for a failure message.
    static func describe(statsPort: UInt16) -> String {
        let s: [String: (status: String, sessions: Int, retries: Int)]
        do { s = try servers(statsPort: statsPort) } catch { return "(no stats: \(error))" }
        return s.keys.sorted().map { "\($0): \(s[$0]?.status ?? "?") \(s[$0]?.sessions ?? -1)" }.joined(separator: ", ")
    }

    /// HAProxy's view of each server of the backend (stats CSV): name → (status, current
    /// sessions, connection retries).
    static func servers(statsPort: UInt16) throws -> [String: (status: String, sessions: Int, retries: Int)] {
        let r = try ProbePeer.get(port: statsPort, "/stats;csv")
        let lines = r.body.split(separator: "\n").map(String.init)
        guard let header = lines.first?.dropFirst(2).split(separator: ",", omittingEmptySubsequences: false).map(String.init),
              let px = header.firstIndex(of: "pxname"), let sv = header.firstIndex(of: "svname"),
              let st = header.firstIndex(of: "status"), let cur = header.firstIndex(of: "scur"),
              let retr = header.firstIndex(of: "wretr")
        else { throw VidrdError(.protocolViolation, .unknown, "no stats CSV header in \(r.body.prefix(200))") }
        var out: [String: (String, Int, Int)] = [:]
        for line in lines.dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard f.count > max(st, cur, retr), f[px] == "vidrd_nodes", !["FRONTEND", "BACKEND"].contains(f[sv]) else { continue }
            out[f[sv]] = (f[st], Int(f[cur]) ?? -1, Int(f[retr]) ?? -1)
        }
        return out
    }
}

/// A running haproxy, ended with SIGTERM (then SIGKILL) when released.
final class HAProxyProcess: @unchecked Sendable {
    let process = Process()
    let log: URL
    let directory: URL

    init(configuration: String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-haproxy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let cfg = directory.appendingPathComponent("haproxy.cfg")
        try configuration.write(to: cfg, atomically: true, encoding: .utf8)
        log = directory.appendingPathComponent("haproxy.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.executableURL = URL(fileURLWithPath: try #require(HAProxy.path))
        // -db: foreground, no daemon; -W is not needed for one process.
        process.arguments = ["-db", "-f", cfg.path]
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

extension DaemonSuite {
    @Suite("HAProxy in front of three daemons", .enabled(if: HAProxy.path != nil, "haproxy is not installed (apt-get install haproxy; scripts/install-deps.sh --test)"))
    struct HAProxyTests {
        @Test("leastconn over three nodes, frames byte-identical to a direct stream, a draining node leaves rotation, a stopped one goes DOWN")
        func throughHAProxy() async throws {
            let config = try String(contentsOf: HAProxy.shippedConfig, encoding: .utf8)
            for directive in ["balance leastconn", "on-marked-down shutdown-sessions", "agent-check", "agent-send \"agent\\n\"", "uri /live", "mode tcp"] {
                #expect(config.contains(directive), "deploy/haproxy/haproxy.cfg has `\(directive)`")
            }
            let daemons = try (1...3).map { i in
                try TestDaemon {
                    $0.serverName = "node\(i)"
                    $0.metricsListen = ListenAddress(host: "127.0.0.1", port: 0)
                    $0.limits.maxSteps = 1000
                    $0.drainGraceMs = 60_000
                }
            }
            defer { for d in daemons { d.stop() } }
            let nodes = try daemons.enumerated().map { i, d in HAProxy.Node(name: "node\(i + 1)", port: d.port, probePort: try #require(d.daemon.metricsPort)) }
            let frontend = try HAProxy.freePort()
            let stats = try HAProxy.freePort()
            let proxy = try HAProxyProcess(configuration: HAProxy.configuration(frontendPort: frontend, statsPort: stats, nodes: nodes))
            defer { proxy.stop() }
            let allUp = await eventually(within: 15) {
                let s = try HAProxy.servers(statsPort: stats)
                return s.count == 3 && s.values.allSatisfy { $0.status == "UP" }
            }
            try #require(allUp, "all three servers UP: \(HAProxy.describe(statsPort: stats)); haproxy said: \(proxy.output)")

            // The same seed through HAProxy and straight to a node: the same bytes.
            func stream(port: UInt16) async throws -> (node: String, frames: [[UInt8]]) {
                let client = try await VidrdClient.connect(host: "127.0.0.1", port: port)
                let session = try await client.openSession(Fixture.request(seed: 11), maxClips: 2)
                var frames: [[UInt8]] = []
                for try await clip in session.clips() { frames += clip.frames.map(\.webp) }
                await client.close()
                return (client.serverInfo.serverName, frames)
            }
            let proxied = try await stream(port: frontend)
            let direct = try await stream(port: daemons[0].port)
            #expect(proxied.frames.count == 8)
            #expect(proxied.frames == direct.frames, "through HAProxy (\(proxied.node)) and direct (node1)")

            // Wait until HAProxy has released those connections, so leastconn starts from zero.
            #expect(await eventually { try HAProxy.servers(statsPort: stats).values.allSatisfy { $0.sessions == 0 } })
            // Three connections at once: leastconn puts one on each node.
            var held: [VidrdClient] = []
            for _ in 0..<3 { held.append(try await VidrdClient.connect(host: "127.0.0.1", port: frontend)) }
            #expect(Set(held.map(\.serverInfo.serverName)) == ["node1", "node2", "node3"])

            // The first connection's node drains while a long clip keeps it busy.
            let drainingName = held[0].serverInfo.serverName
            let draining = try #require(daemons.first { $0.daemon.metricsPort == nodes.first { $0.name == drainingName }?.probePort })
            let long = try await held[0].openSession(Fixture.request("a long clip", seed: 8, steps: 1000), maxClips: 1)
            var events = long.makeAsyncIterator()
            while let e = try await events.next() {
                if case .progress = e { break }
            }
            for c in held.dropFirst() { await c.close() }
            #expect(await eventually { try HAProxy.servers(statsPort: stats).filter { $0.key != drainingName }.values.allSatisfy { $0.sessions == 0 } })
            let drainingPort = try #require(draining.daemon.metricsPort)
            let acceptedBefore = try ProbePeer.metrics(port: drainingPort)["vidrd_connections_accepted_total"]
            draining.daemon.shutdown()
            let markedDrain = await eventually(within: 10) {
                try HAProxy.servers(statsPort: stats)[drainingName]?.status.hasPrefix("DRAIN") == true
            }
            #expect(markedDrain, "HAProxy shows \(drainingName) DRAIN: \(HAProxy.describe(statsPort: stats))")
            // The draining node has the fewest connections (1 against 0 + 0, then more): in rotation
            // it would get some of these four; out of rotation it gets none.
            var after: [VidrdClient] = []
            for _ in 0..<4 { after.append(try await VidrdClient.connect(host: "127.0.0.1", port: frontend)) }
            let names = after.map(\.serverInfo.serverName)
            #expect(!names.contains(drainingName), "new connections went to \(names); \(drainingName) drains")
            #expect(Set(names).count == 2, "the two other nodes share them: \(names)")
            #expect(try ProbePeer.metrics(port: drainingPort)["vidrd_connections_accepted_total"] == acceptedBefore)
            // Out of rotation, not merely refused and redispatched: HAProxy never tried it.
            #expect(try HAProxy.servers(statsPort: stats)[drainingName]?.retries == 0)

            // Its clip cancelled, the draining node stops; its liveness check fails and HAProxy marks it DOWN.
            long.cancel()
            draining.daemon.wait()
            let markedDown = await eventually(within: 10) {
                try HAProxy.servers(statsPort: stats)[drainingName]?.status.hasPrefix("DOWN") == true
            }
            #expect(markedDown, "HAProxy shows \(drainingName) DOWN: \(HAProxy.describe(statsPort: stats))")
            let last = try await stream(port: frontend)
            #expect(last.node != drainingName && last.frames == direct.frames)
            for c in after { await c.close() }
            await held[0].close()
        }

        @Test("a hung node (SIGSTOP) fails its liveness check: HAProxy marks it DOWN and cuts its clients at once (shutdown-sessions); the other node serves")
        func hungNodeIsCut() async throws {
            let config = "max_steps = 1000\nlinger_ms = 200\n"
            let processes = [try await DaemonProcess(config: config + "server_name = node1\n"), try await DaemonProcess(config: config + "server_name = node2\n")]
            let nodes = processes.enumerated().map { i, p in HAProxy.Node(name: "node\(i + 1)", port: p.port, probePort: p.probePort) }
            let frontend = try HAProxy.freePort()
            let stats = try HAProxy.freePort()
            let proxy = try HAProxyProcess(configuration: HAProxy.configuration(frontendPort: frontend, statsPort: stats, nodes: nodes))
            defer { proxy.stop() }
            let allUp = await eventually(within: 15) { try HAProxy.servers(statsPort: stats).values.filter { $0.status == "UP" }.count == 2 }
            try #require(allUp, "both UP: \(HAProxy.describe(statsPort: stats)); haproxy said: \(proxy.output)")

            let client = try await VidrdClient.connect(host: "127.0.0.1", port: frontend)
            let hungName = client.serverInfo.serverName
            let hung = try #require(processes[hungName == "node1" ? 0 : 1].process as Process?)
            // Not resuming, so that the cut itself ends the stream (ResumeHAProxyTests resume across one).
            let long = try await client.openSession(Fixture.request("a long clip", seed: 8, steps: 1000), maxClips: 1, resume: .disabled)
            var events = long.makeAsyncIterator()
            while let e = try await events.next() {
                if case .progress = e { break }
            }
            // Stopped, the process keeps its sockets: the kernel still accepts connections to it,
            // nothing answers. Only the failing check (timeout, `fall 2`) can notice.
            kill(hung.processIdentifier, SIGSTOP)
            let stopped = Date()
            var cut: Error?
            do {
                while try await events.next() != nil {}
            } catch {
                cut = error
            }
            let seconds = Date().timeIntervalSince(stopped)
            #expect(cut != nil, "the stream ends with an error")
            // timeout server is 75 s and the client's keepalive 15 s: only shutdown-sessions is this fast.
            #expect(seconds < 10, "cut after \(seconds) s")
            #expect(try HAProxy.servers(statsPort: stats)[hungName]?.status.hasPrefix("DOWN") == true, "\(HAProxy.describe(statsPort: stats))")
            let next = try await VidrdClient.connect(host: "127.0.0.1", port: frontend)
            #expect(next.serverInfo.serverName != hungName)
            let session = try await next.openSession(Fixture.request(), maxClips: 1)
            var frames = 0
            for try await clip in session.clips() { frames += clip.frames.count }
            #expect(frames == 4)
            await next.close()
        }
    }
}
