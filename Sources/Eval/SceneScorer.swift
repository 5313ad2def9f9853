import Foundation
import VidrdRuntime

/// How the object of a clip moves, as far as its mask shows.
public enum SceneMotion: String, Sendable, Codable, CaseIterable {
    case left, right, up, down, growing, shrinking, other
}

/// What one frame shows: the background class, the object's colour class, centroid and area.
public struct FrameReading: Sendable, Equatable {
    public var background: String
    /// nil when no object was found (fewer than `SceneScorer.minimumObjectPixels` pixels).
    public var colour: String?
    /// Pixel coordinates of the mask's centroid, x to the right, y downward (pixel centres at +0.5).
    public var centroid: SIMD2<Double>?
    /// Mask pixels.
    public var area: Int
}

/// What one clip shows.
public struct ClipReading: Sendable, Equatable {
    /// The most frequent frame class (ties: the earliest frame's).
    public var background: String?
    public var colour: String?
    public var motion: SceneMotion
    public var frames: [FrameReading]
}

/// A colour-mask reader of the procedural scenes (tools/train/data.py): one object on a solid or
/// textured background. It knows the palette and how textures are drawn, nothing learned, so it
/// scores the model's output by the same rules as the data it was trained on.
///
/// - Background: every palette entry b is a candidate together with its textured range, the segment
///   from b to b + 0.35·lum(b) (data.py's render_background). The candidate whose range is nearest
///   to the border pixels wins (mean distance, each pixel's capped so an object touching the border
///   does not decide). For a solid background this is the nearest palette entry to the border's
///   colour; with stripes or checkers half the border is the texture colour, which would pull a
///   plain median between two palette entries.
/// - Object: the pixels further than `objectThreshold` from the background's range; its colour is
///   the per-channel median of those pixels, classified to the nearest palette entry.
/// - Motion: from the centroid and area over the clip's frames (`motion(of:)`).
public struct SceneScorer: Sendable {
    /// Colour distances are Euclidean in RGB 0–255 (frames in [0, 1] are scaled).
    /// The smallest object–background palette distance data.py allows is an L1 of 160 (≈ 92
    /// Euclidean); the colours are jittered by up to 18 (object) and 12 (background) per channel.
    public var objectThreshold: Float = 50
    /// Per-pixel cap of the background score.
    public var backgroundCap: Float = 60
    public var minimumObjectPixels = 4
    /// Size change (area ratio over the clip) that counts as growing or shrinking.
    public var growthRatio = 2.0
    /// Net displacement (fraction of the frame's extent along that axis) that counts as moving.
    public var minimumTravel = 0.08
    /// The dominant axis must travel this many times the other.
    public var axisDominance = 1.5
    /// |net| ÷ path length along the axis: a bounce or an orbit goes back and forth.
    public var minimumStraightness = 0.5

    public init() {}

    // MARK: frames

    public func read(frame clip: Tensor, _ f: Int) -> FrameReading {
        let (h, w) = Frames.dimensions(clip)
        let px = Frames.frame(clip, f)
        func pixel(_ y: Int, _ x: Int) -> SIMD3<Float> {
            let o = (y * w + x) * 3
            return SIMD3(px[px.startIndex + o], px[px.startIndex + o + 1], px[px.startIndex + o + 2]) * 255
        }
        var border: [SIMD3<Float>] = []
        for x in 0..<w { border.append(pixel(0, x)); if h > 1 { border.append(pixel(h - 1, x)) } }
        if h > 2 { for y in 1..<(h - 1) { border.append(pixel(y, 0)); if w > 1 { border.append(pixel(y, w - 1)) } } }

        var best = SceneVocabulary.backgroundColours[0]
        var bestScore = Float.infinity
        for candidate in SceneVocabulary.backgroundColours {
            let ranges = Self.textureRanges(candidate.rgb)
            var s: Float = 0
            for p in border { s += Swift.min(Self.distance(p, ranges), backgroundCap) }
            if s < bestScore { (best, bestScore) = (candidate, s) }
        }

        let ranges = Self.textureRanges(best.rgb)
        var rs: [Float] = [], gs: [Float] = [], bs: [Float] = []
        var sx = 0.0, sy = 0.0
        for y in 0..<h {
            for x in 0..<w {
                let p = pixel(y, x)
                guard Self.distance(p, ranges) > objectThreshold else { continue }
                rs.append(p.x); gs.append(p.y); bs.append(p.z)
                sx += Double(x) + 0.5
                sy += Double(y) + 0.5
            }
        }
        guard rs.count >= minimumObjectPixels else { return FrameReading(background: best.name, colour: nil, centroid: nil, area: rs.count) }
        let median = SIMD3(Self.median(&rs), Self.median(&gs), Self.median(&bs))
        let colour = SceneVocabulary.colours.min { Self.squaredLength($0.rgb - median) < Self.squaredLength($1.rgb - median) }
        let n = Double(rs.count)
        return FrameReading(background: best.name, colour: colour?.name, centroid: SIMD2(sx / n, sy / n), area: rs.count)
    }

    public func read(clip: Tensor) -> ClipReading {
        let frames = (0..<Frames.count(clip)).map { read(frame: clip, $0) }
        let (h, w) = Frames.dimensions(clip)
        return ClipReading(background: Self.mostFrequent(frames.map(\.background)),
                           colour: Self.mostFrequent(frames.compactMap(\.colour)),
                           motion: motion(of: frames, height: h, width: w), frames: frames)
    }

    // MARK: motion

    /// growing/shrinking when the area changes by `growthRatio` fairly steadily (log-area fit over
    /// the clip, straightness of the log-area path); else left/right/up/down when the centroid's
    /// fitted displacement along one axis is at least `minimumTravel` of the frame, dominates the
    /// other axis and is straight; else other. Frames without an object are skipped; fewer than 3
    /// with one give other.
    public func motion(of frames: [FrameReading], height: Int, width: Int) -> SceneMotion {
        let seen = frames.indices.filter { frames[$0].centroid != nil && frames[$0].area > 0 }
        guard seen.count >= 3 else { return .other }
        let t = seen.map(Double.init)
        let logArea = seen.map { log(Double(frames[$0].area)) }
        let growth = Self.fittedChange(t, logArea)
        if abs(growth) >= log(growthRatio), Self.straightness(logArea) >= minimumStraightness {
            return growth > 0 ? .growing : .shrinking
        }
        let xs = seen.map { frames[$0].centroid?.x ?? 0 }, ys = seen.map { frames[$0].centroid?.y ?? 0 }
        let dx = Self.fittedChange(t, xs), dy = Self.fittedChange(t, ys)
        let horizontal = abs(dx) >= abs(dy)
        let (d, other, path, extent) = horizontal ? (dx, dy, xs, width) : (dy, dx, ys, height)
        guard abs(d) >= minimumTravel * Double(extent), abs(d) >= axisDominance * abs(other),
              Self.straightness(path) >= minimumStraightness else { return .other }
        return horizontal ? (d > 0 ? .right : .left) : (d > 0 ? .down : .up)
    }

    // MARK: helpers

    /// The background's colour range: the palette colour to its textured extreme, both for a dark
    /// and a light base when the jittered base can fall on either side of data.py's threshold.
    static func textureRanges(_ base: SIMD3<Float>) -> [(SIMD3<Float>, SIMD3<Float>)] {
        let mean = (base.x + base.y + base.z) / 3
        var out: [(SIMD3<Float>, SIMD3<Float>)] = []
        let k = SceneVocabulary.textureStrength
        if mean < SceneVocabulary.darkBaseMean + SceneVocabulary.baseJitter { out.append((base, base + k * (SIMD3(repeating: 255) - base))) }
        if mean >= SceneVocabulary.darkBaseMean - SceneVocabulary.baseJitter { out.append((base, base - k * 0.45 * base)) }
        return out
    }

    static func distance(_ p: SIMD3<Float>, _ ranges: [(SIMD3<Float>, SIMD3<Float>)]) -> Float {
        var best = Float.infinity
        for (a, b) in ranges {
            let ab = b - a
            let len = squaredLength(ab)
            let t = len > 0 ? Swift.min(Swift.max(((p - a) * ab).sum() / len, 0), 1) : 0
            best = Swift.min(best, squaredLength(p - (a + t * ab)))
        }
        return best.squareRoot()
    }

    static func squaredLength(_ v: SIMD3<Float>) -> Float { (v * v).sum() }

    static func median(_ xs: inout [Float]) -> Float {
        xs.sort()
        return xs.count % 2 == 1 ? xs[xs.count / 2] : (xs[xs.count / 2 - 1] + xs[xs.count / 2]) / 2
    }

    static func mostFrequent(_ names: [String]) -> String? {
        var counts: [String: Int] = [:]
        for n in names { counts[n, default: 0] += 1 }
        guard let top = counts.values.max() else { return nil }
        return names.first { counts[$0] == top }
    }

    /// Least-squares slope × the time span: the change a straight-line fit makes over the clip
    /// (less sensitive to one noisy end frame than last − first).
    static func fittedChange(_ t: [Double], _ v: [Double]) -> Double {
        let mt = t.reduce(0, +) / Double(t.count), mv = v.reduce(0, +) / Double(v.count)
        var num = 0.0, den = 0.0
        for (a, b) in zip(t, v) { num += (a - mt) * (b - mv); den += (a - mt) * (a - mt) }
        guard den > 0, let first = t.first, let last = t.last else { return 0 }
        return num / den * (last - first)
    }

    static func straightness(_ v: [Double]) -> Double {
        guard let first = v.first, let last = v.last else { return 0 }
        var path = 0.0
        for (a, b) in zip(v, v.dropFirst()) { path += abs(b - a) }
        return path > 0 ? abs(last - first) / path : 0
    }
}
