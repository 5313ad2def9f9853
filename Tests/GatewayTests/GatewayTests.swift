import Foundation
import Testing
import VidrdMedia

/// The web viewer's gateway against a real daemon on loopback: real HTTP, real WebSockets.
@Suite("web viewer gateway", .serialized)
struct GatewayTests {
    static let start = #"{"type":"start","prompt":"a red ball bouncing","seed":3,"width":8,"height":8,"steps":2,"frames":4,"fps":16}"#

    @Test("the page, the strategies JSON, and 400s naming the bad field")
    func pageAndAPI() async throws {
        let d = try TestDaemon()
        defer { d.stop() }
        let g = try await TestGateway.start(daemon: d)
        let (status, page) = try await http("GET", g.base + "/")
        #expect(status == 200)
        #expect(page.contains("<canvas id=\"video\"") && page.contains("new WebSocket"))
        // Everything is served here: no script, style or image from another origin.
        #expect(!page.contains("src=\"http") && !page.contains("href=\"http") && !page.contains("@import"))

        let (sStatus, strategies) = try await http("GET", g.base + "/api/strategies")
        #expect(sStatus == 200)
        let s = try #require(jsonObject(strategies))
        let names = (s["strategies"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(names.contains("fnr") && names.contains("pns"), "\(names)")
        #expect((s["defaultChain"] as? String)?.hasPrefix("fnr") == true, "\(strategies)")
        #expect(s["model"] as? String == "tiny-lpb2")

        for (body, word) in [
            (#"{"prompt":"x","chain":"fnr:"}"#, "chain"),
            (#"{"prompt":"x","width":12}"#, "width"),
            (#"{"prompt":"x","steps":0}"#, "steps"),
            (#"{"chain":"fnr"}"#, "prompt"),
            (#"{"prompt":"  "}"#, "prompt"),
            (#"{"prompt":"x","seed":"seven"}"#, "seed"),
            ("not json", "JSON"),
        ] {
            let (code, text) = try await http("POST", g.base + "/api/validate", body: body)
            #expect(code == 400, "\(body) → \(code) \(text)")
            #expect(text.contains(word), "\(body) → \(text)")
        }
        let (okStatus, ok) = try await http("POST", g.base + "/api/validate", body: #"{"prompt":"a ball","chain":"fnr,pns:alpha=2","width":16}"#)
        #expect(okStatus == 200 && (jsonObject(ok)?["chain"] as? String)?.hasPrefix("fnr,pns:alpha=2") == true, "\(ok)")
        let (defaultStatus, defaultChain) = try await http("POST", g.base + "/api/validate", body: #"{"prompt":"a ball"}"#)
        #expect(defaultStatus == 200 && jsonObject(defaultChain)?["chain"] is NSNull, "no chain: the daemon's default: \(defaultChain)")
        let (bigStatus, _) = try await http("POST", g.base + "/api/validate", body: String(repeating: "x", count: 20_000))
        #expect(bigStatus == 413)
        let (missing, _) = try await http("GET", g.base + "/nothing-here")
        #expect(missing == 404)
        await g.stop()
    }

    @Test("two viewers at once, each its own session; frames decode, are numbered in order and paced; stop ends the session")
    func twoViewers() async throws {
        let d = try TestDaemon()
        defer { d.stop() }
        let g = try await TestGateway.start(daemon: d)
        let sessionsWhilePlaying = Box<[UInt32]>([])
        let probe: @Sendable () async -> Void = {
            if let n = try? await d.activeSessions() { sessionsWhilePlaying.with { $0.append(n) } }
        }
        async let a = watch(port: g.port, send: [Self.start], frames: 8, whilePlaying: probe)
        async let b = watch(port: g.port, send: [Self.start.replacingOccurrences(of: "\"seed\":3", with: "\"seed\":4")], frames: 8, whilePlaying: probe)
        let (la, lb) = try await (a, b)
        for log in [la, lb] {
            #expect(log.events("error").isEmpty, "\(log.events)")
            let opened = try #require(log.events("opened").first, "\(log.events)")
            #expect(opened["width"] as? Int == 8 && opened["height"] as? Int == 8 && opened["fps"] as? Double == 16)
            #expect(log.frames.count >= 8)
            #expect(log.frames.map(\.number) == (0..<UInt64(log.frames.count)).map { $0 }, "frame numbers in order")
            for f in log.frames {
                let image = try WebP.decode(f.webp)
                #expect(image.width == 8 && image.height == 8)
            }
            #expect(log.events("clip").count >= 2 && log.events("clipEnd").count >= 1)
            #expect(!log.events("progress").isEmpty)
            #expect(log.events("stopped").count == 1)
        }
        #expect(la.frames.map(\.webp) != lb.frames.map(\.webp), "different seeds, different videos")
        // Both viewers were watching at the same time: each probe saw both sessions.
        #expect(sessionsWhilePlaying.with { $0 }.contains(2), "\(sessionsWhilePlaying.with { $0 })")
        #expect(await eventually { try await d.activeSessions() == 0 }, "stop cancelled both sessions")
        await g.stop()
    }

    @Test("pacing: frames reach the page no faster than the session's fps")
    func pacing() async throws {
        let d = try TestDaemon()
        defer { d.stop() }
        let g = try await TestGateway.start(daemon: d)
        let started = Date()
        let log = try await watch(port: g.port, send: [Self.start.replacingOccurrences(of: "\"fps\":16", with: "\"fps\":10")], frames: 9)
        // Nine frames at 10 fps span at least 0.8 s, however fast the tiny model is.
        #expect(log.frames.count >= 9)
        #expect(Date().timeIntervalSince(started) >= 0.8)
        await g.stop()
    }

    @Test("a bad request over the socket is reported and the socket still works; restart replaces the session")
    func badThenGood() async throws {
        let d = try TestDaemon()
        defer { d.stop() }
        let g = try await TestGateway.start(daemon: d)
        let log = try await watch(
            port: g.port,
            send: [#"{"type":"start","prompt":"x","chain":"nosuchthing"}"#, #"{"type":"dance"}"#, "][", Self.start, Self.start],
            frames: 4, untilError: false)
        let errors = log.events("error").compactMap { $0["message"] as? String }
        #expect(errors.count == 3, "\(errors)")
        #expect(errors.first?.contains("nosuchthing") == true, "the daemon's INVALID_ARGUMENT names the strategy: \(errors)")
        #expect(errors.contains { $0.contains("dance") })
        #expect(log.frames.count >= 4)
        // The first good start was replaced by the second (restart): two sessions opened, one stopped in between.
        #expect(log.events("opened").count == 2, "\(log.events)")
        #expect(await eventually { try await d.activeSessions() == 0 })
        await g.stop()
    }

    @Test("more viewers than --max-viewers: the extra one is told so, the others keep playing")
    func viewerLimit() async throws {
        let d = try TestDaemon()
        defer { d.stop() }
        let g = try await TestGateway.start(daemon: d, maxViewers: 1)
        let refusedDone = Box(false)
        // The first viewer holds the only place until the second has been refused.
        let first = Task {
            try await watch(port: g.port, send: [Self.start], frames: 4) {
                _ = await eventually(within: 30) { refusedDone.with { $0 } }
            }
        }
        #expect(await eventually { try await d.activeSessions() == 1 }, "the first viewer is playing")
        let refused = try await watch(port: g.port, send: [Self.start], frames: 1)
        refusedDone.with { $0 = true }
        let log = try await first.value
        #expect(log.frames.count >= 4 && log.events("stopped").count == 1)
        #expect(refused.frames.isEmpty)
        #expect(refused.events("error").first?["message"] as? String == "the gateway already has 1 viewers; close one and reload")
        await g.stop()
    }
}
