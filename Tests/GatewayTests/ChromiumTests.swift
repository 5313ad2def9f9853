import Foundation
import HummingbirdWSClient
import Logging
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Debian's `chromium` (installed by .ci/run). Without it the browser test is skipped and says so.
enum Chromium {
    static let path: String? = {
        let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }
        if found == nil { print("web viewer browser test skipped: chromium is not installed (apt-get install chromium)") }
        return found
    }()

    /// Headless Chromium on `url` with the DevTools protocol on an ephemeral port; returns the
    /// browser's DevTools WebSocket URL, which Chromium writes into DevToolsActivePort in its
    /// profile folder (port, then path).
    static func launch(_ url: String, profile: URL) throws -> (Process, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(path))
        p.arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--mute-audio",
            "--remote-debugging-port=0", "--remote-allow-origins=*", "--user-data-dir=\(profile.path)", url,
        ]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let portFile = profile.appendingPathComponent("DevToolsActivePort")
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let text = try? String(contentsOf: portFile, encoding: .utf8) {
                let lines = text.split(separator: "\n")
                if lines.count >= 2, let port = Int(lines[0]), lines[1].hasPrefix("/devtools/browser/") {
                    return (p, "ws://127.0.0.1:\(port)\(lines[1])")
                }
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        p.terminate()
        throw GatewayTestError("chromium wrote no DevToolsActivePort within 30 s")
    }
}

/// A DevTools protocol conversation over one WebSocket: commands by id, events skipped.
struct DevTools {
    var messages: WebSocketInboundMessageStream.AsyncIterator
    let outbound: WebSocketOutboundWriter
    var id = 0

    mutating func call(_ method: String, _ params: [String: Any] = [:], session: String? = nil) async throws -> [String: Any] {
        id += 1
        var request: [String: Any] = ["id": id, "method": method, "params": params]
        if let session { request["sessionId"] = session }
        try await outbound.write(.text(String(decoding: try JSONSerialization.data(withJSONObject: request), as: UTF8.self)))
        while let m = try await messages.next() {
            guard case .text(let text) = m, let reply = jsonObject(text), reply["id"] as? Int == id else { continue }
            if let error = reply["error"] { throw GatewayTestError("\(method): \(error)") }
            return reply["result"] as? [String: Any] ?? [:]
        }
        throw GatewayTestError("DevTools closed during \(method)")
    }

    /// Runtime.evaluate of an expression whose value is a JSON string → that JSON object.
    mutating func evaluate(_ expression: String, session: String) async throws -> [String: Any]? {
        let r = try await call("Runtime.evaluate", ["expression": expression, "returnByValue": true], session: session)
        return ((r["result"] as? [String: Any])?["value"] as? String).flatMap(jsonObject)
    }
}

@Suite("web viewer in headless Chromium", .serialized, .enabled(if: Chromium.path != nil, "chromium is not installed"))
struct ChromiumTests {
    @Test("the page plays: the canvas shows different decoded frames over time, then Stop ends the session")
    func pagePlays() async throws {
        let d = try TestDaemon()
        defer { d.stop() }
        let g = try await TestGateway.start(daemon: d)
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-chromium-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: profile) }
        let page = g.base + "/?autostart=1&prompt=a%20red%20ball&seed=5&width=8&height=8&steps=2&frames=4&fps=8"
        let (browser, devtools) = try Chromium.launch(page, profile: profile)
        defer { stop(browser) }

        let samples = Box<[[String: Any]]>([])
        let afterStop = Box<[String: Any]?>(nil)
        let sessionsWhilePlaying = Box<UInt32?>(nil)
        let pageErrors = Box<[String]>([])
        try await withDeadline(120) {
            _ = try await WebSocketClient.connect(url: devtools, logger: Logger(label: "devtools")) { inbound, outbound, _ in
                var dt = DevTools(messages: inbound.messages(maxSize: 1 << 20).makeAsyncIterator(), outbound: outbound)
                // The page's target, then a flat session on it for Runtime.evaluate.
                var target: String?
                let found = Date().addingTimeInterval(20)
                while target == nil, Date() < found {
                    let infos = try await dt.call("Target.getTargets")["targetInfos"] as? [[String: Any]] ?? []
                    target = infos.first { $0["type"] as? String == "page" && ($0["url"] as? String)?.hasPrefix(g.base) == true }?["targetId"] as? String
                    if target == nil { try await Task.sleep(nanoseconds: 100_000_000) }
                }
                let targetId = try #require(target, "no page target for \(g.base)")
                let session = try #require(
                    try await dt.call("Target.attachToTarget", ["targetId": targetId, "flatten": true])["sessionId"] as? String)
                func evaluate(_ expression: String) async throws -> [String: Any]? { try await dt.evaluate(expression, session: session) }
                let stats = "JSON.stringify(window.vidrdStats || {})"
                // Sample until the canvas has shown several frames with different pixels.
                let deadline = Date().addingTimeInterval(60)
                while Date() < deadline {
                    if let s = try await evaluate(stats) {
                        samples.with { $0.append(s) }
                        if (s["framesDrawn"] as? Int ?? 0) >= 6, (s["distinctHashes"] as? Int ?? 0) >= 2 { break }
                        if s["state"] as? String == "error" { break }
                    }
                    try await Task.sleep(nanoseconds: 200_000_000)
                }
                let playing = try? await d.activeSessions()
                sessionsWhilePlaying.with { $0 = playing }
                _ = try await evaluate("vidrdStop(), JSON.stringify({})")
                let stopDeadline = Date().addingTimeInterval(20)
                while Date() < stopDeadline {
                    if let s = try await evaluate(stats), s["state"] as? String == "stopped" {
                        afterStop.with { $0 = s }
                        break
                    }
                    try await Task.sleep(nanoseconds: 100_000_000)
                }
                // A bad chain typed into the page: the gateway's 400 (a syntax error) and the
                // daemon's rejection (an unknown strategy) both end up in the page's error line.
                for chain in ["fnr:", "nosuchthing"] {
                    _ = try await evaluate("document.getElementById('chain').value = '\(chain)', vidrdStart(), JSON.stringify({})")
                    let errorDeadline = Date().addingTimeInterval(20)
                    while Date() < errorDeadline {
                        if let s = try await evaluate(stats), let e = s["error"] as? String, !e.isEmpty {
                            pageErrors.with { $0.append(e) }
                            break
                        }
                        try await Task.sleep(nanoseconds: 100_000_000)
                    }
                }
            }
        }
        let all = samples.with { $0 }
        let last = try #require(all.last, "no vidrdStats from the page")
        #expect(last["error"] as? String == "", "\(last)")
        #expect((last["framesDrawn"] as? Int ?? 0) >= 6, "\(last)")
        #expect((last["distinctHashes"] as? Int ?? 0) >= 2, "the canvas showed different frames: \(last)")
        // Two samples taken at different times saw different canvas contents.
        let hashes = Set(all.compactMap { $0["hash"] as? Int }.filter { $0 != 0 })
        #expect(hashes.count >= 2, "\(all)")
        #expect(last["width"] as? Int == 8 && last["fps"] as? Int == 8, "\(last)")
        #expect(sessionsWhilePlaying.with { $0 } == 1)
        let stopped = try #require(afterStop.with { $0 }, "the page never reported stopped")
        #expect(stopped["state"] as? String == "stopped")
        #expect(await eventually { try await d.activeSessions() == 0 }, "Stop cancelled the daemon session")
        let errors = pageErrors.with { $0 }
        #expect(errors.count == 2, "\(errors)")
        #expect(errors.first?.contains("chain \"fnr:\"") == true, "\(errors)")
        #expect(errors.last?.contains("nosuchthing") == true, "\(errors)")
        await g.stop()
    }
}

/// SIGTERM, then SIGKILL after 5 s.
func stop(_ p: Process) {
    guard p.isRunning else { return }
    p.terminate()
    let deadline = Date().addingTimeInterval(5)
    while p.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    if p.isRunning { kill(p.processIdentifier, SIGKILL) }
}
