import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif
import VidrdProtocol

@testable import VidrdDaemon

@testable import VidrdClient

/// A one-shot peer of the probe port over a real socket: sends `request`, reads to end of file.
enum ProbePeer {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    /// Everything the server sent before closing (nil: could not connect).
    static func exchange(port: UInt16, _ request: String, timeout: Double = 10) throws -> String {
        let socket = try Socket.connect(host: "127.0.0.1", port: port, timeout: 5)
        defer { socket.close() }
        if !request.isEmpty { try socket.send(Array(request.utf8)) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        var out: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        while deadline.timeIntervalSinceNow > 0 {
            switch socket.receive(into: buffer, timeoutMs: 100) {
            case .data(let n): out += buffer[0..<n]
            case .timeout: continue
            case .eof, .failed: return String(decoding: out, as: UTF8.self)
            }
        }
        throw VidrdError(.connectionClosed, .deadlineExceeded, "the probe port did not close within \(timeout) s")
    }

    static func get(port: UInt16, _ path: String, method: String = "GET", version: String = "1.1") throws -> Response {
        let raw = try exchange(port: port, "\(method) \(path) HTTP/\(version)\r\nHost: 127.0.0.1\r\nUser-Agent: vidrd-tests\r\nConnection: close\r\n\r\n")
        return try parse(raw)
    }

    static func parse(_ raw: String) throws -> Response {
        let split = try #require(raw.range(of: "\r\n\r\n"), "no end of head in \(raw.debugDescription)")
        let lines = raw[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusLine = lines[0].split(separator: " ")
        let status = try #require(statusLine.count >= 2 ? Int(statusLine[1]) : nil, "status line \(lines[0])")
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = String(raw[split.upperBound...])
        if headers["transfer-encoding"] == "chunked" { body = dechunk(body) }
        return Response(status: status, headers: headers, body: body)
    }

    /// A chunked body's data (HAProxy's stats page answers chunked even to HTTP/1.0).
    static func dechunk(_ body: String) -> String {
        var rest = Substring(body)
        var out = ""
        while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound].prefix { $0 != ";" }, radix: 16), size > 0 {
            let data = rest[lineEnd.upperBound...].utf8.prefix(size)
            out += String(decoding: data, as: UTF8.self)
            rest = Substring(String(decoding: rest[lineEnd.upperBound...].utf8.dropFirst(size + 2), as: UTF8.self))
        }
        return out
    }

    /// HAProxy's agent-check exchange with `agent-send "agent\n"`.
    static func agent(port: UInt16) throws -> String { try exchange(port: port, "agent\n") }

    /// The exposition's samples, keyed `name{labels}` as written, after checking that every
    /// line is a comment or `name[{labels}] value` with a number, and that every sample's metric
    /// family has a `# TYPE`.
    static func samples(_ text: String) throws -> [String: Double] {
        var out: [String: Double] = [:]
        var typed: Set<String> = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count >= 4 { typed.insert(String(parts[2])) }
                continue
            }
            if line.hasPrefix("#") { continue }
            let space = try #require(line.lastIndex(of: " "), "sample line without a value: \(line)")
            let key = String(line[..<space])
            let value = try #require(Double(line[line.index(after: space)...]), "not a number: \(line)")
            let family = String(key.prefix { $0 != "{" })
            let base = ["_bucket", "_sum", "_count"].reduce(family) { name, suffix in
                name.hasSuffix(suffix) && typed.contains(String(name.dropLast(suffix.count))) ? String(name.dropLast(suffix.count)) : name
            }
            #expect(typed.contains(base), "no # TYPE for \(family)")
            out[key] = value
        }
        return out
    }

    static func metrics(port: UInt16) throws -> [String: Double] {
        let r = try get(port: port, "/metrics")
        #expect(r.status == 200)
        return try samples(r.body)
    }
}

extension DaemonSuite {
    @Suite("metrics and readiness (probe port)")
    struct MetricsTests {
        @Test("/metrics over a socket after one clip: clips 1, frames 4, steps, sessions, a rejection by code")
        func metricsReflectAClip() async throws {
            let d = try TestDaemon { $0.metricsListen = ListenAddress(host: "127.0.0.1", port: 0) }
            defer { d.stop() }
            let port = try #require(d.daemon.metricsPort)
            let before = try ProbePeer.metrics(port: port)
            #expect(before["vidrd_clips_served_total"] == 0 && before["vidrd_frames_served_total"] == 0)
            #expect(before["vidrd_connections"] == 0 && before["vidrd_draining"] == 0)

            let client = try await d.client()
            let session = try await client.openSession(Fixture.request(seed: 5), maxClips: 1)
            var frames = 0
            for try await clip in session.clips() { frames += clip.frames.count }
            #expect(frames == 4)
            var bad = Fixture.request()
            bad.width = 7  // not a multiple of 8: INVALID_ARGUMENT
            do {
                let s = try await client.openSession(bad, maxClips: 1)
                for try await _ in s.clips() {}
                Issue.record("a width of 7 should be rejected")
            } catch let e as VidrdError {
                #expect(e.code == .invalidArgument)
            }
            #expect(await eventually { try await client.info().activeSessions == 0 })

            let m = try ProbePeer.metrics(port: port)
            #expect(m["vidrd_clips_served_total"] == 1)
            #expect(m["vidrd_frames_served_total"] == 4)
            #expect(m["vidrd_sessions_opened_total"] == 1)
            #expect(m["vidrd_connections_accepted_total"] == 1)
            #expect(m["vidrd_connections"] == 1, "the client is still connected")
            #expect(m["vidrd_sessions"] == 0)
            #expect(m["vidrd_steps_pending"] == 0)
            #expect(m["vidrd_rejections_total{code=\"INVALID_ARGUMENT\",stage=\"session\"}"] == 1)
            #expect(m["vidrd_clip_seconds_count"] == 1)
            #expect((m["vidrd_clip_seconds_sum"] ?? 0) > 0)
            // Every U-Net step the executor ran, one decode, one encode per frame.
            let stats = d.daemon.stepStatistics
            #expect(stats.unetSteps >= 2)
            #expect(m["vidrd_step_seconds_count{kind=\"unet\"}"] == Double(stats.unetSteps))
            #expect(m["vidrd_step_seconds_count{kind=\"decode\"}"] == 1)
            #expect(m["vidrd_step_seconds_count{kind=\"encode\"}"] == 4)
            #expect(Double(stats.soloSteps) == 1 + 4)
            let busy = try #require(m["vidrd_worker_busy_seconds_total"])
            let clipSeconds = try #require(m["vidrd_clip_seconds_sum"])
            #expect(busy > 0 && busy <= clipSeconds + 0.001, "busy \(busy) s within the clip's \(clipSeconds) s")
            #expect(m["vidrd_queued_bytes"] == 0)
            await client.close()
        }

        @Test("probe HTTP: content type, HEAD, 404, 405, 400, 431, and a silent peer gets 408")
        func probeHTTP() throws {
            let d = try TestDaemon {
                $0.metricsListen = ListenAddress(host: "127.0.0.1", port: 0)
                $0.metricsTimeoutMs = 300
            }
            defer { d.stop() }
            let port = try #require(d.daemon.metricsPort)
            let metrics = try ProbePeer.get(port: port, "/metrics")
            #expect(metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
            #expect(metrics.headers["content-length"] == String(metrics.body.utf8.count))
            #expect(metrics.body.contains("# TYPE vidrd_clips_served_total counter"))
            let head = try ProbePeer.get(port: port, "/metrics", method: "HEAD")
            #expect(head.status == 200 && head.body.isEmpty && Int(head.headers["content-length"] ?? "") ?? 0 > 0)
            #expect(try ProbePeer.get(port: port, "/live").status == 200)
            #expect(try ProbePeer.get(port: port, "/ready").body == "ready\n")
            #expect(try ProbePeer.get(port: port, "/nope").status == 404)
            let post = try ProbePeer.get(port: port, "/metrics", method: "POST")
            #expect(post.status == 405 && post.headers["allow"] == "GET, HEAD")
            #expect(try ProbePeer.parse(ProbePeer.exchange(port: port, "hello there\r\n\r\n")).status == 400)
            let huge = "GET /metrics HTTP/1.1\r\nX-Pad: " + String(repeating: "a", count: 5000) + "\r\n\r\n"
            #expect(try ProbePeer.parse(ProbePeer.exchange(port: port, huge)).status == 431)
            // Connected, sends nothing: answered 408 after metrics_timeout_ms, then closed.
            let started = Date()
            let silent = try ProbePeer.parse(ProbePeer.exchange(port: port, ""))
            #expect(silent.status == 408)
            #expect(Date().timeIntervalSince(started) >= 0.25)
            // The port still serves afterwards.
            #expect(try ProbePeer.get(port: port, "/live").status == 200)
        }

        @Test("readiness: /ready 200 and agent `ready up N%` while serving; 503 and `drain` while draining; closed after stop")
        func readinessFlipsOnDrain() async throws {
            let d = try TestDaemon {
                $0.metricsListen = ListenAddress(host: "127.0.0.1", port: 0)
                $0.limits.maxSteps = 1000
                $0.limits.maxSessions = 4
                $0.limits.maxSessionsPerConnection = 4
                $0.drainGraceMs = 60_000
            }
            let port = try #require(d.daemon.metricsPort)
            #expect(try ProbePeer.get(port: port, "/ready").status == 200)
            #expect(try ProbePeer.agent(port: port) == "ready up 100%\n")

            // A long clip keeps the draining daemon alive (its clip must finish or be cancelled).
            let client = try await d.client()
            let long = try await client.openSession(Fixture.request("a long clip", seed: 8, steps: 1000), maxClips: 1)
            var events = long.makeAsyncIterator()
            while let e = try await events.next() {
                if case .progress = e { break }
            }
            #expect(try ProbePeer.agent(port: port) == "ready up 75%\n", "one of four sessions in use")
            #expect(try ProbePeer.metrics(port: port)["vidrd_sessions"] == 1)

            d.daemon.shutdown()
            #expect(await eventually(within: 5) { try ProbePeer.get(port: port, "/ready").status == 503 })
            let ready = try ProbePeer.get(port: port, "/ready")
            #expect(ready.status == 503 && ready.body == "draining\n")
            #expect(try ProbePeer.agent(port: port) == "drain\n")
            #expect(try ProbePeer.get(port: port, "/live").status == 200, "alive while draining")
            #expect(try ProbePeer.metrics(port: port)["vidrd_draining"] == 1)
            // A new protocol connection is refused while draining (the listener is closed).
            #expect(throws: VidrdError.self) { _ = try Socket.connect(host: "127.0.0.1", port: d.port, timeout: 2) }

            long.cancel()
            d.daemon.wait()
            #expect(throws: VidrdError.self, "the probe port closes with the daemon") {
                _ = try Socket.connect(host: "127.0.0.1", port: port, timeout: 2)
            }
        }

        @Test("vidrd-daemon under SIGTERM: /ready 503 and agent `drain` while its clip runs, then exit 0 (systemctl stop)")
        func sigtermDrainsTheExecutable() async throws {
            let node = try await DaemonProcess(config: "max_steps = 1000\ndrain_grace_ms = 60000\nlinger_ms = 200\n")
            let (main, probe, p) = (node.port, node.probePort, node.process)
            #expect(try ProbePeer.get(port: probe, "/ready").status == 200)

            let client = try await VidrdClient.connect(host: "127.0.0.1", port: main)
            let long = try await client.openSession(Fixture.request("a long clip", seed: 8, steps: 1000), maxClips: 1)
            var events = long.makeAsyncIterator()
            while let e = try await events.next() {
                if case .progress = e { break }
            }
            // Started from a test thread, the daemon inherits a mask that blocks SIGTERM: it must
            // unblock it itself (LibuvTransport.run), or this signal would stay pending.
            kill(p.processIdentifier, SIGTERM)
            #expect(await eventually(within: 5) { try ProbePeer.get(port: probe, "/ready").status == 503 })
            #expect(try ProbePeer.agent(port: probe) == "drain\n")
            #expect(p.isRunning, "a clip in progress holds the drain")
            long.cancel()
            let deadline = Date().addingTimeInterval(20)
            while p.isRunning, Date() < deadline { try await Task.sleep(nanoseconds: 50_000_000) }
            #expect(!p.isRunning && p.terminationStatus == 0, "a clean drain exits 0")
        }

        @Test("handshake refusals are counted by code at stage connection; every config key is in DAEMON.md")
        func handshakeRejectionsAndDocumentedKeys() throws {
            let d = try TestDaemon {
                $0.metricsListen = ListenAddress(host: "127.0.0.1", port: 0)
                $0.token = Array("s3cret".utf8)
            }
            defer { d.stop() }
            let port = try #require(d.daemon.metricsPort)
            for _ in 0..<2 {
                let peer = try RawPeer(port: d.port)
                try peer.send(ConnectionPreface.bytes)
                try peer.send(.hello(Hello(token: Array("guess".utf8), clientName: "wrong")))
                #expect(try peer.readFatalError()?.code == .unauthenticated)
            }
            let m = try ProbePeer.metrics(port: port)
            #expect(m["vidrd_rejections_total{code=\"UNAUTHENTICATED\",stage=\"connection\"}"] == 2)
            #expect(m["vidrd_connections_accepted_total"] == 2)
            #expect(m["vidrd_sessions_opened_total"] == 0)

            let doc = try Repository.file("docs/DAEMON.md")
            for key in DaemonConfiguration.keys.map(\.key) {
                #expect(doc.contains("`\(key)`"), "docs/DAEMON.md documents `\(key)`")
            }
        }

        @Test("Probe: request parsing and the agent's weight")
        func probeParsing() {
            #expect(Probe.parse(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n".utf8)) == .incomplete)
            #expect(Probe.parse(Array("GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n".utf8)) == .request(.http(method: "GET", path: "/metrics")))
            #expect(Probe.parse(Array("GET /ready HTTP/1.0\n\n".utf8)) == .request(.http(method: "GET", path: "/ready")))
            #expect(Probe.parse(Array("agent\n".utf8)) == .request(.agent))
            #expect(Probe.parse(Array("agent\r\n".utf8)) == .request(.agent))
            #expect(Probe.parse(Array("GET metrics HTTP/1.1\r\n\r\n".utf8)) == .bad(status: 400, reason: "not an HTTP/1.x request line"))
            if case .bad(431, _) = Probe.parse([UInt8](repeating: 65, count: Probe.maxRequestBytes + 1)) {} else {
                Issue.record("an endless first line must be refused")
            }
            #expect(Probe.agentLine(ProbeStatus(draining: false, sessions: 0, maxSessions: 16)) == "ready up 100%\n")
            #expect(Probe.agentLine(ProbeStatus(draining: false, sessions: 4, maxSessions: 16)) == "ready up 75%\n")
            #expect(Probe.agentLine(ProbeStatus(draining: false, sessions: 16, maxSessions: 16)) == "ready up 1%\n", "full: up, least weight")
            #expect(Probe.agentLine(ProbeStatus(draining: true, sessions: 0, maxSessions: 16)) == "drain\n")
        }

        @Test("metrics_listen and --metrics-listen: bad addresses are named (config 78, command line 64)")
        func badMetricsListen() throws {
            var c = DaemonConfiguration()
            for bad in ["nowhere:7879", "127.0.0.1:99999", "example.com:80", ""] {
                #expect(throws: ConfigurationError.self, "\(bad)") { try c.set("metrics_listen", bad) }
            }
            try c.set("metrics_listen", "7879")
            #expect(c.metricsListen == ListenAddress(host: "127.0.0.1", port: 7879), "a bare port is on loopback")
            try c.set("metrics_listen", "[::1]:0")
            #expect(c.metricsListen == ListenAddress(host: "::1", port: 0))
            try c.set("metrics_listen", "off")
            #expect(c.metricsListen == nil)
            #expect(DaemonConfiguration().metricsListen == nil, "off by default")

            let daemon = try #require(ClientBinary.locate("vidrd-daemon"), "vidrd-daemon is not built next to the tests")
            let (status, _, stderr) = try ClientBinary.run(["--metrics-listen", "nowhere:99"], executable: daemon, timeout: 30)
            #expect(status == 64, "\(stderr)")
            #expect(stderr.contains("--metrics-listen") && stderr.contains("nowhere:99"), "\(stderr)")
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-metrics-\(UUID().uuidString).conf")
            defer { try? FileManager.default.removeItem(at: file) }
            try "workers = 1\nmetrics_listen = 1.2.3:80\n".write(to: file, atomically: true, encoding: .utf8)
            let (status2, _, stderr2) = try ClientBinary.run(["--config", file.path], executable: daemon, timeout: 30)
            #expect(status2 == 78, "\(stderr2)")
            #expect(stderr2.contains("\(file.path):2:") && stderr2.contains("metrics_listen"), "\(stderr2)")
        }
    }
}

/// The built `vidrd-daemon` executable with the fixture model, on ephemeral ports (read back
/// from --port-file and --metrics-port-file), in a folder of its own (no ./plugins.conf there:
/// the built-in strategies, as the in-process test daemons have). Killed when released.
final class DaemonProcess: @unchecked Sendable {
    let process = Process()
    let directory: URL
    let port: UInt16
    let probePort: UInt16

    init(config: String) async throws {
        let binary = try #require(ClientBinary.locate("vidrd-daemon"), "vidrd-daemon is not built next to the tests")
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-process-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let conf = directory.appendingPathComponent("vidrd.conf")
        try config.write(to: conf, atomically: true, encoding: .utf8)
        let portFile = directory.appendingPathComponent("port"), probeFile = directory.appendingPathComponent("probe")
        process.executableURL = URL(fileURLWithPath: binary)
        process.currentDirectoryURL = directory
        process.arguments = [
            "--config", conf.path, "--model", Fixture.modelDirectory.path, "--listen", "127.0.0.1:0", "--port-file", portFile.path,
            "--metrics-listen", "127.0.0.1:0", "--metrics-port-file", probeFile.path, "--log-level", "warning",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        func read(_ file: URL) -> UInt16? {
            (try? String(contentsOf: file, encoding: .utf8)).flatMap { UInt16($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        let deadline = Date().addingTimeInterval(30)
        while read(portFile) == nil || read(probeFile) == nil, process.isRunning, Date() < deadline {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        guard let port = read(portFile), let probePort = read(probeFile) else {
            kill(process.processIdentifier, SIGKILL)
            throw VidrdError(.connectionFailed, .unavailable, "vidrd-daemon did not start listening within 30 s")
        }
        self.port = port
        self.probePort = probePort
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGCONT)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }
}
