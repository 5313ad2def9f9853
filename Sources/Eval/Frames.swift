import VidrdRuntime

/// Frame access and frame distances for decoded clips: `Tensor`s `[n, H, W, 3]`, RGB in [0, 1].
public enum Frames {
    public static func count(_ clip: Tensor) -> Int { clip.rank == 4 ? clip.shape[0] : 0 }

    /// Values per frame (H·W·3).
    public static func size(_ clip: Tensor) -> Int { clip.rank == 4 ? clip.shape[1] * clip.shape[2] * clip.shape[3] : 0 }

    public static func frame(_ clip: Tensor, _ i: Int) -> ArraySlice<Float> {
        let per = size(clip)
        return clip.scalars[(i * per)..<((i + 1) * per)]
    }

    /// Mean absolute difference (the seam metric's distance, kept for comparability with the
    /// tables measured before `vidrd longeval`).
    public static func meanAbsDifference(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        precondition(a.count == b.count, "frames of different sizes")
        var s = 0.0
        for (x, y) in zip(a, b) { s += Double(abs(x - y)) }
        return s / Double(Swift.max(a.count, 1))
    }

    /// Sum of squared differences; RMSE over several frame pairs is the root of their summed
    /// squares over their summed counts, so callers accumulate this.
    public static func squaredDifference(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        precondition(a.count == b.count, "frames of different sizes")
        var s = 0.0
        for (x, y) in zip(a, b) {
            let d = Double(x - y)
            s += d * d
        }
        return s
    }

    public static func rmse(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        (squaredDifference(a, b) / Double(Swift.max(a.count, 1))).squareRoot()
    }

    /// Pixel dimensions (H, W).
    public static func dimensions(_ clip: Tensor) -> (height: Int, width: Int) {
        clip.rank == 4 ? (clip.shape[1], clip.shape[2]) : (0, 0)
    }

    static func sameFrameShape(_ a: Tensor, _ b: Tensor) -> Bool {
        a.rank == 4 && b.rank == 4 && a.shape.dropFirst() == b.shape.dropFirst()
    }
}

/// Small statistics helpers shared by the metrics.
enum Stats {
    static func mean(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count) }

    static func median(_ xs: [Double]) -> Double? {
        guard !xs.isEmpty else { return nil }
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
