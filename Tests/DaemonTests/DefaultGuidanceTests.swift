import Foundation
import Testing
import VidrdDaemon
import VidrdProtocol
import VidrdRuntime

@testable import VidrdClient

extension DaemonSuite {
    /// Which guidance a session gets when its OPEN_SESSION names none: the daemon's configured
    /// `default_guidance`, else the model folder's generation_config.json, else 7.5 — read back
    /// from SESSION_OPENED over a real socket.
    @Suite("Default guidance")
    struct DefaultGuidanceTests {
        static func engine(recommending guidance: Double?) throws -> (GenerationEngine, URL) {
            let copy = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-guidance-\(UUID().uuidString)")
            try FileManager.default.copyItem(at: Fixture.modelDirectory, to: copy)
            if let guidance {
                try Data("{\"guidance_scale\": \(guidance)}".utf8).write(to: copy.appendingPathComponent(GenerationDefaults.fileName))
            }
            return (try GenerationEngine(modelDirectory: copy, registry: .builtIn()), copy)
        }

        static func openedGuidance(recommending model: Double?, configured: Double?, requested: Double?) async throws -> Double {
            let (engine, folder) = try engine(recommending: model)
            defer { try? FileManager.default.removeItem(at: folder) }
            let d = try TestDaemon(engine: engine) { $0.sessionDefaults.guidance = configured }
            defer { d.stop() }
            let client = try await d.client()
            var request = Fixture.request()
            request.guidance = requested
            let session = try await client.openSession(request, maxClips: 1)
            let guidance = session.parameters.guidance
            session.cancel()
            await client.close()
            return guidance
        }

        @Test("the model's generation_config.json when neither the request nor the daemon names one")
        func modelRecommendation() async throws {
            #expect(try await Self.openedGuidance(recommending: 2.5, configured: nil, requested: nil) == 2.5)
            #expect(try await Self.openedGuidance(recommending: nil, configured: nil, requested: nil) == 7.5)
        }

        @Test("the daemon's default_guidance wins over the model's; the request wins over both")
        func precedence() async throws {
            #expect(try await Self.openedGuidance(recommending: 2.5, configured: 4, requested: nil) == 4)
            #expect(try await Self.openedGuidance(recommending: 2.5, configured: 4, requested: 1) == 1)
        }
    }
}
