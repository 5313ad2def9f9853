import Foundation
import Testing
import VidrdRuntime

/// A noise tape's layout is checked when it is opened (docs/PLUGINS.md, "Noise tape").
@Suite struct NoiseTapeTests {
    func path(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-tape-\(name)-\(UUID().uuidString).safetensors").path
    }

    func openError(_ path: String) -> String? {
        do {
            _ = try NoiseTape(path: path)
            return nil
        } catch {
            return "\(error)"
        }
    }

    let draw = Tensor(shape: [1, 2, 3], scalars: [0, 1, 2, 3, 4, 5])

    @Test func aWrittenTapeOpens() throws {
        let p = path("ok")
        defer { try? FileManager.default.removeItem(atPath: p) }
        try NoiseTape.write([draw, draw], to: p)
        let tape = try NoiseTape(path: p)
        #expect(tape.count == 2)
        #expect(try tape.tensor(1).scalars == draw.scalars)
    }

    @Test func aFileWithoutTheFormatIsNamedWithWhatItHolds() throws {
        let p = path("noformat")
        defer { try? FileManager.default.removeItem(atPath: p) }
        try SafeTensorsWriter.write([("latents", draw), ("initial_noise", draw)], to: p)
        let e = try #require(openError(p))
        #expect(e.contains("no \"format\" metadata") && e.contains("vidrd-noise-tape/1"), "\(e)")
        #expect(e.contains("\"initial_noise\"") && e.contains("\"latents\""), "\(e)")
    }

    @Test func anotherFormatIsNamed() throws {
        let p = path("other")
        defer { try? FileManager.default.removeItem(atPath: p) }
        try SafeTensorsWriter.write([("noise.0", draw)], to: p, metadata: ["format": "vidrd-noise-tape/2"])
        let e = try #require(openError(p))
        #expect(e.contains("\"vidrd-noise-tape/2\"") && e.contains("reads \"vidrd-noise-tape/1\""), "\(e)")
    }

    @Test func gapsStraysAndOtherDTypesAreRejected() throws {
        let p = path("gap")
        defer { try? FileManager.default.removeItem(atPath: p) }
        let meta = ["format": NoiseTape.format]
        try SafeTensorsWriter.write([("noise.0", draw), ("noise.2", draw)], to: p, metadata: meta)
        #expect(openError(p)?.contains("\"noise.2\" follows noise.0 … noise.0") == true, "\(openError(p) ?? "")")
        try SafeTensorsWriter.write([("noise.0", draw), ("noise.01", draw)], to: p, metadata: meta)
        #expect(openError(p)?.contains("\"noise.01\"") == true)
        try SafeTensorsWriter.write([("latents", draw)], to: p, metadata: meta)
        #expect(openError(p)?.contains("without \"noise.0\"; it holds tensors \"latents\"") == true, "\(openError(p) ?? "")")
    }
}
