import Foundation
import Testing
import VidrdDaemon
import VidrdPlugins
import VidrdProtocol
import VidrdRuntime

extension DaemonSuite {
    /// One generation-default policy (GenerationDefaults): the daemon, `vidrd generate`, `vidrd clip`,
    /// StreamConfiguration and the pipeline's Configuration give a request that names nothing the
    /// same steps, guidance and frames.
    @Suite("Generation defaults policy")
    struct GenerationDefaultsPolicyTests {
        @Test("every configuration type starts from GenerationDefaults")
        func oneSource() {
            let daemon = DaemonConfiguration.SessionDefaults()
            let stream = StreamConfiguration(prompt: "x")
            let clip = TextToVideoPipeline.Configuration(prompt: "x")
            #expect(Int(daemon.steps) == GenerationDefaults.standardSteps && stream.steps == GenerationDefaults.standardSteps)
            #expect(clip.steps == GenerationDefaults.standardSteps)
            #expect(Int(daemon.framesPerClip) == GenerationDefaults.standardFrames && stream.frames == GenerationDefaults.standardFrames)
            #expect(clip.frames == GenerationDefaults.standardFrames)
            #expect(daemon.guidance == nil, "nil: the model's recommendation, else the standard")
            #expect(stream.guidanceScale == GenerationDefaults.standardGuidanceScale && clip.guidanceScale == stream.guidanceScale)
        }

        @Test("a model without generation_config.json: the daemon and `vidrd generate` resolve the same steps and guidance")
        func daemonAndGenerateAgree() async throws {
            // The daemon, with nothing configured: what SESSION_OPENED reports.
            var c = DaemonConfiguration()
            c.listen = ListenAddress(host: "127.0.0.1", port: 0)
            let d = try TestDaemon { $0.sessionDefaults = c.sessionDefaults }
            defer { d.stop() }
            let client = try await d.client()
            let s = try await client.openSession(
                OpenSession(prompt: "x", framesPerClip: 2, width: 8, height: 8, promptFrames: 1), prefetch: 0)
            #expect(s.parameters.steps == UInt32(GenerationDefaults.standardSteps))
            #expect(s.parameters.guidance == Double(GenerationDefaults.standardGuidanceScale))
            s.cancel()
            await client.close()

            let vidrd = try #require(ClientBinary.locate("vidrd"), "vidrd is not built next to the tests")
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-gen-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: out) }
            let (status, _, stderr) = try ClientBinary.run(
                ["generate", "--model", Fixture.modelDirectory.path, "--prompt", "x", "--clips", "1", "--frames", "2",
                 "--height", "8", "--width", "8", "--prompt-frames", "1", "--out", out.path, "--plugins-conf", Self.emptyConf()],
                executable: vidrd, timeout: 120)
            #expect(status == 0, "\(stderr)")
            #expect(stderr.contains("steps \(GenerationDefaults.standardSteps), guidance \(GenerationDefaults.standardGuidanceScale)"), "\(stderr)")
        }

        /// A plugins.conf with the built-in strategies only (no C libraries to load).
        static func emptyConf() -> String {
            let p = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-plugins-\(UUID().uuidString).conf").path
            _ = FileManager.default.createFile(atPath: p, contents: Data("# built-ins only\n".utf8))
            return p
        }
    }
}
