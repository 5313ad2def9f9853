import Foundation
import Testing
import VidrdDaemon
import VidrdMedia
import VidrdPlugins
import VidrdProtocol

@testable import VidrdClient

/// The C example plugin, listed in a plugins.conf, is loaded by the daemon's registry, listed to
/// clients, and drives a real session's noise.
@Suite struct PluginSessionTests {
    /// `libVidrdExamplePlugin.so`, which `swift build` puts beside the test bundle.
    func examplePlugin() throws -> String {
        var dirs: [URL] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dirs.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        dirs.append(Bundle.main.bundleURL.deletingLastPathComponent())
        for d in dirs where FileManager.default.fileExists(atPath: d.appendingPathComponent("libVidrdExamplePlugin.so").path) {
            return d.appendingPathComponent("libVidrdExamplePlugin.so").path
        }
        Issue.record("libVidrdExamplePlugin.so not found beside the test bundle (run `swift build` first)")
        throw CancellationError()
    }

    @Test func aSessionUsesTheCPluginFromPluginsConf() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-plugin-session-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let conf = dir.appendingPathComponent("plugins.conf").path
        try "library \(try examplePlugin())\nchain fnr pns dsg\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let registry = try StrategyRegistry.load(conf: conf)
        let engine = try GenerationEngine(modelDirectory: Fixture.modelDirectory, registry: registry)
        let d = try TestDaemon(engine: engine)
        defer { d.stop() }
        let client = try await d.client()

        let listed = try await client.listStrategies()
        #expect(listed.strategies.contains { $0.name == "example_shift" })

        var request = Fixture.request("a red ball", seed: 3)
        request.strategies = [StrategySpec(name: "example_shift", params: [StrategyParam("shift", .int(1))]), StrategySpec(name: "pns")]
        let session = try await client.openSession(request, maxClips: 2)
        #expect(session.parameters.strategies.map(\.name) == ["example_shift", "pns"])
        var clips: [VidrdClip] = []
        for try await clip in session.clips() { clips.append(clip) }
        #expect(clips.count == 2)
        for clip in clips { try expectDecodable(clip, width: 8, height: 8) }

        // The same request through the built-in chain yields a different second clip: the
        // plugin's noise really reached the sampler.
        var builtIn = Fixture.request("a red ball", seed: 3)
        builtIn.strategies = [StrategySpec(name: "fnr"), StrategySpec(name: "pns")]
        let other = try await client.openSession(builtIn, maxClips: 2)
        var otherClips: [VidrdClip] = []
        for try await clip in other.clips() { otherClips.append(clip) }
        #expect(otherClips.count == 2)
        #expect(otherClips[0].frames.map(\.webp) == clips[0].frames.map(\.webp))
        #expect(otherClips[1].frames.map(\.webp) != clips[1].frames.map(\.webp))
        await client.close()
    }
}
