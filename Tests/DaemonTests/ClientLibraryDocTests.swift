import Foundation
import Testing
import VidrdDaemon
import VidrdMedia
import VidrdPlugins
import VidrdProtocol

/// The repository root, found from this file.
enum Repository {
    static func file(_ relative: String) throws -> String {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        for _ in 0..<4 {
            dir = dir.deletingLastPathComponent()
            let candidate = dir.appendingPathComponent(relative)
            if FileManager.default.fileExists(atPath: candidate.path) { return try String(contentsOf: candidate, encoding: .utf8) }
        }
        throw CocoaError(.fileNoSuchFile)
    }
}

extension DaemonSuite {
    /// docs/DAEMON.md's client library section is a program that runs, and the command line's
    /// chain syntax and strategy listings are what the docs say.
    @Suite("Client library docs and chain syntax")
    struct ClientLibraryDocTests {
        @Test("DAEMON.md's example is Examples/ClientExample/main.swift, and it runs against a daemon")
        func exampleRuns() async throws {
            let doc = try Repository.file("docs/DAEMON.md")
            let marker = try #require(doc.range(of: "<!-- example:client -->\n```swift\n"))
            let end = try #require(doc.range(of: "```\n", range: marker.upperBound..<doc.endIndex))
            let source = try Repository.file("Examples/ClientExample/main.swift")
            #expect(String(doc[marker.upperBound..<end.lowerBound]) == source, "the copy in docs/DAEMON.md differs from the file")

            let example = try #require(ClientBinary.locate("vidrd-client-example"), "vidrd-client-example is not built")
            let d = try TestDaemon()
            defer { d.stop() }
            let (status, stdout, stderr) = try ClientBinary.run([String(d.port)], executable: example, timeout: 60)
            let out = String(decoding: stdout, as: UTF8.self)
            #expect(status == 0, "\(stderr)")
            #expect(out.contains("chain fnr,pns:alpha=2.0"), "the parsed chain reached the server: \(out)")
            #expect(out.contains("clip 2: 4 frames"), "\(out)")
            #expect(out.contains("blocking client: 4 frames"), "\(out)")
        }

        @Test("a comma between parameters is a usage error (64) naming the token; int ranges print as ints")
        func chainUsageErrorAndIntRanges() async throws {
            let registry = try StrategyRegistry.load(conf: try Self.pluginConf())
            let engine = try GenerationEngine(modelDirectory: Fixture.modelDirectory, registry: registry)
            let d = try TestDaemon(engine: engine)
            defer { d.stop() }
            let server = "127.0.0.1:\(d.port)"
            var (status, _, stderr) = try ClientBinary.run(
                ["stream", "--server", server, "--prompt", "x", "--clips", "1", "--strategy", "example_shift:shift=1,period=8"])
            #expect(status == 64, "usage error, not a protocol violation: \(stderr)")
            #expect(stderr.contains("`period=8`") && stderr.contains("separated by `:`"), "\(stderr)")

            var stdout: Data
            (status, stdout, _) = try ClientBinary.run(["strategies", "--server", server])
            let listed = String(decoding: stdout, as: UTF8.self)
            #expect(status == 0 && listed.contains("shift: int = 1 [0...]"), "\(listed)")
            #expect(listed.contains("beta: double = 0.4 [0.0...1.0]"), "doubles keep their decimals: \(listed)")

            let vidrd = try #require(ClientBinary.locate("vidrd"))
            (status, stdout, _) = try ClientBinary.run(["strategies", "--plugins-conf", try Self.pluginConf()], executable: vidrd)
            let local = String(decoding: stdout, as: UTF8.self)
            #expect(status == 0 && local.contains("shift: int = 1 in [0, ∞]"), "\(local)")

            // The registry's messages use the right article.
            let info = ParameterInfo.int("n", 1, "", min: 1, max: 256)
            guard case .failure(let e) = info.validate(.bool(true)) else {
                Issue.record("a bool for an int must fail")
                return
            }
            #expect(e.description == "expects an int, got a bool (true)", "\(e)")
            guard case .failure(let r) = info.validate(.int(300)) else {
                Issue.record("300 is out of range")
                return
            }
            #expect(r.description == "must be ≤ 256, got 300", "\(r)")
        }

        @Test("vidrd clip, vidrd generate and vidrd-client --out name frames the same way")
        func oneFrameFileScheme() throws {
            #expect(FrameFiles.name(0) == "frame_000000.webp" && FrameFiles.name(1_234_567) == "frame_1234567.webp")
            let vidrd = try #require(ClientBinary.locate("vidrd"))
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-names-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: root) }
            let small = ["--model", Fixture.modelDirectory.path, "--prompt", "x", "--steps", "1", "--frames", "2", "--height", "8", "--width", "8"]
            for (command, extra) in [("clip", [String]()), ("generate", ["--clips", "2", "--prompt-frames", "1", "--emit", "all", "--plugins-conf", GenerationDefaultsPolicyTests.emptyConf()])] {
                let out = root.appendingPathComponent(command)
                let (status, _, stderr) = try ClientBinary.run([command] + small + extra + ["--out", out.path], executable: vidrd, timeout: 120)
                #expect(status == 0, "\(command): \(stderr)")
                let names = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasPrefix("frame") }.sorted()
                let count = command == "clip" ? 2 : 4
                #expect(names == (0..<count).map { FrameFiles.name(Int64($0)) }, "\(command): \(names)")
            }
        }

        /// A plugins.conf that loads the example C plugin (an int parameter with a minimum).
        static func pluginConf() throws -> String {
            let plugin = try PluginSessionTests().examplePlugin()
            let p = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-plugins-\(UUID().uuidString).conf").path
            try "library \(plugin)\nchain fnr pns dsg\n".write(toFile: p, atomically: true, encoding: .utf8)
            return p
        }
    }
}
