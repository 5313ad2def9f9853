import Foundation
import Testing
import VidrdMedia
import VidrdRuntime

/// Tests/Fixtures/scenes: labelled clips rendered by tools/train/data.py
/// (tools/reference/make_scene_fixture.py).
struct SceneFixture {
    struct Labels: Decodable {
        let shape: String
        let colour: String
        let bg: String
        let texture: String
        let size: String
        let motion: String
    }

    struct Clip: Decodable {
        let index: Int
        let labels: Labels
        let captions: [String]
        /// The motion the scorer should read from the frame (a pan drifts the object the other way).
        let frame_motion: String
        let centroid_x: [Double]
        let centroid_y: [Double]
    }

    struct Vocabulary: Decodable {
        let colours: [String: [Float]]
        let bg_colours: [String: [Float]]
        let colour_syn: [String: [String]]
        let shape_syn: [String: [String]]
        let size_syn: [String: [String]]
        let motions: [String]
        let motion_syn: [String: [String]]
        let pan_syn: [String: [String]]
        let texture_word: [String: [String]]
    }

    struct Meta: Decodable {
        let frames: Int
        let height: Int
        let width: Int
        let clips: [Clip]
        let vocabulary: Vocabulary
    }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/scenes")

    let meta: Meta
    /// One `[frames, H, W, 3]` tensor in [0, 1] per clip.
    let clips: [Tensor]

    init() throws {
        meta = try JSONDecoder().decode(Meta.self, from: Data(contentsOf: Self.directory.appendingPathComponent("labels.json")))
        let sheet = try WebP.decode([UInt8](try Data(contentsOf: Self.directory.appendingPathComponent("frames.webp"))))
        let (f, h, w) = (meta.frames, meta.height, meta.width)
        try #require(sheet.width == f * w && sheet.height == meta.clips.count * h, "sheet \(sheet.width)×\(sheet.height)")
        clips = (0..<meta.clips.count).map { row in
            var out = [Float]()
            out.reserveCapacity(f * h * w * 3)
            for frame in 0..<f {
                for y in 0..<h {
                    let start = ((row * h + y) * sheet.width + frame * w) * 3
                    out.append(contentsOf: sheet.pixels[start..<(start + w * 3)].map { Float($0) / 255 })
                }
            }
            return Tensor(shape: [f, h, w, 3], scalars: out)
        }
    }
}
